//! The parts of an OCI bundle's `config.json` (runtime spec 1.x) the runtime reads. Own
//! types, unknown fields accepted (the spec allows them and podman writes many); what the
//! VM cannot honour is refused by [`crate::service`] with the field's name, not ignored.

use crate::error::Error;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// config.json may not be larger than this: podman's are a few KiB.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Config {
    #[serde(default)]
    pub oci_version: String,
    pub process: Option<Process>,
    pub root: Option<Root>,
    #[serde(default)]
    pub hostname: Option<String>,
    #[serde(default)]
    pub mounts: Vec<Mount>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub linux: Option<Linux>,
    #[serde(default)]
    pub hooks: Option<Hooks>,
}

/// The lifecycle hooks (runtime spec, "POSIX-platform Hooks"); see [`crate::hooks`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hooks {
    #[serde(default)]
    pub prestart: Vec<Hook>,
    #[serde(default)]
    pub create_runtime: Vec<Hook>,
    #[serde(default)]
    pub create_container: Vec<Hook>,
    #[serde(default)]
    pub start_container: Vec<Hook>,
    #[serde(default)]
    pub poststart: Vec<Hook>,
    #[serde(default)]
    pub poststop: Vec<Hook>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hook {
    pub path: String,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: Vec<String>,
    /// Seconds; none: no limit of the spec's, [`crate::hooks::DEFAULT_TIMEOUT`] of ours.
    #[serde(default)]
    pub timeout: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Process {
    #[serde(default)]
    pub terminal: bool,
    #[serde(default)]
    pub user: User,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: Vec<String>,
    #[serde(default)]
    pub cwd: String,
    #[serde(default)]
    pub capabilities: Option<Capabilities>,
    #[serde(default)]
    pub rlimits: Vec<Rlimit>,
    #[serde(default)]
    pub no_new_privileges: bool,
    #[serde(default)]
    pub oom_score_adj: Option<i32>,
    /// The terminal's size when `terminal` is true.
    #[serde(default)]
    pub console_size: Option<ConsoleSize>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
pub struct ConsoleSize {
    pub height: u16,
    pub width: u16,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    #[serde(default)]
    pub uid: u32,
    #[serde(default)]
    pub gid: u32,
    #[serde(default)]
    pub additional_gids: Vec<u32>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Capabilities {
    #[serde(default)]
    pub bounding: Vec<String>,
    #[serde(default)]
    pub effective: Vec<String>,
    #[serde(default)]
    pub permitted: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Rlimit {
    #[serde(rename = "type")]
    pub kind: String,
    pub hard: u64,
    pub soft: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Root {
    pub path: String,
    #[serde(default)]
    pub readonly: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Mount {
    pub destination: String,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub options: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Linux {
    #[serde(default)]
    pub namespaces: Vec<Namespace>,
    #[serde(default)]
    pub resources: Option<Resources>,
    #[serde(default)]
    pub sysctl: BTreeMap<String, String>,
    /// Where the container's processes go (the monitor and the VM: `cgroup`).
    #[serde(default, rename = "cgroupsPath")]
    pub cgroups_path: Option<String>,
    /// Device nodes for the container (`podman --device`, a Kubernetes block volume): a
    /// block device becomes a data disk ([`crate::volume`]).
    #[serde(default)]
    pub devices: Vec<Device>,
}

/// An entry of `linux.devices`: the node's path in the container, its type (`b` a block
/// device; `c`, `u`, `p` others) and numbers. The host's path is not in the spec.
#[derive(Debug, Clone, Deserialize)]
pub struct Device {
    pub path: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub major: u64,
    #[serde(default)]
    pub minor: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Namespace {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub path: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Resources {
    #[serde(default)]
    pub memory: Option<Memory>,
    /// The device cgroup's rules, in order (podman: deny all, then allow each `--device`
    /// with its permissions).
    #[serde(default)]
    pub devices: Vec<DeviceRule>,
}

/// A rule of `linux.resources.devices`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DeviceRule {
    #[serde(default)]
    pub allow: bool,
    /// `a` (all), `b`, `c`; none: all.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub major: Option<i64>,
    #[serde(default)]
    pub minor: Option<i64>,
    /// Some of `r`, `w`, `m`; none: all.
    #[serde(default)]
    pub access: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Memory {
    #[serde(default)]
    pub limit: Option<i64>,
}

/// A bundle: its directory and its config.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub dir: PathBuf,
    pub config: Config,
}

impl Bundle {
    /// Reads `DIR/config.json` (bounded), strictly as JSON, leniently as to fields.
    pub fn open(dir: &Path) -> Result<Bundle, Error> {
        let path = dir.join("config.json");
        let text = read_bounded(&path, MAX_CONFIG_BYTES)?;
        let config = parse(&text).map_err(|e| e.context(path.display()))?;
        check_oci_version(&config.oci_version)?;
        // The state's `bundle` and `rootfs` are absolute, as the spec wants them.
        let dir = std::path::absolute(dir)
            .map_err(|e| Error::new(format!("the bundle {}: {e}", dir.display())))?;
        Ok(Bundle { dir, config })
    }

    /// The root file system directory (relative paths are the bundle's).
    pub fn rootfs(&self) -> Result<PathBuf, Error> {
        let root = self.config.root.as_ref().ok_or_else(|| {
            Error::new("config.json: root: missing; the bundle must name its root file system")
        })?;
        let p = Path::new(&root.path);
        let joined = if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.dir.join(p)
        };
        // `root.path: "."` is the bundle itself, not `BUNDLE/.`.
        std::path::absolute(&joined).map_err(|e| Error::new(format!("config.json: root.path: {e}")))
    }

    /// The network the container asks for (`linux.namespaces[type=network]`).
    pub fn network(&self) -> Network {
        let entry = self
            .config
            .linux
            .iter()
            .flat_map(|l| l.namespaces.iter())
            .find(|ns| ns.kind == "network");
        match entry {
            None => Network::Host,
            Some(ns) => match &ns.path {
                Some(p) if !p.is_empty() => Network::Join(PathBuf::from(p)),
                _ => Network::New,
            },
        }
    }
}

/// The container's network namespace as the config gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Network {
    /// No network namespace entry: the runtime's own (podman's `--network host`).
    Host,
    /// A new, empty namespace: the VM gets loopback only.
    New,
    /// The namespace at this path (podman's, with its veth).
    Join(PathBuf),
}

/// The major versions of the runtime spec this runtime speaks.
const OCI_MAJOR: u64 = 1;

/// `ociVersion` must be a SemVer 2.0 version of a spec this runtime speaks (1.x.y, with or
/// without a pre-release or build suffix), as runc checks it.
pub fn check_oci_version(v: &str) -> Result<(), Error> {
    let core = v.split(['-', '+']).next().unwrap_or_default();
    let parts: Vec<&str> = core.split('.').collect();
    let numeric = |p: &&str| {
        !p.is_empty()
            && p.bytes().all(|b| b.is_ascii_digit())
            && (p.len() == 1 || !p.starts_with('0'))
    };
    let valid = parts.len() == 3 && parts.iter().all(numeric) && !v.ends_with(['-', '+']);
    if !valid {
        return Err(Error::new(format!(
            "config.json: ociVersion: {:?} is not a version of the OCI runtime spec (SemVer, \
             e.g. \"1.0.2\"); write the spec version the config was made for",
            contract::json::printable(v)
        )));
    }
    if parts[0].parse::<u64>().ok() != Some(OCI_MAJOR) {
        return Err(Error::new(format!(
            "config.json: ociVersion: {v:?}: uml-runc speaks the OCI runtime spec {OCI_MAJOR}.x; \
             make the config for it"
        )));
    }
    Ok(())
}

/// Parses config.json: strictly as JSON (contract::json: no duplicate keys), leniently as to
/// fields.
pub fn parse(text: &[u8]) -> Result<Config, Error> {
    let value = contract::json::parse_value(text).map_err(|e| Error::new(e.to_string()))?;
    serde_path_to_error::deserialize(value)
        .map_err(|e| Error::new(format!("{}: {}", e.path(), e.inner())))
}

/// Reads a file of at most `max` bytes.
pub fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, Error> {
    use std::io::Read;
    let f = std::fs::File::open(path)
        .map_err(|e| Error::new(format!("opening {}: {e}", path.display())))?;
    let mut buf = Vec::new();
    f.take(max + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::new(format!("reading {}: {e}", path.display())))?;
    if buf.len() as u64 > max {
        return Err(Error::new(format!(
            "{} is larger than {max} bytes",
            path.display()
        )));
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oci_versions_of_spec_1_only() {
        for good in [
            "1.0.0",
            "1.0.2",
            "1.1.0",
            "1.2.0-rc.1",
            "1.0.2-dev",
            "1.0.0+build.5",
        ] {
            assert!(check_oci_version(good).is_ok(), "{good}");
        }
        for bad in [
            "invalid", "", "1.0", "1.0.0.0", "01.0.0", "1.a.0", "1.0.0-", "v1.0.0",
        ] {
            let e = check_oci_version(bad).unwrap_err().0;
            assert!(
                e.contains("ociVersion") && e.contains("SemVer"),
                "{bad}: {e}"
            );
        }
        let e = check_oci_version("2.0.0").unwrap_err().0;
        assert!(e.contains("speaks the OCI runtime spec 1.x"), "{e}");
    }

    fn bundle(config: serde_json::Value) -> Bundle {
        Bundle {
            dir: PathBuf::from("/b"),
            config: serde_json::from_value(config).unwrap(),
        }
    }

    #[test]
    fn the_network_namespace_as_configured() {
        let b = bundle(serde_json::json!({"linux": {"namespaces": [{"type": "pid"}]}}));
        assert_eq!(b.network(), Network::Host);
        let b = bundle(serde_json::json!({"linux": {"namespaces": [{"type": "network"}]}}));
        assert_eq!(b.network(), Network::New);
        let b = bundle(serde_json::json!({"linux": {"namespaces": [
            {"type": "network", "path": "/run/netns/x"}]}}));
        assert_eq!(b.network(), Network::Join(PathBuf::from("/run/netns/x")));
    }

    #[test]
    fn the_root_is_absolute_and_dot_is_the_bundle() {
        let b = bundle(serde_json::json!({"root": {"path": "."}}));
        assert_eq!(b.rootfs().unwrap(), PathBuf::from("/b"));
        let b = bundle(serde_json::json!({"root": {"path": "rootfs"}}));
        assert_eq!(b.rootfs().unwrap(), PathBuf::from("/b/rootfs"));
    }
}
