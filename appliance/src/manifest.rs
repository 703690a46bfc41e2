//! The image manifest: what an image builder declares about its image, in a JSON file beside
//! it (`<image>.manifest.json`). The contract version the image's guest-init speaks, the
//! default service, the data disks it expects and the ports it serves. Pure: no I/O.

use contract::{Service, Tmpfs};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Where an image's manifest lives: `<image>.manifest.json`, beside it (the image builder
/// writes it there; host-launch, uml-runc's tests and the conformance kit read it there unless
/// told otherwise). A path computed, not a file read.
pub fn path_beside(image: &Path) -> PathBuf {
    let mut s = OsString::from(image.as_os_str());
    s.push(".manifest.json");
    PathBuf::from(s)
}

/// What an image declares about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The host contract version the image's guest-init speaks (1 or 2); the host gives the
    /// image a contract of exactly this version.
    pub contract_version: u32,
    /// The image's name, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What the image is, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The appliance class the image implements (`docs/classes/`): its spec inputs are that
    /// class's standard ones, and it swaps with other images of the class. None: unclassed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<crate::class::Class>,
    /// The default service: program, user, capabilities, readiness, restart, stop signal and
    /// timeout, environment (the contract's `service` section).
    pub service: Service,
    /// Data disks the image expects.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disks: Vec<ManifestDisk>,
    /// Memory-backed filesystems the image needs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tmpfs: Vec<Tmpfs>,
    /// Ports the service listens on (documentation for the operator; shown by `check`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Port>,
    /// Default kernel settings.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctl: BTreeMap<String, String>,
    /// Default image-specific settings (the contract's `extra`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<serde_json::Value>,
    /// The least memory the image runs in, in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_memory_mib: Option<u32>,
}

/// A data disk the image expects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ManifestDisk {
    /// Where the guest mounts it; a directory that exists in the image.
    pub mount_point: String,
    /// The guest device the image expects it on (e.g. `/dev/ubdb`); default the next free one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Filesystem type; default `ext4`.
    #[serde(default = "default_fs_type")]
    pub fs_type: String,
    /// Mount options.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    /// Let the guest create the filesystem on a blank disk.
    #[serde(default)]
    pub format_if_blank: bool,
    /// Owner uid of the root directory of a file system the guest creates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_uid: Option<u32>,
    /// Owner gid of the root directory of a file system the guest creates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_gid: Option<u32>,
    /// Whether the spec must provide this disk (default true).
    #[serde(default = "default_true")]
    pub required: bool,
    /// The smallest disk the service works with, in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_size_mib: Option<u64>,
}

fn default_fs_type() -> String {
    "ext4".to_string()
}

fn default_true() -> bool {
    true
}

/// A port the service serves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Port {
    pub port: u16,
    #[serde(default)]
    pub protocol: Protocol,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Tcp,
    Udp,
}

/// Parses a manifest. The contract version is checked before the shape, so an image built for
/// a newer contract is refused as such rather than as a list of unknown fields.
pub fn parse(text: &[u8]) -> Result<Manifest, ManifestError> {
    let value = contract::json::parse_value(text)?;
    let obj = value.as_object().ok_or(ManifestError::NotObject)?;
    match obj.get("contract_version") {
        None => return Err(ManifestError::NoVersion),
        Some(v)
            if v.as_u64()
                .is_some_and(|n| u32::try_from(n).is_ok_and(contract::speaks)) => {}
        Some(v) => return Err(ManifestError::Version { given: v.clone() }),
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." {
            "(top level)".into()
        } else {
            path
        };
        ManifestError::Shape {
            path,
            message: e.into_inner().to_string(),
        }
    })
}

/// Why a manifest cannot be taken.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error(transparent)]
    Json(#[from] contract::json::JsonError),
    #[error("the top level must be a JSON object")]
    NotObject,
    #[error(
        "contract_version: missing; the image builder must declare the host contract version \
         its guest-init speaks (this host-launch speaks {} to {})",
        contract::OLDEST_VERSION,
        contract::VERSION
    )]
    NoVersion,
    /// The version the manifest gives.
    #[error(
        "contract_version: the image speaks host contract version {given}, but this host-launch \
         speaks versions {} to {}; use a host-launch that supports it or an image built for \
         one of those",
        contract::OLDEST_VERSION,
        contract::VERSION
    )]
    Version { given: serde_json::Value },
    /// Valid JSON of the wrong shape, at a JSON path.
    #[error("{path}: {message}")]
    Shape { path: String, message: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"{"contract_version":1,"service":{"argv":["/bin/x"]}}"#;

    #[test]
    fn manifest_beside_the_image() {
        assert_eq!(
            path_beside(Path::new("build/dns.img")),
            Path::new("build/dns.img.manifest.json")
        );
    }

    #[test]
    fn minimal_manifest() {
        let m = parse(MINIMAL.as_bytes()).unwrap();
        assert_eq!(m.service.argv, ["/bin/x"]);
        assert!(m.disks.is_empty());
    }

    #[test]
    fn disk_defaults() {
        let m = parse(
            br#"{"contract_version":1,"service":{"argv":["/bin/x"]},
                 "disks":[{"mount_point":"/data"}],"ports":[{"port":53,"protocol":"udp"}]}"#,
        )
        .unwrap();
        assert_eq!(m.disks[0].fs_type, "ext4");
        assert!(m.disks[0].required);
        assert!(!m.disks[0].format_if_blank);
        assert_eq!(m.ports[0].protocol, Protocol::Udp);
    }

    #[test]
    fn wrong_contract_version_is_refused_first() {
        let e = parse(br#"{"contract_version":5,"whatever":true}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("speaks host contract version 5"), "{e}");
        let e = parse(br#"{"service":{"argv":["/x"]}}"#)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("contract_version: missing"), "{e}");
    }

    #[test]
    fn a_quiesce_command_is_read_with_its_default_timeout_and_typos_named() {
        let m = parse(
            br#"{"contract_version":4,"service":{"argv":["/x"],
                 "quiesce":{"argv":["/bin/flush","--all"]}}}"#,
        )
        .unwrap();
        let q = m.service.quiesce.unwrap();
        assert_eq!(q.argv, ["/bin/flush", "--all"]);
        assert_eq!(q.timeout_ms, 5000);
        let e = parse(
            br#"{"contract_version":4,"service":{"argv":["/x"],"quiesce":{"command":"/bin/flush"}}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("service.quiesce.command: unknown field"),
            "{e}"
        );
    }

    #[test]
    fn shape_errors_have_paths() {
        let e = parse(br#"{"contract_version":1,"service":{"argv":["/x"],"usr":1}}"#)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("service.usr: unknown field `usr`"), "{e}");
    }
}
