//! The host contract's serde types, for every version this crate speaks: version 2 is
//! version 1 plus `service.rlimits`, version 3 is 2 plus `service.oom_score_adj` and
//! `service.no_new_privileges`, version 4 is 3 plus `service.quiesce`; a document cannot
//! hold what only a later version has.
//!
//! Every struct rejects unknown fields so that a typo on the host is an error, not a silently
//! ignored setting. Values that need checking beyond their JSON shape (addresses, names, paths)
//! are kept as strings here and checked by [`crate::validate`], which reports every problem at
//! once with its JSON path.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The newest contract version these types describe.
pub const VERSION: u32 = 4;

/// The oldest contract version these types still describe (each later one only adds).
pub const OLDEST_VERSION: u32 = 1;

/// Whether this crate speaks contract version `v`.
pub fn speaks(v: u32) -> bool {
    (OLDEST_VERSION..=VERSION).contains(&v)
}

/// Everything that makes one appliance different from another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Contract {
    /// The contract version of this document: 1, 2 (adds `service.rlimits`), 3 (adds
    /// `service.oom_score_adj` and `service.no_new_privileges`) or 4 (adds
    /// `service.quiesce`). A host gives an image the version its manifest declares.
    pub version: u32,
    /// The guest's hostname: one RFC 1123 label (letters, digits, '-'; 1 to 63 characters).
    pub hostname: String,
    /// Interfaces, routes and resolver. Absent: the kernel's `ip=` parameter is used, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<Network>,
    /// Where the service's output and the init's own messages go.
    #[serde(default)]
    pub logging: Logging,
    /// The one supervised program.
    pub service: Service,
    /// Data disks and tmpfs mounts.
    #[serde(default, skip_serializing_if = "Mounts::is_empty")]
    pub mounts: Mounts,
    /// Small files written under /run before the service starts: at most 1024, and with the
    /// rest of the contract within what it may claim of the VM's memory (contract::budget).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<File>,
    /// Kernel settings, e.g. `"net.ipv4.ip_forward": "1"`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctl: BTreeMap<String, String>,
    /// Free-form, image-specific settings, handed to the service as a JSON file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<serde_json::Value>,
}

/// Network configuration of the guest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Network {
    #[serde(default)]
    pub interfaces: Vec<Interface>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    /// Resolver addresses (IPv4 or IPv6), in order of preference.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_servers: Vec<String>,
    /// Resolver search domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search_domains: Vec<String>,
}

/// One network interface as the guest kernel names it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Interface {
    /// Guest interface name, e.g. `vec0` or `eth0`.
    pub name: String,
    /// MAC address `aa:bb:cc:dd:ee:ff`; absent keeps the kernel's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// Addresses in CIDR form, IPv4 (`192.0.2.10/24`) or IPv6 (`2001:db8::10/64`).
    #[serde(default)]
    pub addresses: Vec<String>,
    /// MTU in bytes (68 to 65535); absent keeps the kernel's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
}

/// A static or default route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Destination in CIDR form; `0.0.0.0/0` or `::/0` is a default route.
    pub destination: String,
    /// Next hop; absent means the destination is on the link of `interface`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// Interface to use; required when there is no gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// Route metric (priority); lower wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<u32>,
}

/// Logging of the service's output and of the init's own messages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Logging {
    /// A remote syslog receiver; absent means no remote logging.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<RemoteSyslog>,
    /// Also copy every log line to the guest console.
    #[serde(default = "default_true")]
    pub console: bool,
}

impl Default for Logging {
    fn default() -> Self {
        Logging {
            remote: None,
            console: true,
        }
    }
}

fn default_true() -> bool {
    true
}

/// A remote syslog target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoteSyslog {
    pub transport: Transport,
    /// The receiver's IP address (a literal: the guest does no name lookups before logging).
    pub host: String,
    /// The receiver's port, usually 514.
    #[serde(default = "default_syslog_port")]
    pub port: u16,
    pub format: SyslogFormat,
    /// Syslog facility name, e.g. `daemon` or `local0`.
    #[serde(default = "default_facility")]
    pub facility: String,
}

fn default_syslog_port() -> u16 {
    514
}

