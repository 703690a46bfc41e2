//! Appliance classes: one standard, server-neutral interface per kind of server, so that
//! images of one class from different vendors swap under the same spec
//! (`docs/classes/README.md`, one document per class). An image declares its class in its
//! manifest (`"class": {"name": "dns", "version": 1}`); this module knows the classes, their
//! versions, and checks a spec's class inputs, an image's class claims and an upgrade's
//! classes. Pure: no I/O.

use crate::manifest::{Manifest, Protocol};
use crate::spec::Spec;
use contract::{Problem, Problems};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

/// Where a `dns` image finds its zones: one RFC 1035 zone file per zone, `<origin>.zone`.
pub const DNS_ZONES_DIR: &str = "/run/dns/zones";
/// Where `web` and `syslog` images mount their data disk.
pub const DATA_MOUNT: &str = "/data";
/// The `web` class's document root, on the data disk.
pub const WEB_ROOT: &str = "/data/www";
/// Where the `syslog` class keeps messages, on the data disk.
pub const SYSLOG_DIR: &str = "/data/log";

/// The kinds of server a class standardises.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ClassName {
    /// An authoritative DNS server (`docs/classes/dns.md`).
    Dns,
    /// A static web server (`docs/classes/web.md`).
    Web,
    /// A syslog collector (`docs/classes/syslog.md`).
    Syslog,
}

impl ClassName {
    pub fn as_str(self) -> &'static str {
        match self {
            ClassName::Dns => "dns",
            ClassName::Web => "web",
            ClassName::Syslog => "syslog",
        }
    }

    /// The newest version of the class this crate knows (every older one is known too).
    pub fn latest_version(self) -> u32 {
        1
    }
}

/// The class an image claims: which interface it implements, and which version of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Class {
    /// `dns`, `web` or `syslog`.
    pub name: ClassName,
    /// The version of the class's interface the image implements (1).
    pub version: u32,
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} v{}", self.name.as_str(), self.version)
    }
}

fn problem(path: impl Into<String>, message: impl Into<String>) -> Problem {
    Problem {
        path: path.into(),
        message: message.into(),
    }
}

fn done(p: Vec<Problem>) -> Result<(), Problems> {
    if p.is_empty() {
        Ok(())
    } else {
        Err(Problems(p))
    }
}

/// Whether this crate knows the class's version.
pub fn check_version(class: &Class) -> Result<(), Problem> {
    let latest = class.name.latest_version();
    if (1..=latest).contains(&class.version) {
        Ok(())
    } else {
        Err(problem(
            "class.version",
            format!(
                "the image implements class {} version {}, but this host-launch knows versions \
                 1 to {latest} of it; use a host-launch that knows it, or an image of a version \
                 it knows",
                class.name.as_str(),
                class.version
            ),
        ))
    }
}

/// Whether `spec` provides every input `class` requires (`docs/classes/<class>.md`): for
/// `dns` at least one zone file `/run/dns/zones/<origin>.zone` among its `files` (and nothing
/// else there), readable by others (the server's user is the image's); for `web` and `syslog` a data disk on `/data`. Every problem names the field
/// and the fix.
pub fn check_spec_inputs(class: &Class, spec: &Spec) -> Result<(), Problems> {
    if let Err(p) = check_version(class) {
        return Err(Problems(vec![p]));
    }
    match class.name {
        ClassName::Dns => check_dns_zones(spec),
        ClassName::Web => check_data_disk(class, spec, "the document root /data/www"),
        ClassName::Syslog => check_data_disk(class, spec, "the messages under /data/log"),
    }
}

/// The zone's origin a contract file path names, when it is in the zones directory.
pub fn zone_file_origin(path: &str) -> Option<&str> {
    path.strip_prefix(DNS_ZONES_DIR)?
        .strip_prefix('/')?
        .strip_suffix(".zone")
}

/// A zone origin as a file name: lowercase letters, digits, '-' and '_' in dot-separated
/// labels of 1 to 63, at most 253 in all, no trailing dot.
pub fn check_zone_origin(origin: &str) -> Result<(), ZoneOriginError> {
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if !origin.is_empty() && origin.len() <= 253 && origin.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(ZoneOriginError(origin.to_string()))
    }
}

