//! The parts of an OCI bundle's `config.json` (runtime spec 1.x) the runtime reads. Own
//! types, unknown fields accepted (the spec allows them and podman writes many); what the
//! VM cannot honour is refused by [`crate::service`] with the field's name, not ignored.

use crate::error::Error;
use serde::Deserialize;
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
        Ok(Bundle {
            dir: dir.to_path_buf(),
            config,
        })
    }

    /// The root file system directory (relative paths are the bundle's).
    pub fn rootfs(&self) -> Result<PathBuf, Error> {
        let root = self.config.root.as_ref().ok_or_else(|| {
            Error::new("config.json: root: missing; the bundle must name its root file system")
        })?;
        let p = Path::new(&root.path);
        Ok(if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.dir.join(p)
        })
    }

    /// The network namespace the container joins (`linux.namespaces[type=network].path`);
    /// `None`: the runtime's own (podman's `--network host`, or no entry at all).
    pub fn netns(&self) -> Result<Option<PathBuf>, Error> {
        let Some(linux) = &self.config.linux else {
            return Ok(None);
        };
        for (i, ns) in linux.namespaces.iter().enumerate() {
            if ns.kind != "network" {
                continue;
            }
            return match &ns.path {
                Some(p) if !p.is_empty() => Ok(Some(PathBuf::from(p))),
                _ => Err(Error::new(format!(
                    "config.json: linux.namespaces[{i}]: a new, empty network namespace gives the \
                     VM no network; run the container on a network (podman --network NAME) or \
                     with --network host"
                ))),
            };
        }
        Ok(None)
    }
}

/// Parses config.json: strictly as JSON (contract::json: no duplicate keys), leniently as to
/// fields.
pub fn parse(text: &[u8]) -> Result<Config, Error> {
    let value = contract::json::parse_value(text).map_err(|e| Error::new(e.to_string()))?;
    serde_path_to_error_free(value).map_err(Error::new)
}

/// `serde_json::from_value`, the error naming the field's path.
fn serde_path_to_error_free(value: serde_json::Value) -> Result<Config, String> {
    serde_path_to_error::deserialize(value).map_err(|e| format!("{}: {}", e.path(), e.inner()))
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
