//! Files guest-init writes under /run (a tmpfs) for the service, since the root is read-only.
//!
//! Layout, which image builders link to from their read-only root:
//! - `/run/contract/contract.json`: the whole contract, read-only (0444);
//! - `/run/contract/extra.json`: the contract's `extra` object, read-only (0444);
//! - `/run/resolv.conf`: resolver settings (images link `/etc/resolv.conf` here);
//! - `/run/hosts`: localhost and the guest's own name (images link `/etc/hosts` here);
//! - the contract's `files`, each with its mode and owner.

use contract::validate::RESERVED_RUN_DIR;
use contract::{Contract, File as ContractFile};
use std::fmt;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

pub const RESOLV_CONF: &str = "/run/resolv.conf";
pub const HOSTS: &str = "/run/hosts";

/// A file that could not be written, with the contract path at fault.
#[derive(Debug)]
pub struct WriteError {
    pub at: String,
    pub message: String,
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

impl std::error::Error for WriteError {}

/// Writes `content` to `path` with `mode`, replacing any file there (created with 0600 first so
/// the content is never readable under a wider mode than asked).
fn write_file(at: &str, path: &Path, content: &[u8], mode: u32) -> Result<(), WriteError> {
    let fail = |what: &str, e: std::io::Error| WriteError {
        at: at.to_string(),
        message: format!("cannot {what} {}: {e}", path.display()),
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| fail("create the directory for", e))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| fail("create", e))?;
    f.write_all(content).map_err(|e| fail("write", e))?;
    f.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(|e| fail("set the mode of", e))
}

/// Writes the contract and its `extra` under /run/contract, read-only for everyone.
pub fn write_contract(c: &Contract) -> Result<(), WriteError> {
    let dir = Path::new(RESERVED_RUN_DIR);
    write_file(
        "contract",
        &dir.join("contract.json"),
        contract::to_json(c).as_bytes(),
        0o444,
    )?;
    if let Some(extra) = &c.extra {
        write_file(
            "extra",
            &dir.join("extra.json"),
            extra.to_string().as_bytes(),
            0o444,
        )?;
    }
    Ok(())
}

/// Writes the contract's `files`, each with its mode (`modes`, parsed by
/// `contract::checked`, in the same order), uid and gid.
pub fn write_files(files: &[ContractFile], modes: &[u32]) -> Result<(), WriteError> {
    for (i, (f, &mode)) in files.iter().zip(modes).enumerate() {
        let at = format!("files[{i}]");
        let fail = |message: String| WriteError {
            at: at.clone(),
            message,
        };
        let content = contract::file_content(f).map_err(|e| fail(format!("content: {e}")))?;
        let path = Path::new(&f.path);
        write_file(&at, path, &content, mode)?;
        std::os::unix::fs::chown(path, Some(f.uid), Some(f.gid)).map_err(|e| {
            fail(format!(
                "cannot give {} to {}:{}: {e}",
                f.path, f.uid, f.gid
            ))
        })?;
    }
    Ok(())
}

/// Writes /run/resolv.conf (empty when the contract names no resolver, so the link in the
/// image never dangles).
pub fn write_resolv_conf(text: &str) -> Result<(), WriteError> {
    write_file(
        "network.dns_servers",
        Path::new(RESOLV_CONF),
        text.as_bytes(),
        0o644,
    )
}

/// Writes /run/hosts: localhost for both families, and the hostname on each address.
pub fn write_hosts(text: &str) -> Result<(), WriteError> {
    write_file("hostname", Path::new(HOSTS), text.as_bytes(), 0o644)
}

/// The content of /run/hosts for a hostname and the guest's own addresses (pure).
pub fn hosts_text(hostname: &str, addresses: &[std::net::IpAddr]) -> String {
    let mut out = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    if addresses.is_empty() {
        out.push_str(&format!("127.0.1.1\t{hostname}\n"));
    }
    for a in addresses {
        out.push_str(&format!("{a}\t{hostname}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_maps_the_hostname_to_each_address() {
        let text = hosts_text(
            "dns1",
            &[
                "192.0.2.10".parse().expect("ip"),
                "2001:db8::10".parse().expect("ip"),
            ],
        );
        assert!(text.starts_with("127.0.0.1\tlocalhost\n"));
        assert!(text.contains("192.0.2.10\tdns1\n"));
        assert!(text.contains("2001:db8::10\tdns1\n"));
        assert!(!text.contains("127.0.1.1"));
        assert!(hosts_text("solo", &[]).contains("127.0.1.1\tsolo\n"));
    }

    #[test]
    fn files_get_their_mode_and_content() {
        let dir = std::env::temp_dir().join(format!("gi-runfs-{}", std::process::id()));
        let path = dir.join("sub/conf");
        let f = ContractFile {
            path: path.to_string_lossy().into_owned(),
            mode: "0640".into(),
            uid: nix::unistd::getuid().as_raw(),
            gid: nix::unistd::getgid().as_raw(),
            content: "aGVsbG8K".into(),
            encoding: contract::FileEncoding::Base64,
        };
        write_files(std::slice::from_ref(&f), &[0o640]).expect("write");
        assert_eq!(std::fs::read(&path).expect("read"), b"hello\n");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o7777;
        assert_eq!(mode, 0o640);
        std::fs::remove_dir_all(&dir).ok();
    }
}