/// A zone origin no zone file can be named by; holds the origin as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "'{0}' is not a zone name the file can be named by; use lowercase labels of letters, \
     digits, '-' and '_' separated by dots, without the trailing dot (e.g. \
     {DNS_ZONES_DIR}/example.net.zone)"
)]
pub struct ZoneOriginError(pub String);

fn check_dns_zones(spec: &Spec) -> Result<(), Problems> {
    let mut p = Vec::new();
    let mut zones = BTreeSet::new();
    let dir = format!("{DNS_ZONES_DIR}/");
    for (i, f) in spec.files.iter().enumerate() {
        if !f.path.starts_with(&dir) {
            continue;
        }
        let path = format!("files[{i}].path");
        match zone_file_origin(&f.path) {
            None => p.push(problem(
                path,
                format!(
                    "'{}' is in the class's zones directory but is not named <zone>.zone; the \
                     dns class reads only {DNS_ZONES_DIR}/<zone>.zone (e.g. \
                     {DNS_ZONES_DIR}/example.net.zone)",
                    f.path
                ),
            )),
            Some(origin) => match check_zone_origin(origin) {
                Err(m) => p.push(problem(path, m.to_string())),
                Ok(()) => {
                    // The server runs as a user of the image's, not as the file's owner.
                    let mode = u32::from_str_radix(&f.mode, 8).ok();
                    if mode.is_some_and(|m| m & 0o004 == 0) {
                        p.push(problem(
                            format!("files[{i}].mode"),
                            format!(
                                "{} leaves the zone file of {origin} unreadable to the DNS \
                                 server, which runs as a user of the image's own; use 0644",
                                f.mode
                            ),
                        ));
                    }
                    if f.content.trim().is_empty() {
                        p.push(problem(
                            format!("files[{i}].content"),
                            format!(
                                "the zone file of {origin} is empty; put the zone in RFC 1035 \
                                 master file format here (an SOA record first)"
                            ),
                        ));
                    }
                    zones.insert(origin.to_string());
                }
            },
        }
    }
    if zones.is_empty() && p.is_empty() {
        p.push(problem(
            "files",
            format!(
                "the image is of class dns, which serves the zones it is given, and the spec \
                 gives none; add a contract file {DNS_ZONES_DIR}/<zone>.zone holding the zone in \
                 RFC 1035 master file format, e.g. {{\"path\": \
                 \"{DNS_ZONES_DIR}/example.net.zone\", \"content\": \"$ORIGIN example.net.\\n...\"}} \
                 (docs/classes/dns.md)"
            ),
        ));
    }
    done(p)
}

/// A spec disk the guest mounts on `/data`: one naming it, or one leaving the mount point to
/// the image (whose class makes it `/data`, see [`check_manifest`]).
fn check_data_disk(class: &Class, spec: &Spec, what: &str) -> Result<(), Problems> {
    let has = spec
        .disks
        .iter()
        .any(|d| d.mount_point.as_deref().is_none_or(|m| m == DATA_MOUNT));
    if has {
        return Ok(());
    }
    done(vec![problem(
        "disks",
        format!(
            "the image is of class {}, which keeps {what} on a data disk mounted on {DATA_MOUNT}, \
             and the spec gives none; add one, e.g. \"disks\": [{{\"file\": \"data.img\", \
             \"size_mib\": 64}}] (docs/classes/{}.md)",
            class.name.as_str(),
            class.name.as_str()
        ),
    )])
}

