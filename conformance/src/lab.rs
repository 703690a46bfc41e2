//! What every boot of a run shares: the image and its manifest, the kernel, the probe, a
//! temporary directory and a network namespace of the run's own (tap0: 192.0.2.1/24 and
//! 2001:db8::1/64 on the host side; 198.51.100.1 and 2001:db8:5::1 on its loopback, reachable
//! from the guest only through the routes the contract installs).

use crate::error::{Error, ToolError};
use ::lab::{NetNs, TempDir, Vm};
use appliance::manifest::Manifest;
use base64::Engine;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The guest's addresses in every boot.
pub const GUEST_V4: &str = "192.0.2.10";
pub const GUEST_V6: &str = "2001:db8::10";
/// Host addresses behind the contract's routes.
pub const FAR_V4: &str = "198.51.100.1";
pub const FAR_V6: &str = "2001:db8:5::1";
/// Where the probe goes, and the port it serves.
pub const PROBE_PATH: &str = "/run/conformance/probe";
pub const PROBE_PORT: u16 = 7000;

#[derive(Debug)]
pub struct Lab {
    pub dir: TempDir,
    pub ns: NetNs,
    pub kernel: PathBuf,
    pub image: PathBuf,
    pub manifest: Manifest,
    /// The probe's bytes, base64 (a contract file).
    probe_b64: String,
    /// Contract files the image's own service needs (from an operator spec).
    pub service_files: Vec<Value>,
    pub memory_mib: u32,
}

impl Lab {
    pub fn new(
        image: &Path,
        manifest: Manifest,
        kernel: PathBuf,
        probe: &[u8],
        service_files: Vec<Value>,
    ) -> Result<Lab, Error> {
        host_tools()?;
        let dir = TempDir::new("conformance")?;
        let ns =
            NetNs::with_tap("tap0").map_err(|source| Error::NeedsRoot { source, who: "kit" })?;
        ns.ip(&["addr", "add", &format!("{FAR_V4}/32"), "dev", "lo"])?;
        ns.ip(&[
            "-6",
            "addr",
            "add",
            &format!("{FAR_V6}/128"),
            "dev",
            "lo",
            "nodad",
        ])?;
        let memory_mib = manifest.min_memory_mib.unwrap_or(64).max(64);
        Ok(Lab {
            dir,
            ns,
            kernel,
            image: image.to_path_buf(),
            manifest,
            probe_b64: base64::engine::general_purpose::STANDARD.encode(probe),
            service_files,
            memory_mib,
        })
    }

    /// A VM of this image on the run's network.
    pub fn vm(&self) -> Vm {
        Vm::new(&self.image)
            .kernel(&self.kernel)
            .network(&self.ns)
            .memory_mib(self.memory_mib)
            .timeout(Duration::from_secs(60))
            .echo(std::env::var_os("CONFORMANCE_ECHO").is_some())
    }

    /// A contract with IPv4 networking and a default route; `service` and more merged in.
    pub fn contract(&self, hostname: &str, more: Value) -> Value {
        // The version the image declares (H-VER-1), as a host gives it.
        let mut c = json!({
            "version": self.manifest.contract_version,
            "hostname": hostname,
            "network": {
                "interfaces": [{"name": "vec0", "addresses": [format!("{GUEST_V4}/24")]}],
                "routes": [{"destination": "0.0.0.0/0", "gateway": "192.0.2.1"}]
            }
        });
        merge(&mut c, more);
        c
    }

    /// The probe as a contract file.
    pub fn probe_file(&self) -> Value {
        json!({"path": PROBE_PATH, "mode": "0755", "encoding": "base64", "content": self.probe_b64})
    }

    /// A probe service with these `PROBE_*` settings.
    pub fn probe_service(&self, env: Value, more: Value) -> Value {
        let mut s = json!({"name": "probe", "argv": [PROBE_PATH], "env": env});
        merge(&mut s, more);
        s
    }

    /// A sparse blank disk of `mib` MiB.
    pub fn blank_disk(&self, name: &str, mib: u64) -> Result<PathBuf, Error> {
        let path = self.dir.join(name);
        sparse_file(&path, mib)?;
        Ok(path)
    }

    /// A disk with an ext4 file system made on the host, holding `kit-marker`, its root owned
    /// by `owner`.
    pub fn filled_disk(&self, name: &str, owner: (u32, u32)) -> Result<PathBuf, Error> {
        let content = self.dir.join(format!("{name}.content"));
        std::fs::create_dir_all(&content)?;
        std::fs::write(content.join("kit-marker"), "made by the kit\n")?;
        let path = self.dir.join(name);
        let _ = std::fs::remove_file(&path);
        let root_owner = format!("root_owner={}:{}", owner.0, owner.1);
        tool(
            Command::new("mkfs.ext4")
                .args(["-q", "-F", "-E", &root_owner, "-d"])
                .arg(&content)
                .arg(&path)
                .arg("16M"),
        )?;
        Ok(path)
    }
}

/// A sparse file of `mib` MiB at `path` (a blank disk).
pub fn sparse_file(path: &Path, mib: u64) -> Result<(), Error> {
    let f = std::fs::File::create(path).map_err(Error::file(path))?;
    f.set_len(mib << 20)?;
    Ok(())
}

/// The host's tools the checks use: a missing one is the host's problem, never the image's.
fn host_tools() -> Result<(), Error> {
    let hint = "install busybox (or busybox-static), e2fsprogs and iproute2 (in a checkout: \
                scripts/setup)";
    if !Path::new("/bin/busybox").is_file() {
        return Err(Error::Missing(format!(
            "/bin/busybox (for ping) is missing; {hint}"
        )));
    }
    for t in ["debugfs", "dumpe2fs", "mkfs.ext4", "ip"] {
        let found = Command::new(t).arg("-V").output().is_ok();
        if !found {
            return Err(Error::Missing(format!("{t} is missing; {hint}")));
        }
    }
    Ok(())
}

/// Merges object `more` into `base`, key by key (objects recursively).
pub fn merge(base: &mut Value, more: Value) {
    match (base, more) {
        (Value::Object(b), Value::Object(m)) => {
            for (k, v) in m {
                match b.get_mut(&k) {
                    Some(old) if old.is_object() && v.is_object() => merge(old, v),
                    _ => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, m) => *b = m,
    }
}

/// Runs a host tool; its standard output, or an error with what it printed.
pub fn tool(cmd: &mut Command) -> Result<String, ToolError> {
    let out = cmd.output().map_err(|source| ToolError::Start {
        cmd: format!("{cmd:?}"),
        source,
    })?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(text)
    } else {
        Err(ToolError::Failed {
            cmd: format!("{cmd:?}"),
            output: format!("{}{}", text, String::from_utf8_lossy(&out.stderr)),
        })
    }
}

/// `debugfs -R REQUEST IMAGE`'s output (read-only; no mount).
pub fn debugfs(image: &Path, request: &str) -> Result<String, ToolError> {
    let out = Command::new("debugfs")
        .args(["-R", request])
        .arg(image)
        .output()
        .map_err(|source| ToolError::Start {
            cmd: "debugfs".into(),
            source,
        })?;
    Ok(format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

/// A field of `dumpe2fs -h` (e.g. `Filesystem state`), or the error.
pub fn superblock(disk: &Path, field: &str) -> Result<String, ToolError> {
    let text = tool(Command::new("dumpe2fs").arg("-h").arg(disk))?;
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix(field).and_then(|r| r.strip_prefix(':')))
        .map(|v| v.trim().to_string())
        .unwrap_or_default())
}
