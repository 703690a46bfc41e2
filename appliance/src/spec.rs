//! The operator's spec: one appliance to run (name, image, memory, disks, network, logging,
//! overrides of the image's defaults). Parsed strictly: an unknown field, a wrong type or a
//! missing field is an error at its JSON path, and [`check`] reports every host-side problem
//! (names, addresses, sizes) at once.

use contract::addr::{parse_cidr, parse_mac};
use contract::{Problem, Problems, RemoteSyslog, Route};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The spec version these types describe.
pub const SPEC_VERSION: u32 = 1;

/// Memory the VM gets unless the spec says otherwise.
pub const DEFAULT_MEMORY_MIB: u32 = 64;

/// One appliance: which image to boot and everything that makes this instance different.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Always 1 for this version of the spec format (may be left out).
    #[serde(default = "default_spec_version")]
    pub spec_version: u32,
    /// The appliance's name: 1 to 32 lowercase letters, digits and '-', starting with a letter
    /// or digit. Names its state directory and its UML instance; unique on the host.
    pub name: String,
    /// The read-only root image (ext4), relative to the spec file's directory or absolute; or
    /// an OCI image: `oci:DIR`, `oci-archive:FILE`, `containers-storage:NAME`.
    pub image: String,
    /// The image's manifest; default `<image>.manifest.json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<String>,
    /// Guest memory in MiB (24 to 65536); default 64. The kernel itself takes about 11 MiB of
    /// it, and Debian's UML kernel does not finish booting with less than about 24 MiB.
    #[serde(default = "default_memory_mib")]
    pub memory_mib: u32,
    /// Data disks, attached in order as /dev/ubdb, /dev/ubdc, ... unless the manifest names
    /// the device a mount point expects.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disks: Vec<DiskSpec>,
    /// The VM's one network interface: a TAP device on the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkSpec>,
    /// The guest's hostname; default the appliance's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// A remote syslog receiver for the service's output and the init's messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syslog: Option<RemoteSyslog>,
    /// Environment variables added to (and overriding) the image's service environment.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Image-specific settings handed to the service. An object is merged key by key over
    /// the manifest's default `extra`; anything else replaces it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<serde_json::Value>,
    /// Small files written under /run in the guest before the service starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<contract::File>,
    /// Kernel settings added to (and overriding) the image's.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctl: BTreeMap<String, String>,
    /// How long the service may take to stop, overriding the image's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_timeout_ms: Option<u64>,
    /// No longer used: every VM runs jailed as a host uid of its own (host-launch/README.md,
    /// Isolation). Kept in the format so that a spec that still has it gets a clear error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as: Option<String>,
    /// Bounds on what the guest can make the host hold and on the VM's host processes;
    /// what is left out keeps host-launch's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<HostLimits>,
    /// Resource limits of the service inside the guest (`RLIMIT_NOFILE`, ...), added to (and
    /// overriding) the image's `service.rlimits`; they need an image of contract version 2.
    /// Not to be confused with `limits`, the host's bounds on the VM.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rlimits: BTreeMap<String, contract::Rlimit>,
    /// The UML kernel; default `$UML_KERNEL` or /usr/bin/linux.uml.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<String>,
    /// The service's liveness check, replacing the image's (`service.liveness` of the
    /// manifest): repeated while it runs; failing it restarts the service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liveness: Option<contract::Liveness>,
    /// Appliances (names) this one needs: under systemd, host-launch's generator makes their
    /// units `Wants=` and `After=` of this one's, so they are started first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub needs: Vec<String>,
    /// The appliance's share of CPU time against other units under systemd (`CPUWeight=`,
    /// 1 to 10000, systemd's default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_weight: Option<u32>,
}

fn default_spec_version() -> u32 {
    SPEC_VERSION
}

/// The least `memory_mib`: UML's kernel image and page array take about 11 MiB of the guest's
/// memory, and at 20 MiB Debian's UML kernel runs out of memory in its own initcalls.
pub const MIN_MEMORY_MIB: u32 = 24;

fn default_memory_mib() -> u32 {
    DEFAULT_MEMORY_MIB
}

