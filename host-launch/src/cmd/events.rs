//! `events NAME [-f] [--format json]`: the status events the guest sent (boot, ready, the
//! service's exits, power-off), in words or one JSON object a line:
//! `{"name": APPLIANCE, "event": EVENT, "guest_time": RFC 3339, "fields": {...}}` (`name` as
//! in `list` and `status`; `guest_time` from the event's `ts_us`, the guest's wall clock).

use crate::error::Result;
use crate::events;
use crate::lifecycle::known;
use std::io::Write;

/// `events NAME`: the recorded events, then (with `follow`) the ones that come.
pub fn events(name: &str, follow: bool, json: bool) -> Result<i32> {
    let e = known(name)?;
    let path = e.dir.events();
    let (text, follower) = crate::tail::kept(&path, follow)?;
    let mut out = std::io::stdout().lock();
    for line in text.lines() {
        if let Some(s) = shown(name, line.as_bytes(), json) {
            if out.write_all(s.as_bytes()).is_err() {
                return Ok(0);
            }
        }
    }
    let _ = out.flush();
    drop(out);
    if let Some(f) = follower {
        crate::cmd::logs::follow(f, |l| shown(name, l, json).unwrap_or_default());
    }
    Ok(0)
}

/// One recorded event as printed (only when it is a JSON object), in words or as JSON.
fn shown(name: &str, line: &[u8], json: bool) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(line).ok()?;
    if !v.is_object() {
        return None;
    }
    Some(if json {
        format!("{}\n", object(name, v))
    } else {
        format!("{}\n", events::human(&v))
    })
}

/// The event object of `--format json`.
fn object(name: &str, mut v: serde_json::Value) -> serde_json::Value {
    let fields = v.as_object_mut().map(std::mem::take).unwrap_or_default();
    let event = fields
        .get("event")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("")
        .to_string();
    let guest_time = fields
        .get("ts_us")
        .and_then(serde_json::Value::as_u64)
        .map(|us| crate::cmd::view::rfc3339(us / 1000));
    let mut rest = fields;
    rest.remove("event");
    rest.remove("ts_us");
    serde_json::json!({"name": name, "event": event, "guest_time": guest_time, "fields": rest})
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_event_object_has_the_appliance_name_and_an_rfc3339_time() {
        let v = serde_json::json!({"event": "ready", "pid": 42, "ts_us": 1_700_000_000_123_456u64});
        assert_eq!(
            super::object("dns1", v),
            serde_json::json!({"name": "dns1", "event": "ready",
                "guest_time": "2023-11-14T22:13:20.123Z", "fields": {"pid": 42}})
        );
    }
}
