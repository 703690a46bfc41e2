//! Spec + manifest → host contract, plus where each data disk is attached. Pure: no I/O.
//!
//! The manifest gives the defaults (service, disks, tmpfs, sysctl, extra); the spec gives the
//! instance (hostname, network, logging, disks' files) and overrides (env, extra, sysctl, stop
//! timeout, a disk's fs type and options). The result is checked with [`contract::validate`],
//! and every way the spec fails to meet the image's needs is reported at once.

use crate::manifest::{Manifest, ManifestDisk};
use crate::spec::{DiskSpec, Spec};
use contract::uml::{ubd_device, ubd_number, MAX_UBD};
use contract::{Contract, Disk, Interface, Logging, Mounts, Network, Problem, Problems, Service};
use std::collections::BTreeSet;

/// A data disk with its place on the UML command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachedDisk {
    /// Index in the spec's `disks`.
    pub spec_index: usize,
    /// The host file as the spec gives it.
    pub file: String,
    /// `N` of `ubdN=`.
    pub ubd: usize,
    /// The guest device, `/dev/ubdb` for `ubd == 1`.
    pub device: String,
}

/// What the launcher needs to boot the appliance.
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    pub contract: Contract,
    pub disks: Vec<AttachedDisk>,
    /// `N` of the config device's `ubdNr=`.
    pub config_ubd: usize,
    /// The guest's memory in MiB (UML's `mem=`), the spec's.
    pub memory_mib: u32,
    /// The host TAP device the guest's first interface is joined to, if the spec gives one.
    pub tap: Option<String>,
}

/// Merges a spec and a manifest into a validated contract and a disk layout. A checklist: each
/// step adds what it finds wrong to one report, so every problem is reported at once, in this
/// order.
pub fn merge(spec: &Spec, manifest: &Manifest) -> Result<Merged, Problems> {
    let mut report = Report::default();
    check_version(manifest, &mut report);
    check_memory(spec, manifest, &mut report);
    let matched = match_disks(spec, manifest, &mut report);
    check_required_disks(manifest, &matched, &mut report);
    let (ubd, config_ubd) = number_disks(spec, manifest, &matched, &mut report);
    let (disks, guest_disks) = attach_disks(spec, manifest, &matched, &ubd);
    let contract = contract_of(spec, manifest, guest_disks);
    check_contract(&contract, spec, &disks, &mut report);
    report.into_result(Merged {
        contract,
        disks,
        config_ubd,
        memory_mib: spec.memory_mib,
        tap: spec.network.as_ref().map(|n| n.tap.clone()),
    })
}

/// The problems found so far, in the order the steps found them.
#[derive(Debug, Default)]
struct Report(Vec<Problem>);

impl Report {
    fn add(&mut self, path: impl Into<String>, message: String) {
        self.0.push(Problem {
            path: path.into(),
            message,
        });
    }

    fn into_result<T>(self, ok: T) -> Result<T, Problems> {
        if self.0.is_empty() {
            Ok(ok)
        } else {
            Err(Problems(self.0))
        }
    }
}

/// The image's contract version must be one this host speaks.
fn check_version(manifest: &Manifest, report: &mut Report) {
    if !contract::speaks(manifest.contract_version) {
        report.add(
            "manifest.contract_version",
            format!(
                "the image speaks host contract version {}, this host-launch speaks {} to {}",
                manifest.contract_version,
                contract::OLDEST_VERSION,
                contract::VERSION
            ),
        );
    }
}

/// The VM gets at least the memory the image needs.
fn check_memory(spec: &Spec, manifest: &Manifest, report: &mut Report) {
    if let Some(min) = manifest.min_memory_mib {
        if spec.memory_mib < min {
            report.add(
                "memory_mib",
                format!(
                    "{} MiB is less than the {min} MiB the image needs (manifest min_memory_mib); \
                     raise memory_mib",
                    spec.memory_mib
                ),
            );
        }
    }
}