/// A data disk: a host file or block device attached read-write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DiskSpec {
    /// The host file, relative to the spec file's directory or absolute. Created sparse with
    /// `size_mib` when absent; never overwritten or resized when present. Or a block device
    /// (an LVM logical volume, a partition, a loop device) that is free on the host and at
    /// least `size_mib`; the VM's jail gets a node of its own for it.
    pub file: String,
    /// Size of the file to create when it does not exist yet; for a block device, the least
    /// size it must have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_mib: Option<u64>,
    /// Where the guest mounts it; default the next disk the image's manifest declares.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount_point: Option<String>,
    /// Filesystem type; default the manifest's, else `ext4`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fs_type: Option<String>,
    /// Mount options; default the manifest's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Vec<String>>,
    /// Let the guest create a filesystem on a blank disk; default the manifest's, else false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format_if_blank: Option<bool>,
}

/// The VM's network interface and its host side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    /// The host TAP device (1 to 15 characters). Created (owned by the VM's user) when the
    /// launcher is root and it does not exist; removed again when the VM ends.
    pub tap: String,
    /// A named network namespace (`ip netns`) holding the TAP device and the UML process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<String>,
    /// Address of the host side of the TAP device, CIDR (e.g. `192.0.2.1/24`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_address: Option<String>,
    /// A bridge the TAP device joins instead of getting an address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge: Option<String>,
    /// The interface name inside the guest; default `vec0`.
    #[serde(default = "default_guest_interface")]
    pub guest_interface: String,
    /// The guest's MAC address; default the kernel's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// The guest's addresses, CIDR.
    #[serde(default)]
    pub addresses: Vec<String>,
    /// The guest interface's MTU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// The guest's routes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    /// The guest's resolvers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_servers: Vec<String>,
    /// The guest's resolver search domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search_domains: Vec<String>,
    /// Destinations the appliance may open connections to beyond those its spec implies (its
    /// syslog target, its DNS servers, ICMP echo to its routes' gateways): the network
    /// policy's egress list (host-launch/README.md, Network policy).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<Egress>,
    /// Relaxes the policy's declared-ports part: `declared` (the default: reached only on the
    /// manifest's ports, reaching only what the spec implies), `open-inbound`,
    /// `open-outbound` or `open`. Anti-spoofing holds whatever this says.
    #[serde(default, skip_serializing_if = "Reach::is_declared")]
    pub reach: Reach,
}

/// One destination of `network.egress`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Egress {
    /// An address or a CIDR block (`192.0.2.80`, `198.51.100.0/24`, `2001:db8::/64`).
    pub to: String,
    pub protocol: crate::manifest::Protocol,
    /// The destination port, 1 to 65535.
    pub port: u16,
}

/// How far the declared-ports part of the network policy is relaxed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Reach {
    /// Reached only on the manifest's ports; reaching only what the spec implies.
    #[default]
    Declared,
    /// Reached on any port; reaching only what the spec implies.
    OpenInbound,
    /// Reached only on the manifest's ports; reaching anything.
    OpenOutbound,
    /// No port rules (anti-spoofing stays).
    Open,
}

impl Reach {
    fn is_declared(&self) -> bool {
        *self == Reach::Declared
    }

    /// Whether traffic to the appliance is limited to its declared ports.
    pub fn limits_inbound(self) -> bool {
        matches!(self, Reach::Declared | Reach::OpenOutbound)
    }

    /// Whether the appliance's own traffic is limited to what its spec implies.
    pub fn limits_outbound(self) -> bool {
        matches!(self, Reach::Declared | Reach::OpenInbound)
    }
}

/// An egress destination: an address (a block of one) or a CIDR block.
pub fn parse_egress_to(s: &str) -> Result<contract::addr::Cidr, contract::addr::AddrError> {
    if s.contains('/') {
        let c = parse_cidr(s)?;
        Ok(c.network())
    } else {
        let addr = contract::addr::parse_ip(s)?;
        let prefix = if addr.is_ipv4() { 32 } else { 128 };
        Ok(contract::addr::Cidr { addr, prefix })
    }
}

fn default_guest_interface() -> String {
    "vec0".to_string()
}

