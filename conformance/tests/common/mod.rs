//! What the class suite tests share.

pub mod build;

use serde_json::Value;

/// Every check names its boot (`[ipv4]`, `[ipv6]`, `[dual]`): each family was booted, and
/// the battery reached the guest over each address it had (the dual-stack boot over both).
pub fn assert_every_family(name: &str, report: &Value) {
    let details: Vec<&str> = report["checks"]
        .as_array()
        .map(|a| a.iter().filter_map(|c| c["detail"].as_str()).collect())
        .unwrap_or_default();
    for (family, addresses) in [
        ("ipv4", &["192.0.2.10"][..]),
        ("ipv6", &["2001:db8::10"][..]),
        ("dual", &["192.0.2.10", "2001:db8::10"][..]),
    ] {
        let tag = format!("[{family}] ");
        for a in addresses {
            assert!(
                details.iter().any(|d| d.starts_with(&tag) && d.contains(a)),
                "{name}: no check of the {family} boot over {a}: {report:#}"
            );
        }
    }
}