/// For each of the spec's disks, the index of the manifest's disk it provides (by mount point,
/// else the next one not yet taken).
fn match_disks(spec: &Spec, manifest: &Manifest, report: &mut Report) -> Vec<Option<usize>> {
    let mut matched = Vec::new();
    let mut taken = BTreeSet::new();
    for (i, d) in spec.disks.iter().enumerate() {
        let found = match &d.mount_point {
            Some(mp) => manifest.disks.iter().position(|m| &m.mount_point == mp),
            None => {
                let next = (0..manifest.disks.len()).find(|j| !taken.contains(j));
                if next.is_none() {
                    report.add(
                        format!("disks[{i}].mount_point"),
                        "missing: the image's manifest declares no further data disk, so say \
                         where the guest mounts this one (e.g. \"mount_point\": \"/data\")"
                            .into(),
                    );
                }
                next
            }
        };
        if let Some(j) = found {
            check_match(i, d, &manifest.disks[j], taken.insert(j), report);
        }
        matched.push(found);
    }
    matched
}

/// Spec disk `i` provides `need`: once only (`first`), and large enough.
fn check_match(i: usize, d: &DiskSpec, need: &ManifestDisk, first: bool, report: &mut Report) {
    if !first {
        report.add(
            format!("disks[{i}].mount_point"),
            format!(
                "'{}' is given a disk twice; give each mount point one disk",
                need.mount_point
            ),
        );
    }
    if let (Some(min), Some(size)) = (need.min_size_mib, d.size_mib) {
        if size < min {
            report.add(
                format!("disks[{i}].size_mib"),
                format!(
                    "{size} MiB is less than the {min} MiB the image needs at {}",
                    need.mount_point
                ),
            );
        }
    }
}

/// Every disk the image requires is provided by the spec.
fn check_required_disks(manifest: &Manifest, matched: &[Option<usize>], report: &mut Report) {
    for (j, m) in manifest.disks.iter().enumerate() {
        if m.required && !matched.contains(&Some(j)) {
            report.add(
                "disks",
                format!(
                    "the image needs a data disk at {} ({}); add {{\"file\": \"<host file>\", \
                     \"size_mib\": <size>, \"mount_point\": \"{}\"}} to disks",
                    m.mount_point, m.fs_type, m.mount_point
                ),
            );
        }
    }
}

/// The ubd number of each spec disk (first the devices the manifest asks for, then the next
/// free ones), and the config device's after them all.
fn number_disks(
    spec: &Spec,
    manifest: &Manifest,
    matched: &[Option<usize>],
    report: &mut Report,
) -> (Vec<Option<usize>>, usize) {
    let mut ubd: Vec<Option<usize>> = vec![None; spec.disks.len()];
    let mut used = BTreeSet::from([0usize]);
    for (i, found) in matched.iter().enumerate() {
        let Some(dev) = found.and_then(|j| manifest.disks[j].device.as_deref()) else {
            continue;
        };
        ubd[i] = claim_device(i, dev, &mut used, report);
    }
    for slot in ubd.iter_mut().filter(|s| s.is_none()) {
        if let Some(n) = (1..MAX_UBD).find(|n| !used.contains(n)) {
            used.insert(n);
            *slot = Some(n);
        }
    }
    let config_ubd = used.iter().max().copied().unwrap_or(0) + 1;
    if config_ubd >= MAX_UBD || ubd.iter().any(|u| u.is_none()) {
        report.add(
            "disks",
            format!(
                "too many disks: UML attaches at most {} data disks besides the root image and \
                 the config device",
                MAX_UBD - 2
            ),
        );
    }
    (ubd, config_ubd)
}