/// Parses a spec from JSON text: syntax, version, then shape (with the JSON path of the first
/// problem), then [`check`].
pub fn parse(text: &[u8]) -> Result<Spec, Vec<String>> {
    let value = contract::json::parse_value(text).map_err(|e| vec![e.to_string()])?;
    let obj = value
        .as_object()
        .ok_or_else(|| vec!["the top level must be a JSON object".to_string()])?;
    if let Some(v) = obj.get("spec_version") {
        if v.as_u64() != Some(u64::from(SPEC_VERSION)) {
            return Err(vec![format!(
                "spec_version: {v} is not supported; this host-launch reads spec version {SPEC_VERSION}"
            )]);
        }
    }
    let spec: Spec = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." {
            "(top level)".into()
        } else {
            path
        };
        vec![format!("{path}: {}", e.into_inner())]
    })?;
    check(&spec).map_err(|p| p.0.iter().map(|p| p.to_string()).collect::<Vec<_>>())?;
    Ok(spec)
}

/// A name that is not an appliance name ([`check_name`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "'{0}' is not an appliance name; use 1 to 32 lowercase letters, digits and '-', not \
     starting with '-' (e.g. 'dns1')"
)]
pub struct NameError(String);

/// A valid appliance name: 1 to 32 of `[a-z0-9-]`, not starting with '-'.
pub fn check_name(name: &str) -> Result<(), NameError> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(NameError(name.into()))
    }
}

/// A name the `ip` tool or the kernel refuses for a host interface.
#[derive(Debug, thiserror::Error)]
#[error(
    "'{name}' is not a usable {what} name; use 1 to 15 letters, digits, '-', '_' or '.' \
     (e.g. 'tap-dns1')"
)]
struct IfnameError {
    what: &'static str,
    name: String,
}

/// A host interface or namespace name the `ip` tool and the kernel accept.
fn check_host_ifname(what: &'static str, name: &str) -> Result<(), IfnameError> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && !name.starts_with(['-', '.']);
    if ok {
        Ok(())
    } else {
        Err(IfnameError {
            what,
            name: name.into(),
        })
    }
}

/// A name `ip netns add` refuses.
#[derive(Debug, thiserror::Error)]
#[error(
    "'{0}' is not a network namespace name; use letters, digits, '-', '_' and '.' (as `ip netns \
     add` does)"
)]
struct NetnsError(String);

fn check_netns(name: &str) -> Result<(), NetnsError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && !name.starts_with(['-', '.']);
    if ok {
        Ok(())
    } else {
        Err(NetnsError(name.into()))
    }
}

/// The message for a spec that still names `run_as`.
pub const RUN_AS_GONE: &str = "is no longer used: every VM now runs jailed as an unprivileged \
     uid of its own, from the VM id range (see host-launch/README.md, Isolation); remove the \
     field";

/// Bounds on what one VM can make the host hold (see host-launch/README.md, Isolation).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HostLimits {
    /// Size cap of `console.log` (and of its one rotated predecessor), bytes; 4096 to 1 GiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console_log_bytes: Option<u64>,
    /// Size cap of `events.jsonl` (and of its predecessor), bytes; 4096 to 1 GiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_log_bytes: Option<u64>,
    /// Longest status line accepted, bytes; 256 to 65536. Longer ones are dropped and counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_line_bytes: Option<u32>,
    /// RLIMIT_NOFILE of the VM's host processes; 64 to 65536.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_files: Option<u64>,
    /// RLIMIT_NPROC of the VM's uid (one host process per guest address space); 16 to 65536.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processes: Option<u64>,
}

/// The disks' files (UML can carry them, each attached once) and sizes.
fn check_disks(disks: &[DiskSpec], ck: &mut Checker) {
    let mut files = BTreeSet::new();
    for (i, d) in disks.iter().enumerate() {
        let at = format!("disks[{i}]");
        ck.check(&format!("{at}.file"), contract::uml::check_path(&d.file));
        if !files.insert(d.file.as_str()) {
            ck.check(
                &format!("{at}.file"),
                Err(format!(
                    "'{}' is attached twice; each disk needs its own file",
                    d.file
                )),
            );
        }
        if d.size_mib == Some(0) {
            ck.check(
                &format!("{at}.size_mib"),
                Err("must be at least 1 (MiB)".to_string()),
            );
        }
        if let Some(n) = d.size_mib {
            if n > 16 * 1024 * 1024 {
                ck.check(
                    &format!("{at}.size_mib"),
                    Err(format!("{n} MiB is more than 16 TiB; check the unit (MiB)")),
                );
            }
        }
    }
}