/// Whether an image's manifest can honour the class it claims: the class's ports, and for
/// `web` and `syslog` a data disk on `/data`. The image builder checks this before it builds.
pub fn check_manifest(m: &Manifest) -> Result<(), Problems> {
    let Some(class) = &m.class else {
        return Ok(());
    };
    let mut p = Vec::new();
    if let Err(e) = check_version(class) {
        p.push(e);
    }
    let (port, protocols): (u16, &[Protocol]) = match class.name {
        ClassName::Dns => (53, &[Protocol::Udp, Protocol::Tcp]),
        ClassName::Web => (80, &[Protocol::Tcp]),
        ClassName::Syslog => (514, &[Protocol::Udp, Protocol::Tcp]),
    };
    for proto in protocols {
        if !m
            .ports
            .iter()
            .any(|x| x.port == port && x.protocol == *proto)
        {
            p.push(problem(
                "ports",
                format!(
                    "class {class} serves {port}/{}; declare it in the manifest's ports",
                    match proto {
                        Protocol::Udp => "udp",
                        Protocol::Tcp => "tcp",
                    }
                ),
            ));
        }
    }
    let wants_data = matches!(class.name, ClassName::Web | ClassName::Syslog);
    if wants_data && !m.disks.iter().any(|d| d.mount_point == DATA_MOUNT) {
        p.push(problem(
            "disks",
            format!("class {class} keeps its data on a disk mounted on {DATA_MOUNT}; declare it"),
        ));
    }
    done(p)
}

/// Whether an image of class `new` may take over an appliance running an image of class `old`:
/// the same class (or both unclassed), since the spec's inputs are those of the old class.
pub fn check_upgrade(old: Option<&Class>, new: Option<&Class>) -> Result<(), UpgradeError> {
    match (old, new) {
        (None, None) => Ok(()),
        (Some(o), Some(n)) if o.name == n.name => Ok(()),
        _ => Err(UpgradeError {
            old: old.cloned(),
            new: new.cloned(),
        }),
    }
}

/// An upgrade to an image of another class (or from or to no class).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "class: the new image is {}, the running one {}; an upgrade swaps images of one class \
     only, since the spec's inputs are that class's; write a spec for the new class and start \
     it as another appliance",
    shown(.new.as_ref()),
    shown(.old.as_ref())
)]
pub struct UpgradeError {
    pub old: Option<Class>,
    pub new: Option<Class>,
}