/// The ubd number of the device `dev` the manifest puts spec disk `i` on, if it is free and
/// leaves room for the config device after it.
fn claim_device(
    i: usize,
    dev: &str,
    used: &mut BTreeSet<usize>,
    report: &mut Report,
) -> Option<usize> {
    match ubd_number(dev) {
        Some(n) if (1..MAX_UBD - 1).contains(&n) && used.insert(n) => Some(n),
        Some(n) if (1..MAX_UBD - 1).contains(&n) => {
            report.add(
                format!("disks[{i}]"),
                format!("the manifest puts two disks on {dev}; the image is inconsistent"),
            );
            None
        }
        _ => {
            report.add(
                format!("disks[{i}]"),
                format!(
                    "the manifest expects this disk on '{dev}', which host-launch cannot \
                     attach; use /dev/ubdb to /dev/ubdo"
                ),
            );
            None
        }
    }
}

/// Each numbered spec disk twice: as the host attaches it and as the guest mounts it.
fn attach_disks(
    spec: &Spec,
    manifest: &Manifest,
    matched: &[Option<usize>],
    ubd: &[Option<usize>],
) -> (Vec<AttachedDisk>, Vec<Disk>) {
    let mut attached = Vec::new();
    let mut guest = Vec::new();
    for (i, d) in spec.disks.iter().enumerate() {
        let Some(n) = ubd[i] else { continue };
        let device = ubd_device(n);
        let need = matched[i].map(|j| &manifest.disks[j]);
        guest.push(guest_disk(d, need, device.clone()));
        attached.push(AttachedDisk {
            spec_index: i,
            file: d.file.clone(),
            ubd: n,
            device,
        });
    }
    (attached, guest)
}

/// The contract's disk: the spec's values, else the image's, else the defaults.
fn guest_disk(d: &DiskSpec, need: Option<&ManifestDisk>, device: String) -> Disk {
    let mount_point = d.mount_point.clone();
    Disk {
        device,
        mount_point: mount_point
            .or_else(|| need.map(|m| m.mount_point.clone()))
            .unwrap_or_default(),
        fs_type: d
            .fs_type
            .clone()
            .or_else(|| need.map(|m| m.fs_type.clone()))
            .unwrap_or_else(|| "ext4".into()),
        options: d
            .options
            .clone()
            .or_else(|| need.map(|m| m.options.clone()))
            .unwrap_or_default(),
        format_if_blank: d
            .format_if_blank
            .or(need.map(|m| m.format_if_blank))
            .unwrap_or(false),
        owner_uid: need.and_then(|m| m.owner_uid),
        owner_gid: need.and_then(|m| m.owner_gid),
    }
}

/// The contract: the image's defaults with the spec's instance values and overrides.
fn contract_of(spec: &Spec, manifest: &Manifest, disks: Vec<Disk>) -> Contract {
    let mut sysctl = manifest.sysctl.clone();
    sysctl.extend(spec.sysctl.iter().map(|(k, v)| (k.clone(), v.clone())));
    Contract {
        // The image's version, never a newer one its guest-init would refuse (H-VER-1).
        version: manifest.contract_version,
        hostname: spec.hostname.clone().unwrap_or_else(|| spec.name.clone()),
        network: network_of(spec),
        logging: Logging {
            remote: spec.syslog.clone(),
            console: true,
        },
        service: service_of(spec, manifest),
        mounts: Mounts {
            disks,
            tmpfs: manifest.tmpfs.clone(),
        },
        files: spec.files.clone(),
        sysctl,
        extra: merge_extra(manifest.extra.as_ref(), spec.extra.as_ref()),
    }
}

