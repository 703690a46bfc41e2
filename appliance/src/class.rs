//! Appliance classes: one standard, server-neutral interface per kind of server, so that
//! images of one class from different vendors swap under the same spec
//! (`docs/classes/README.md`, one document per class). An image declares its class in its
//! manifest (`"class": {"name": "dns", "version": 1}`); this module knows the classes, their
//! versions, and checks a spec's class inputs, an image's class claims and an upgrade's
//! classes. Pure: no I/O.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
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