/// "of class dns v1" or "of no class", for [`UpgradeError`].
fn shown(c: Option<&Class>) -> String {
    match c {
        Some(c) => format!("of class {c}"),
        None => "of no class".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(extra: &str) -> Spec {
        crate::spec::parse(format!(r#"{{"name":"a","image":"i.img"{extra}}}"#).as_bytes()).unwrap()
    }

    const DNS: Class = Class {
        name: ClassName::Dns,
        version: 1,
    };
    const WEB: Class = Class {
        name: ClassName::Web,
        version: 1,
    };

    fn text(r: Result<(), Problems>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn dns_needs_a_zone_file() {
        let e = text(check_spec_inputs(&DNS, &spec("")));
        assert!(e.starts_with("files: the image is of class dns"), "{e}");
        assert!(e.contains("/run/dns/zones/<zone>.zone"), "{e}");
        let e = text(check_spec_inputs(
            &DNS,
            &spec(r#","files":[{"path":"/run/dnsmasq.conf","content":"x"}]"#),
        ));
        assert!(e.starts_with("files: "), "{e}");
        check_spec_inputs(
            &DNS,
            &spec(r#","files":[{"path":"/run/dns/zones/example.net.zone","content":"x"}]"#),
        )
        .unwrap();
    }

    #[test]
    fn dns_zone_files_are_named_and_not_empty() {
        let e = text(check_spec_inputs(
            &DNS,
            &spec(
                r#","files":[{"path":"/run/dns/zones/Example.NET.zone","content":"x"},
                   {"path":"/run/dns/zones/notes.txt","content":"x"},
                   {"path":"/run/dns/zones/ok.net.zone","content":" \n"}]"#,
            ),
        ));
        assert!(
            e.contains("files[0].path: 'Example.NET' is not a zone name"),
            "{e}"
        );
        assert!(
            e.contains("files[1].path: '/run/dns/zones/notes.txt'"),
            "{e}"
        );
        assert!(
            e.contains("files[2].content: the zone file of ok.net is empty"),
            "{e}"
        );
        let e = text(check_spec_inputs(
            &DNS,
            &spec(
                r#","files":[{"path":"/run/dns/zones/ok.net.zone","mode":"0600","content":"x"}]"#,
            ),
        ));
        assert!(
            e.starts_with("files[0].mode: 0600 leaves the zone file of ok.net unreadable"),
            "{e}"
        );
    }

    #[test]
    fn zone_origins() {
        assert_eq!(
            zone_file_origin("/run/dns/zones/example.net.zone"),
            Some("example.net")
        );
        assert_eq!(zone_file_origin("/run/dns/zonesx/a.zone"), None);
        for bad in ["", "a..b", ".a", "a.", "-a", &"a".repeat(64), "a/b", "a b"] {
            assert!(check_zone_origin(bad).is_err(), "{bad:?}");
        }
        let m = check_zone_origin("A.").unwrap_err().to_string();
        assert!(
            m.starts_with("'A.' is not a zone name")
                && m.ends_with("(e.g. /run/dns/zones/example.net.zone)"),
            "{m}"
        );
        for good in [
            "net",
            "example.net",
            "_tcp.x-1.example",
            "0.2.192.in-addr.arpa",
        ] {
            check_zone_origin(good).unwrap();
        }
    }

    #[test]
    fn web_and_syslog_need_a_data_disk() {
        let e = text(check_spec_inputs(&WEB, &spec("")));
        assert!(e.starts_with("disks: the image is of class web"), "{e}");
        let syslog = Class {
            name: ClassName::Syslog,
            version: 1,
        };
        let e = text(check_spec_inputs(
            &syslog,
            &spec(r#","disks":[{"file":"d.img","mount_point":"/srv"}]"#),
        ));
        assert!(e.contains("/data/log"), "{e}");
        check_spec_inputs(&WEB, &spec(r#","disks":[{"file":"d.img"}]"#)).unwrap();
        check_spec_inputs(
            &syslog,
            &spec(r#","disks":[{"file":"d.img","mount_point":"/data"}]"#),
        )
        .unwrap();
    }

    #[test]
    fn unknown_versions_are_refused() {
        let v2 = Class {
            name: ClassName::Dns,
            version: 2,
        };
        let e = text(check_spec_inputs(&v2, &spec("")));
        assert!(
            e.starts_with("class.version: the image implements class dns version 2"),
            "{e}"
        );
    }

    #[test]
    fn upgrades_keep_the_class() {
        check_upgrade(None, None).unwrap();
        check_upgrade(Some(&DNS), Some(&DNS)).unwrap();
        let e = check_upgrade(Some(&DNS), Some(&WEB))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("the new image is of class web v1, the running one of class dns v1"),
            "{e}"
        );
        let e = check_upgrade(None, Some(&DNS)).unwrap_err().to_string();
        assert!(e.contains("the running one of no class"), "{e}");
        let e = check_upgrade(Some(&DNS), None).unwrap_err().to_string();
        assert!(e.contains("the new image is of no class"), "{e}");
    }

    #[test]
    fn manifests_declare_what_the_class_serves() {
        let m = |s: &str| crate::manifest::parse(s.as_bytes()).unwrap();
        let ok = m(r#"{"contract_version":1,"class":{"name":"dns","version":1},
            "service":{"argv":["/x"]},
            "ports":[{"port":53,"protocol":"udp"},{"port":53,"protocol":"tcp"}]}"#);
        check_manifest(&ok).unwrap();
        let bad = m(r#"{"contract_version":1,"class":{"name":"web","version":1},
            "service":{"argv":["/x"]}}"#);
        let e = text(check_manifest(&bad));
        assert!(e.contains("ports: class web v1 serves 80/tcp"), "{e}");
        assert!(e.contains("disks: class web v1 keeps its data"), "{e}");
        let e = crate::manifest::parse(
            br#"{"contract_version":1,"class":{"name":"mail","version":1},"service":{"argv":["/x"]}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("class.name: unknown variant `mail`"), "{e}");
    }
}
