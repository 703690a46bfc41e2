//! Status events from the guest (one JSON object per line on UML's `con1`), and how they are
//! shown to the operator.

use serde_json::Value;

/// Parses one status line; `None` for anything that is not a JSON object with an `event`.
pub fn parse(line: &str) -> Option<Value> {
    let v: Value = serde_json::from_str(line.trim()).ok()?;
    v.get("event")?.as_str()?;
    Some(v)
}

/// The event's name.
pub fn name(v: &Value) -> &str {
    v["event"].as_str().unwrap_or("")
}

/// `{"event":"ready","pid":42,"ts_us":..}` → `ready: pid=42` (without the clocks).
pub fn human(v: &Value) -> String {
    let mut text = name(v).replace('_', " ");
    if let Value::Object(map) = v {
        let parts: Vec<String> = map
            .iter()
            .filter(|(k, v)| {
                !matches!(k.as_str(), "event" | "ts_us" | "boot_us" | "init_us") && !v.is_null()
            })
            .map(|(k, v)| match v {
                Value::String(s) => format!("{k}={s}"),
                other => format!("{k}={other}"),
            })
            .collect();
        if !parts.is_empty() {
            text.push_str(": ");
            text.push_str(&parts.join(" "));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_show() {
        let v = parse(r#"{"event":"ready","ts_us":1,"boot_us":2,"init_us":3,"pid":42,"x":null}"#)
            .unwrap();
        assert_eq!(name(&v), "ready");
        assert_eq!(human(&v), "ready: pid=42");
        assert!(parse("garbage").is_none());
        assert!(parse(r#"{"no_event":1}"#).is_none());
        let v = parse(r#"{"event":"power_off","reason":"requested","signal":"SIGINT"}"#).unwrap();
        assert_eq!(human(&v), "power off: reason=requested signal=SIGINT");
    }
}