/// The host side of the network: names, addresses, egress.
fn check_network(n: &NetworkSpec, ck: &mut Checker) {
    ck.check("network.tap", check_host_ifname("TAP device", &n.tap));
    if let Some(ns) = &n.netns {
        ck.check("network.netns", check_netns(ns));
    }
    if let Some(b) = &n.bridge {
        ck.check("network.bridge", check_host_ifname("bridge", b));
        if n.host_address.is_some() {
            ck.check(
                "network.bridge",
                Err(
                    "give either host_address or bridge, not both: a TAP device that \
                     joins a bridge has no address of its own"
                        .to_string(),
                ),
            );
        }
    }
    if let Some(a) = &n.host_address {
        ck.check("network.host_address", parse_cidr(a).map(|_| ()));
    }
    if let Some(m) = &n.mac {
        ck.check("network.mac", parse_mac(m).map(|_| ()));
    }
    for (i, a) in n.addresses.iter().enumerate() {
        ck.check(
            &format!("network.addresses[{i}]"),
            parse_cidr(a).map(|_| ()),
        );
    }
    for (i, e) in n.egress.iter().enumerate() {
        ck.check(
            &format!("network.egress[{i}].to"),
            parse_egress_to(&e.to).map(|_| ()).map_err(|m| {
                format!("{m}; give an address or a CIDR block (e.g. \"198.51.100.0/24\")")
            }),
        );
        if e.port == 0 {
            ck.check(
                &format!("network.egress[{i}].port"),
                Err("0 is not a port; give 1 to 65535".to_string()),
            );
        }
    }
}

fn check_limits(l: &HostLimits, ck: &mut Checker) {
    let mut range = |field: &str, v: Option<u64>, lo: u64, hi: u64| {
        if let Some(v) = v {
            let r = if (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(format!("{v} is out of range; give {lo} to {hi}"))
            };
            ck.check(&format!("limits.{field}"), r);
        }
    };
    range("console_log_bytes", l.console_log_bytes, 4096, 1 << 30);
    range("events_log_bytes", l.events_log_bytes, 4096, 1 << 30);
    range(
        "status_line_bytes",
        l.status_line_bytes.map(u64::from),
        256,
        65536,
    );
    range("open_files", l.open_files, 64, 65536);
    range("processes", l.processes, 16, 65536);
}

/// `needs` and `cpu_weight`, what the systemd generator reads.
fn check_systemd_fields(s: &Spec, ck: &mut Checker) {
    let mut seen = BTreeSet::new();
    for (i, n) in s.needs.iter().enumerate() {
        let at = format!("needs[{i}]");
        ck.check(&at, check_name(n));
        if n == &s.name {
            ck.check(
                &at,
                Err(format!(
                    "'{n}' is this appliance itself; an appliance cannot need itself"
                )),
            );
        } else if !seen.insert(n.as_str()) {
            ck.check(&at, Err(format!("'{n}' is listed twice")));
        }
    }
    if let Some(w) = s.cpu_weight {
        ck.check(
            "cpu_weight",
            if (1..=10000).contains(&w) {
                Ok(())
            } else {
                Err(format!(
                    "{w} is out of range; give 1 to 10000 (systemd's CPUWeight=, default 100)"
                ))
            },
        );
    }
}

/// Collects a spec's problems, each with the path of its field.
#[derive(Debug, Default)]
struct Checker(Vec<Problem>);

impl Checker {
    fn check<E: std::fmt::Display>(&mut self, path: &str, r: Result<(), E>) {
        if let Err(e) = r {
            self.0.push(Problem {
                path: path.to_string(),
                message: e.to_string(),
            });
        }
    }

    fn finish(self) -> Result<(), Problems> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Problems(self.0))
        }
    }
}

