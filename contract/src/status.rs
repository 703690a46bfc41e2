//! The status channel, the one encoding that flows from guest to host: one JSON object per
//! line, `{"event": NAME, "ts_us": .., "boot_us": .., "init_us": .., ...fields}`.
//!
//! `ts_us` is the guest's wall clock (µs since the Unix epoch), `boot_us` its CLOCK_MONOTONIC
//! (µs since the kernel booted), `init_us` the time since guest-init started. guest-init
//! writes these lines; host-launch and the tests read them. Pure: no I/O.

use serde_json::Value;

/// The clocks every event carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Clocks {
    pub ts_us: u64,
    pub boot_us: u64,
    pub init_us: u64,
}

const CLOCK_KEYS: [&str; 3] = ["ts_us", "boot_us", "init_us"];

/// One event line, newline included: the name and clocks first (for people reading the
/// stream), then the event's own fields (an object; anything else adds nothing).
pub fn render(event: &str, clocks: Clocks, fields: &Value) -> String {
    let mut line = format!(
        "{{\"event\":{},\"ts_us\":{},\"boot_us\":{},\"init_us\":{}",
        Value::from(event),
        clocks.ts_us,
        clocks.boot_us,
        clocks.init_us
    );
    if let Value::Object(map) = fields {
        for (key, value) in map {
            if key != "event" && !CLOCK_KEYS.contains(&key.as_str()) {
                line.push_str(&format!(",{}:{}", Value::from(key.as_str()), value));
            }
        }
    }
    line.push_str("}\n");
    line
}

/// Parses one status line; `None` for anything that is not a JSON object with an `event`, or
/// that names a field twice (the guest writes these bytes: read them one way only).
pub fn parse(line: &str) -> Option<Value> {
    let v = crate::json::parse_value(line.trim().as_bytes()).ok()?;
    v.get("event")?.as_str()?;
    Some(v)
}

/// The event's name (empty if it has none).
pub fn name(v: &Value) -> &str {
    v.get("event").and_then(Value::as_str).unwrap_or("")
}

/// The event's clocks (0 where absent).
pub fn clocks(v: &Value) -> Clocks {
    let clock = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
    Clocks {
        ts_us: clock("ts_us"),
        boot_us: clock("boot_us"),
        init_us: clock("init_us"),
    }
}

/// `service_started` with `{"pid":42,...}` → `service started: pid=42 ...`, leaving out the
/// name, the clocks and null fields. Control characters print escaped: the guest chose the
/// text, and the operator's terminal must not take it for commands.
pub fn human(event: &str, fields: &Value) -> String {
    let mut text = event.replace('_', " ");
    if let Value::Object(map) = fields {
        let parts: Vec<String> = map
            .iter()
            .filter(|(k, v)| {
                k.as_str() != "event" && !CLOCK_KEYS.contains(&k.as_str()) && !v.is_null()
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
    crate::json::printable(&text).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_event_is_one_line_with_name_and_clocks_first() {
        let at = Clocks {
            ts_us: 1,
            boot_us: 2,
            init_us: 3,
        };
        let line = render("service_started", at, &json!({"pid": 42, "note": "a\nb"}));
        assert_eq!(
            line,
            "{\"event\":\"service_started\",\"ts_us\":1,\"boot_us\":2,\"init_us\":3,\"note\":\"a\\nb\",\"pid\":42}\n"
        );
        let v = parse(&line).expect("parses back");
        assert_eq!(name(&v), "service_started");
        assert_eq!(
            clocks(&v),
            Clocks {
                ts_us: 1,
                boot_us: 2,
                init_us: 3
            }
        );
        assert_eq!(v["pid"], 42);
    }

    #[test]
    fn fields_cannot_override_the_name_or_clocks() {
        let line = render(
            "ready",
            Clocks::default(),
            &json!({"event": "x", "ts_us": 9}),
        );
        let v = parse(&line).expect("parses");
        assert_eq!(name(&v), "ready");
        assert_eq!(clocks(&v).ts_us, 0);
    }

    #[test]
    fn people_read_events_without_clocks_or_nulls() {
        let v = parse(r#"{"event":"ready","ts_us":1,"boot_us":2,"init_us":3,"pid":42,"x":null}"#)
            .expect("parses");
        assert_eq!(human(name(&v), &v), "ready: pid=42");
        assert_eq!(
            human(
                "power_off",
                &json!({"reason": "requested", "signal": "SIGINT"})
            ),
            "power off: reason=requested signal=SIGINT"
        );
        assert!(parse("garbage").is_none());
        assert!(parse(r#"{"no_event":1}"#).is_none());
    }

    #[test]
    fn hostile_lines_print_as_one_escaped_line() {
        let v =
            parse("{\"event\":\"fatal\\u001b[2J\",\"reason\":\"a\\nb\\u0000\"}").expect("event");
        assert_eq!(
            human(name(&v), &v),
            "fatal\\u{1b}[2J: reason=a\\u{a}b\\u{0}"
        );
        assert!(parse(r#"{"event":"ready","event":"fatal"}"#).is_none());
    }
}
