//! The DNS appliance on a data disk, in versions, for the upgrade test and benchmark: images
//! built from modified copies of `recipes/dns.json`, a data disk whose hosts file it answers,
//! its spec on the lab's network, and `dig` at it from the namespace.
//!
//! Needs dig.

use super::{disk_from_dir, Lab};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// The appliance's address.
pub const GUEST: &str = "192.0.2.53";
/// The name the data disk's hosts file answers, and its address.
pub const DATA_NAME: &str = "data.example.net";
pub const DATA_ADDRESS: &str = "192.0.2.99";

/// The checked-in DNS recipe with a data disk on `/data` and `/etc/version.conf` answering
/// `version.example.net TXT "<version>"`; `tweak` changes it further.
pub fn dns_recipe(version: &str, tweak: impl FnOnce(&mut Value)) -> Value {
    let path = e2e::workspace_root().join("images/recipes/dns.json");
    let mut r: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    r["name"] = format!("dns-{version}").into();
    r["files"] = json!([{
        "path": "/etc/version.conf",
        "content": format!("txt-record=version.example.net,\"{version}\"\n")
    }]);
    r["manifest"]["disks"] = json!([{"mount_point": "/data", "format_if_blank": false}]);
    tweak(&mut r);
    r
}

/// The spec's records: the example zone, the image's version record, the data disk's hosts.
pub fn dnsmasq_conf() -> String {
    "local=/example.net/\nhost-record=www.example.net,192.0.2.80\n\
     conf-file=/etc/version.conf\naddn-hosts=/data/hosts\n"
        .to_string()
}

impl Lab {
    /// An ext4 data disk `DIR/<file>` made on the host holding `/hosts` (the data the service
    /// answers).
    pub fn data_disk(&self, file: &str) -> PathBuf {
        let path = self.join(file);
        let content = self.join(&format!("{file}.content"));
        std::fs::create_dir_all(&content).unwrap();
        std::fs::write(
            content.join("hosts"),
            format!("{DATA_ADDRESS} {DATA_NAME}\n"),
        )
        .unwrap();
        disk_from_dir(&path, &content);
        path
    }

    /// Writes the spec of DNS appliance `name` on `image` with the data disk; returns its path.
    pub fn spec(&self, name: &str, image: &Path, disk: &Path, tap: &str) -> PathBuf {
        self.write_spec(&json!({
            "name": name,
            "image": image,
            "memory_mib": 48,
            "disks": [{"file": disk}],
            "files": [{"path": "/run/dnsmasq.conf", "mode": "0644", "content": dnsmasq_conf()}],
            "network": self.network(tap, GUEST),
        }))
    }

    /// `dig +short` of one name and type at the appliance (one try, one second).
    pub fn dig(&self, name: &str, rtype: &str) -> String {
        let out = self
            .command("dig")
            .args([
                &format!("@{GUEST}"),
                "+short",
                "+tries=1",
                "+time=1",
                rtype,
                name,
            ])
            .output()
            .expect("dig");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The version the appliance answers (`""` when it does not answer).
    pub fn version(&self) -> String {
        self.dig("version.example.net", "TXT").replace('"', "")
    }
}