/// Every host-side problem of a spec at once. The guest-side settings (addresses, routes,
/// env, ...) are checked again by [`contract::validate`] after the merge.
pub fn check(s: &Spec) -> Result<(), Problems> {
    let mut ck = Checker::default();
    ck.check("name", check_name(&s.name));
    ck.check("image", crate::image_ref::check(&s.image));
    if let Some(m) = &s.manifest {
        ck.check(
            "manifest",
            if m.is_empty() {
                Err("is empty; leave it out to use '<image>.manifest.json'".to_string())
            } else {
                Ok(())
            },
        );
    }
    ck.check(
        "memory_mib",
        if (MIN_MEMORY_MIB..=65536).contains(&s.memory_mib) {
            Ok(())
        } else {
            Err(format!(
                "{} is out of range; give {MIN_MEMORY_MIB} to 65536 MiB (the kernel alone takes \
                 about 11 MiB and does not finish booting below {MIN_MEMORY_MIB}; a small service \
                 runs in 32)",
                s.memory_mib
            ))
        },
    );
    check_disks(&s.disks, &mut ck);
    if let Some(n) = &s.network {
        check_network(n, &mut ck);
    }
    if let Some(h) = &s.hostname {
        ck.check("hostname", contract::validate::check_hostname(h));
    }
    if s.run_as.is_some() {
        ck.check("run_as", Err(RUN_AS_GONE.to_string()));
    }
    if let Some(l) = &s.limits {
        check_limits(l, &mut ck);
    }
    check_systemd_fields(s, &mut ck);
    if let Some(k) = &s.kernel {
        ck.check(
            "kernel",
            if k.is_empty() {
                Err("is empty; leave it out to use /usr/bin/linux.uml".to_string())
            } else {
                Ok(())
            },
        );
    }
    ck.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal() -> &'static str {
        r#"{"name":"dns1","image":"root.img"}"#
    }

    #[test]
    fn minimal_spec_gets_defaults() {
        let s = parse(minimal().as_bytes()).unwrap();
        assert_eq!(s.memory_mib, 64);
        assert_eq!(s.spec_version, 1);
        assert!(s.disks.is_empty() && s.network.is_none());
    }

    #[test]
    fn unknown_fields_are_named_with_their_path() {
        let e =
            parse(br#"{"name":"a","image":"r","network":{"tap":"t","adresses":[]}}"#).unwrap_err();
        assert!(
            e[0].starts_with("network.adresses: unknown field `adresses`"),
            "{e:?}"
        );
    }

    #[test]
    fn every_problem_is_listed() {
        let e = parse(
            br#"{"name":"Bad Name","image":"a,b","memory_mib":4,
                 "network":{"tap":"this-name-is-far-too-long","host_address":"192.0.2.1"}}"#,
        )
        .unwrap_err();
        let text = e.join("\n");
        for part in [
            "name: 'Bad Name'",
            "image: 'a,b'",
            "memory_mib: 4",
            "network.tap:",
            "network.host_address: '192.0.2.1' has no prefix length",
        ] {
            assert!(text.contains(part), "{part} not in {text}");
        }
    }

    #[test]
    fn future_spec_version_is_a_version_error() {
        let e = parse(br#"{"spec_version":2,"name":"a","image":"r","new":1}"#).unwrap_err();
        assert!(
            e[0].starts_with("spec_version: 2 is not supported"),
            "{e:?}"
        );
    }

    #[test]
    fn run_as_is_refused_and_limits_are_checked() {
        let e = parse(br#"{"name":"a","image":"r","run_as":"root"}"#).unwrap_err();
        assert!(
            e.iter().any(|m| m.starts_with("run_as: is no longer used")),
            "{e:?}"
        );
        let e =
            parse(br#"{"name":"a","image":"r","limits":{"status_line_bytes":10,"processes":4}}"#)
                .unwrap_err();
        assert!(
            e.iter()
                .any(|m| m.starts_with("limits.status_line_bytes: 10 is out of range")),
            "{e:?}"
        );
        assert!(
            e.iter().any(|m| m.starts_with("limits.processes: 4")),
            "{e:?}"
        );
        assert!(parse(br#"{"name":"a","image":"r","limits":{"console_log_bytes":65536}}"#).is_ok());
    }
}