/// The image's service with the spec's env, stop timeout, liveness check and rlimits.
fn service_of(spec: &Spec, manifest: &Manifest) -> Service {
    let mut service = manifest.service.clone();
    service
        .env
        .extend(spec.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    if let Some(t) = spec.stop_timeout_ms {
        service.stop_timeout_ms = t;
    }
    if let Some(l) = &spec.liveness {
        service.liveness = Some(l.clone());
    }
    service
        .rlimits
        .extend(spec.rlimits.iter().map(|(k, v)| (k.clone(), *v)));
    service
}

/// The guest's one interface, its routes and resolver, from the spec's network.
fn network_of(spec: &Spec) -> Option<Network> {
    spec.network.as_ref().map(|n| Network {
        interfaces: vec![Interface {
            name: n.guest_interface.clone(),
            mac: Some(n.mac.clone().unwrap_or_else(|| derived_mac(&spec.name))),
            addresses: n.addresses.clone(),
            mtu: n.mtu,
        }],
        routes: n.routes.clone(),
        dns_servers: n.dns_servers.clone(),
        search_domains: n.search_domains.clone(),
    })
}

/// The contract is valid and what it makes the guest hold fits the VM's memory (see
/// contract::budget); each problem named by where the operator wrote the value.
fn check_contract(contract: &Contract, spec: &Spec, disks: &[AttachedDisk], report: &mut Report) {
    let budget = contract::budget::check(contract, spec.memory_mib);
    let found = contract::validate(contract)
        .err()
        .into_iter()
        .chain(budget.err());
    for p in found.flat_map(|f| f.0) {
        report.add(contract_path_to_source(&p.path, spec, disks), p.message);
    }
}

/// The MAC of an appliance whose spec gives none: locally administered, unicast, the same for
/// a name on every start (the network policy allows the guest this one MAC, and a neighbour's
/// ARP cache stays right across restarts). Five bytes of SHA-256 of the name: two of 500
/// appliances on one bridge share one with a chance of about 1 in 10^7.
pub fn derived_mac(name: &str) -> String {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(format!("host-launch mac {name}").as_bytes());
    format!(
        "02:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        h[0], h[1], h[2], h[3], h[4]
    )
}

/// Objects merge key by key (the spec wins); anything else from the spec replaces the default.
fn merge_extra(
    default: Option<&serde_json::Value>,
    over: Option<&serde_json::Value>,
) -> Option<serde_json::Value> {
    match (default, over) {
        (Some(serde_json::Value::Object(d)), Some(serde_json::Value::Object(o))) => {
            let mut m = d.clone();
            m.extend(o.iter().map(|(k, v)| (k.clone(), v.clone())));
            Some(serde_json::Value::Object(m))
        }
        (d, o) => o.or(d).cloned(),
    }
}

/// Names a contract problem by where the operator wrote the value: `network.interfaces[0]
/// .addresses[1]` → `network.addresses[1]`, `service.env.X` → `env.X`, and so on. Paths that
/// come from the manifest are prefixed `manifest:`.
fn contract_path_to_source(path: &str, spec: &Spec, disks: &[AttachedDisk]) -> String {
    let spec_net = [
        ("network.interfaces[0].addresses", "network.addresses"),
        ("network.interfaces[0].mac", "network.mac"),
        ("network.interfaces[0].mtu", "network.mtu"),
        ("network.interfaces[0].name", "network.guest_interface"),
        ("network.routes", "network.routes"),
        ("network.dns_servers", "network.dns_servers"),
        ("network.search_domains", "network.search_domains"),
        ("logging.remote", "syslog"),
        ("hostname", "hostname"),
        ("files", "files"),
        ("extra", "extra"),
    ];
    for (from, to) in spec_net {
        if let Some(rest) = path.strip_prefix(from) {
            if from == "hostname" && spec.hostname.is_none() {
                return format!("name (used as the hostname){rest}");
            }
            return format!("{to}{rest}");
        }
    }
    if let Some(key) = path.strip_prefix("service.env.") {
        if spec.env.contains_key(key) {
            return format!("env.{key}");
        }
    }
    if path == "service.stop_timeout_ms" && spec.stop_timeout_ms.is_some() {
        return "stop_timeout_ms".into();
    }
    if let Some(rest) = path.strip_prefix("service.liveness") {
        if spec.liveness.is_some() {
            return format!("liveness{rest}");
        }
    }
    if let Some(rest) = path.strip_prefix("service.rlimits") {
        let key = rest.trim_start_matches('.').split('.').next().unwrap_or("");
        if spec.rlimits.contains_key(key) || (rest.is_empty() && !spec.rlimits.is_empty()) {
            return format!("rlimits{rest}");
        }
    }
    if let Some(key) = path.strip_prefix("sysctl.") {
        if spec.sysctl.contains_key(key) {
            return path.to_string();
        }
    }
    if let Some(rest) = path.strip_prefix("mounts.disks[") {
        if let Some((n, field)) = rest.split_once(']') {
            if let Some(d) = n.parse::<usize>().ok().and_then(|n| disks.get(n)) {
                return format!(
                    "disks[{}]{field} (as merged with the manifest)",
                    d.spec_index
                );
            }
        }
    }
    format!("manifest: {path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> Spec {
        crate::spec::parse(json.as_bytes()).unwrap()
    }

    fn manifest(json: &str) -> Manifest {
        crate::manifest::parse(json.as_bytes()).unwrap()
    }

    const M_DATA: &str = r#"{"contract_version":1,
        "service":{"argv":["/bin/httpd"],"env":{"A":"1","B":"2"},"stop_timeout_ms":3000},
        "disks":[{"mount_point":"/data","format_if_blank":true,"options":["noatime"]}],
        "extra":{"zone":"example.net","ttl":60}}"#;

    #[test]
    fn disks_network_env_and_extra_merge() {
        let s = spec(
            r#"{"name":"web1","image":"r.img","disks":[{"file":"d.img","size_mib":8}],
                "env":{"B":"x","C":"3"},"extra":{"ttl":30},"stop_timeout_ms":1000,
                "network":{"tap":"tap0","host_address":"192.0.2.1/24",
                           "addresses":["192.0.2.10/24"],
                           "routes":[{"destination":"0.0.0.0/0","gateway":"192.0.2.1"}],
                           "dns_servers":["192.0.2.53"]}}"#,
        );
        let m = merge(&s, &manifest(M_DATA)).unwrap();
        let c = &m.contract;
        assert_eq!(c.hostname, "web1");
        assert_eq!(m.disks.len(), 1);
        assert_eq!(m.disks[0].device, "/dev/ubdb");
        assert_eq!(m.disks[0].ubd, 1);
        assert_eq!(m.config_ubd, 2);
        assert_eq!(c.mounts.disks[0].mount_point, "/data");
        assert!(c.mounts.disks[0].format_if_blank);
        assert_eq!(c.mounts.disks[0].options, ["noatime"]);
        assert_eq!(c.service.env["A"], "1");
        assert_eq!(c.service.env["B"], "x");
        assert_eq!(c.service.env["C"], "3");
        assert_eq!(c.service.stop_timeout_ms, 1000);
        assert_eq!(
            c.extra,
            Some(serde_json::json!({"zone":"example.net","ttl":30}))
        );
        let net = c.network.as_ref().unwrap();
        assert_eq!(net.interfaces[0].name, "vec0");
        assert_eq!(net.interfaces[0].addresses, ["192.0.2.10/24"]);
        assert_eq!(net.dns_servers, ["192.0.2.53"]);
    }

    #[test]
    fn a_missing_required_disk_is_refused() {
        let s = spec(r#"{"name":"web1","image":"r.img"}"#);
        let e = merge(&s, &manifest(M_DATA)).unwrap_err().to_string();
        assert!(
            e.starts_with("disks: the image needs a data disk at /data (ext4)"),
            "{e}"
        );
    }

    #[test]
    fn manifest_devices_are_honoured() {
        let m = manifest(
            r#"{"contract_version":1,"service":{"argv":["/x"]},
                "disks":[{"mount_point":"/a"},{"mount_point":"/b","device":"/dev/ubdb"}]}"#,
        );
        let s = spec(
            r#"{"name":"x","image":"r","disks":[{"file":"a"},{"file":"b","mount_point":"/b"}]}"#,
        );
        let out = merge(&s, &m).unwrap();
        assert_eq!(out.disks[0].device, "/dev/ubdc");
        assert_eq!(out.disks[1].device, "/dev/ubdb");
        assert_eq!(out.config_ubd, 3);
    }

    #[test]
    fn extra_disk_without_mount_point_is_refused() {
        let m = manifest(r#"{"contract_version":1,"service":{"argv":["/x"]}}"#);
        let s = spec(r#"{"name":"x","image":"r","disks":[{"file":"a"}]}"#);
        let e = merge(&s, &m).unwrap_err().to_string();
        assert!(e.starts_with("disks[0].mount_point: missing"), "{e}");
        let s = spec(r#"{"name":"x","image":"r","disks":[{"file":"a","mount_point":"/srv"}]}"#);
        let out = merge(&s, &m).unwrap();
        assert_eq!(out.contract.mounts.disks[0].fs_type, "ext4");
    }

    #[test]
    fn contract_problems_name_the_spec_field() {
        let m = manifest(r#"{"contract_version":1,"service":{"argv":["/x"]}}"#);
        let s = spec(
            r#"{"name":"x","image":"r","env":{"1BAD":"v"},
                "network":{"tap":"t","dns_servers":["not-an-ip"]}}"#,
        );
        let e = merge(&s, &m).unwrap_err().to_string();
        assert!(e.contains("network.dns_servers[0]: 'not-an-ip'"), "{e}");
        assert!(
            e.contains("env.1BAD: '1BAD' is not a valid variable name"),
            "{e}"
        );
        let m = manifest(r#"{"contract_version":1,"service":{"argv":["relative"]}}"#);
        let s = spec(r#"{"name":"x","image":"r"}"#);
        let e = merge(&s, &m).unwrap_err().to_string();
        assert!(e.starts_with("manifest: service.argv[0]"), "{e}");
    }

    #[test]
    fn the_contract_has_the_images_version_and_rlimits_need_version_2() {
        let s = spec(r#"{"name":"x","image":"r"}"#);
        let v1 = manifest(r#"{"contract_version":1,"service":{"argv":["/x"]}}"#);
        assert_eq!(merge(&s, &v1).unwrap().contract.version, 1);
        let v2 = manifest(
            r#"{"contract_version":2,"service":{"argv":["/x"],
                "rlimits":{"RLIMIT_NOFILE":{"soft":64,"hard":128},"RLIMIT_CORE":{"soft":0,"hard":0}}}}"#,
        );
        let with = spec(
            r#"{"name":"x","image":"r","rlimits":{"RLIMIT_NOFILE":{"soft":512,"hard":1024}}}"#,
        );
        let c = merge(&with, &v2).unwrap().contract;
        assert_eq!(c.version, 2);
        let nofile = contract::Rlimit {
            soft: 512,
            hard: 1024,
        };
        assert_eq!(c.service.rlimits["RLIMIT_NOFILE"], nofile, "the spec wins");
        assert_eq!(
            c.service.rlimits["RLIMIT_CORE"].hard, 0,
            "the image's stays"
        );
        // A version 1 image cannot take them: the operator is told which field and why.
        let e = merge(&with, &v1).unwrap_err().to_string();
        assert!(
            e.starts_with(
                "rlimits: resource limits need contract version 2, and this contract is version 1"
            ),
            "{e}"
        );
        let bad =
            spec(r#"{"name":"x","image":"r","rlimits":{"RLIMIT_NOFILE":{"soft":9,"hard":8}}}"#);
        let e = merge(&bad, &v2).unwrap_err().to_string();
        assert!(
            e.starts_with("rlimits.RLIMIT_NOFILE.soft: 9 is above the hard limit 8"),
            "{e}"
        );
    }

    #[test]
    fn memory_below_the_image_minimum() {
        let m =
            manifest(r#"{"contract_version":1,"service":{"argv":["/x"]},"min_memory_mib":128}"#);
        let s = spec(r#"{"name":"x","image":"r"}"#);
        let e = merge(&s, &m).unwrap_err().to_string();
        assert!(
            e.starts_with("memory_mib: 64 MiB is less than the 128 MiB"),
            "{e}"
        );
    }
}