fn default_facility() -> String {
    "daemon".to_string()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Udp,
    /// TCP with RFC 6587 octet-counting framing.
    Tcp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum SyslogFormat {
    #[serde(rename = "rfc5424")]
    Rfc5424,
    #[serde(rename = "rfc3164")]
    Rfc3164,
}

/// The supervised program and how to run it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// Short name used in logs (syslog APP-NAME); absent: the basename of `argv[0]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Program and arguments; `argv[0]` is an absolute path in the image.
    pub argv: Vec<String>,
    /// Environment of the service (nothing else is inherited).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Working directory (absolute); default `/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    /// User id the service runs as.
    #[serde(default)]
    pub uid: u32,
    /// Group id the service runs as.
    #[serde(default)]
    pub gid: u32,
    /// Supplementary group ids, at most `NGROUPS_MAX` (65536).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 65536))]
    pub groups: Vec<u32>,
    /// Capabilities to keep (e.g. `CAP_NET_BIND_SERVICE`); every other one is dropped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
    #[serde(default)]
    pub restart: Restart,
    /// Signal that asks the service to stop, e.g. `SIGTERM`.
    #[serde(default = "default_stop_signal")]
    pub stop_signal: String,
    /// How long to wait after the stop signal before killing everything: 1 ms to one hour
    /// (0 is refused; `SIGKILL` as the stop signal ends the service at once).
    #[serde(default = "default_stop_timeout_ms")]
    #[schemars(range(min = 1, max = 3_600_000))]
    pub stop_timeout_ms: u64,
    #[serde(default)]
    pub readiness: Readiness,
    /// Checked for as long as the service runs, once it is ready; failing it restarts the
    /// service (see [`crate::liveness`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liveness: Option<crate::liveness::Liveness>,
    /// Resource limits of the service, by name (`RLIMIT_NOFILE`, ...; see
    /// [`crate::names::RLIMITS`]), set before it drops its privileges. Contract version 2.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rlimits: BTreeMap<String, Rlimit>,
    /// The service's `/proc/PID/oom_score_adj`, -1000 (never chosen by the OOM killer) to
    /// 1000 (chosen first); absent: the kernel's 0. Contract version 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oom_score_adj: Option<i32>,
    /// Whether the service runs with no_new_privs (set-user-ID bits and file capabilities
    /// give nothing on exec): default true; false (OCI's `process.noNewPrivileges: false`)
    /// only from contract version 3.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub no_new_privileges: bool,
    /// A program of the image run before the data file systems freeze for a snapshot, so the
    /// service's own files are complete on disk (see [`Quiesce`]). Contract version 4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiesce: Option<Quiesce>,
}

/// `service.quiesce`: run on the host's `freeze` request before the sync and FIFREEZE, as
/// the service's uid and gid, its output logged like the service's. Its failure or timeout
/// does not stop the freeze: the copy is then consistent for the file system but only
/// crash-consistent for the service, and the `frozen` event says why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Quiesce {
    /// Program and arguments; `argv[0]` an absolute path in the image.
    pub argv: Vec<String>,
    /// How long it may run before it is killed and the freeze goes ahead (1 to 30000).
    #[serde(default = "default_quiesce_timeout_ms")]
    #[schemars(range(min = 1, max = 30_000))]
    pub timeout_ms: u64,
}

fn default_quiesce_timeout_ms() -> u64 {
    5_000
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// One resource limit (setrlimit(2)): `soft` at most `hard`; 18446744073709551615 (2^64 - 1)
/// is "unlimited".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rlimit {
    pub soft: u64,
    pub hard: u64,
}

/// The value that means "no limit" (RLIM_INFINITY).
pub const RLIM_INFINITY: u64 = u64::MAX;

/// The contract version that brought `service.rlimits`; every check of "can this image take
/// resource limits" compares with it.
pub const RLIMITS_SINCE: u32 = 2;

/// The contract version that brought `service.oom_score_adj` and `service.no_new_privileges`
/// (the OCI runtime spec's `process.oomScoreAdj` and `process.noNewPrivileges`).
pub const OOM_SCORE_SINCE: u32 = 3;

/// The contract version that brought `service.quiesce` (the snapshot's quiesce command).
pub const QUIESCE_SINCE: u32 = 4;

impl Contract {
    /// The oldest contract version that can hold this contract.
    pub fn least_version(&self) -> u32 {
        if self.service.quiesce.is_some() {
            QUIESCE_SINCE
        } else if self.version_3_field().is_some() {
            OOM_SCORE_SINCE
        } else if !self.service.rlimits.is_empty() {
            RLIMITS_SINCE
        } else {
            OLDEST_VERSION
        }
    }
}

