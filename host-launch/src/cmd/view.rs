//! The one JSON object of an appliance that `list --format json` and `status --format json`
//! print (each an array of them), documented in host-launch/README.md ("Machine-readable
//! output"). Times are RFC 3339 (UTC); facts are fields of their own, never prose.

use crate::cmd::status::status_word;
use crate::state::{self, Entry};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

/// A time recorded in milliseconds since the epoch, as RFC 3339 (UTC, milliseconds).
pub fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// Each image's facts, read once per command however many appliances share the image.
#[derive(Debug, Default)]
pub struct Images(BTreeMap<String, crate::trust::Facts>);

impl Images {
    fn facts(&mut self, image: &str) -> crate::trust::Facts {
        self.0
            .entry(image.to_string())
            .or_insert_with(|| {
                let path = std::path::Path::new(image);
                let manifest = appliance::manifest::path_beside(path);
                crate::trust::facts(path, &manifest)
            })
            .clone()
    }
}

/// The appliance object: the same keys for every appliance (null where not known).
pub fn appliance(e: &Entry, images: &mut Images) -> Value {
    let st = e.state.as_ref();
    let facts = st.and_then(|s| s.image.as_deref()).map(|i| images.facts(i));
    let policy = st
        .and_then(|s| s.policy.as_ref())
        .and_then(|p| crate::launch::nft::summary(&p.table, &e.name, p.netns.as_deref()));
    json!({
        "name": e.name,
        "status": status_word(e),
        "running": e.running,
        "phase": st.map(|s| s.phase.as_str()),
        "ready": st.is_some_and(|s| e.running && s.ready),
        "ready_after_ms": st.and_then(|s| s.ready_after_ms),
        "started_at": st.map(|s| rfc3339(s.started_at_ms)),
        "uptime_s": st.filter(|_| e.running)
            .map(|s| state::now_ms().saturating_sub(s.started_at_ms) / 1000),
        "exit_code": st.and_then(|s| s.exit_code),
        "outcome": st.and_then(|s| s.outcome.clone()),
        "managed_by": if st.is_some_and(|s| s.systemd.is_some()) { "systemd" } else { "host-launch" },
        "systemd_unit": st.and_then(|s| s.systemd.as_ref()).map(|s| s.unit.clone()),
        "launcher_pid": st.filter(|_| e.running).map(|s| s.launcher_pid),
        "uml_pid": st.filter(|_| e.running).and_then(|s| s.uml_pid),
        "spec": st.map(|s| s.spec.clone()),
        "image": st.and_then(|s| s.image.clone()),
        "digest": facts.as_ref().and_then(|f| f.digest.clone()),
        "signature": facts.as_ref().map(|f| f.signature),
        "signature_detail": facts.and_then(|f| f.signature_detail),
        "class": st.and_then(|s| s.class.clone()),
        "kernel": st.and_then(|s| s.kernel.clone()),
        "tap": st.and_then(|s| s.tap.as_ref()).map(|t| t.name.clone()),
        "policy": policy,
        "state": st,
    })
}

/// The objects of `entries`, as one JSON array.
pub fn appliances(entries: &[Entry]) -> String {
    let mut images = Images::default();
    let v: Vec<Value> = entries.iter().map(|e| appliance(e, &mut images)).collect();
    serde_json::to_string_pretty(&v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_are_rfc3339() {
        assert_eq!(
            super::rfc3339(1_700_000_000_123),
            "2023-11-14T22:13:20.123Z"
        );
    }
}