impl Contract {
    /// The first field set that only version [`OOM_SCORE_SINCE`] has.
    pub fn version_3_field(&self) -> Option<&'static str> {
        if self.service.oom_score_adj.is_some() {
            Some("service.oom_score_adj")
        } else if !self.service.no_new_privileges {
            Some("service.no_new_privileges")
        } else {
            None
        }
    }
}

impl Service {
    /// The name used in logs: `name`, or else the basename of `argv[0]`.
    pub fn app_name(&self) -> String {
        if let Some(name) = &self.name {
            return name.clone();
        }
        self.argv
            .first()
            .and_then(|a| a.rsplit('/').next())
            .filter(|b| !b.is_empty())
            .unwrap_or("service")
            .to_string()
    }
}

fn default_stop_signal() -> String {
    "SIGTERM".to_string()
}

fn default_stop_timeout_ms() -> u64 {
    10_000
}

/// When to restart the service, and how long to wait between tries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Restart {
    pub policy: RestartPolicy,
    /// First delay before a restart; doubled after each quick failure.
    #[serde(default = "default_backoff_min_ms")]
    pub backoff_min_ms: u64,
    /// Upper bound of the delay.
    #[serde(default = "default_backoff_max_ms")]
    pub backoff_max_ms: u64,
}

impl Default for Restart {
    fn default() -> Self {
        Restart {
            policy: RestartPolicy::OnFailure,
            backoff_min_ms: default_backoff_min_ms(),
            backoff_max_ms: default_backoff_max_ms(),
        }
    }
}

fn default_backoff_min_ms() -> u64 {
    100
}

fn default_backoff_max_ms() -> u64 {
    30_000
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    /// Run once; the VM powers off when the service exits.
    Never,
    /// Restart after a non-zero exit or a death by signal.
    OnFailure,
    /// Restart after every exit.
    Always,
}

/// How the init learns that the service is ready.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Readiness {
    /// Ready as soon as it is started.
    #[default]
    None,
    /// s6 style: the service writes a newline to this file descriptor.
    Notify { fd: u32 },
    /// Ready when a TCP connection to this port on the guest succeeds.
    Tcp {
        port: u16,
        /// Address to connect to; default `127.0.0.1`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        address: Option<String>,
    },
}

/// Data disks and tmpfs mounts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Mounts {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disks: Vec<Disk>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tmpfs: Vec<Tmpfs>,
}

impl Mounts {
    pub fn is_empty(&self) -> bool {
        self.disks.is_empty() && self.tmpfs.is_empty()
    }
}

/// A block device holding data that outlives the image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Disk {
    /// Guest device, e.g. `/dev/ubdb`.
    pub device: String,
    /// Absolute mount point that exists in the image (e.g. `/data`).
    pub mount_point: String,
    /// Filesystem type, e.g. `ext4`.
    #[serde(default = "default_fs_type")]
    pub fs_type: String,
    /// Mount options, e.g. `["noatime", "nodev"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    /// Create the filesystem if the disk is blank (all zeroes at the start). A disk that
    /// holds anything is never formatted.
    #[serde(default)]
    pub format_if_blank: bool,
    /// Owner (uid) of the new file system's root directory when guest-init creates it, so a
    /// service that does not run as root can write to its disk; default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_uid: Option<u32>,
    /// Group (gid) of the new file system's root directory; default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_gid: Option<u32>,
}

fn default_fs_type() -> String {
    "ext4".to_string()
}

/// A memory-backed filesystem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Tmpfs {
    pub mount_point: String,
    /// Size limit in MiB; absent: a quarter of what the contract may claim of the VM's memory
    /// (see contract::budget). Counts in full against that claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_mib: Option<u32>,
    /// Octal permissions of the root directory, e.g. `"1777"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}

/// A small configuration file written by the init before the service starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct File {
    /// Absolute path under `/run/`.
    pub path: String,
    /// Octal permission bits, e.g. `"0644"`; no setuid, setgid or sticky bit (/run is
    /// nosuid).
    #[serde(default = "default_file_mode")]
    #[schemars(regex(pattern = r"^0?[0-7]{1,3}$"))]
    pub mode: String,
    #[serde(default)]
    pub uid: u32,
    #[serde(default)]
    pub gid: u32,
    pub content: String,
    /// How `content` is encoded.
    #[serde(default, skip_serializing_if = "is_utf8")]
    pub encoding: FileEncoding,
}

fn default_file_mode() -> String {
    "0644".to_string()
}

fn is_utf8(e: &FileEncoding) -> bool {
    *e == FileEncoding::Utf8
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FileEncoding {
    #[default]
    Utf8,
    Base64,
}
