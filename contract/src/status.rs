//! The status channel, the one encoding that flows from guest to host: one JSON object per
//! line, `{"event": NAME, "ts_us": .., "boot_us": .., "init_us": .., ...fields}`.
//!
//! `ts_us` is the guest's wall clock (µs since the Unix epoch), `boot_us` its CLOCK_MONOTONIC
//! (µs since the kernel booted), `init_us` the time since guest-init started. guest-init
//! writes these lines as [`Event`]s; host-launch and the tests read them back as [`Line`]s.
//! A line comes from the guest and is hostile input: it is read by the strict reader
//! ([`crate::json`]), an event whose name or fields this crate does not know becomes
//! [`Event::Other`] (another init may emit events of its own), and nothing in it is trusted
//! beyond that VM's own status. Pure: no I/O.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The clocks every event carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Clocks {
    pub ts_us: u64,
    pub boot_us: u64,
    pub init_us: u64,
}

/// How often guest-init sends a [`Event::Heartbeat`] when the host does not say
/// ([`HEARTBEAT_PARAM`]): once a second lets a host watchdog of a few seconds notice a hang.
pub const HEARTBEAT_INTERVAL_MS: u64 = 1_000;

/// The kernel parameter by which a host sets guest-init's heartbeat interval in ms, `0` for
/// none (guest-init's choice, not part of the contract: an init that does not know it ignores
/// it, and the kernel does not hand a dotted parameter to init). Each heartbeat wakes the
/// guest's PID 1 and the host: at hundreds of idle VMs per host that is most of their CPU, so
/// a host asks for them only when something watches (host-launch: under a systemd watchdog).
pub const HEARTBEAT_PARAM: &str = "guest_init.heartbeat_ms";

/// The longest heartbeat interval a host may ask for (guest-init's poll wakes at least this
/// often anyway).
pub const HEARTBEAT_MAX_MS: u64 = 60_000;

/// The heartbeat interval a `/proc/cmdline` asks for: `Ok(None)` for none (`0`), the default
/// without the parameter, and an error naming the parameter for a value that is not a number
/// of ms from 1 to [`HEARTBEAT_MAX_MS`] (then the caller keeps the default and says so).
pub fn heartbeat_interval_ms(cmdline_text: &str) -> Result<Option<u64>, HeartbeatError> {
    let Some(value) = crate::cmdline::find(cmdline_text, HEARTBEAT_PARAM) else {
        return Ok(Some(HEARTBEAT_INTERVAL_MS));
    };
    match value.parse::<u64>() {
        Ok(0) => Ok(None),
        Ok(ms) if ms <= HEARTBEAT_MAX_MS => Ok(Some(ms)),
        _ => Err(HeartbeatError {
            value: value.to_string(),
        }),
    }
}

/// A heartbeat parameter that is neither `0` nor a number of ms up to [`HEARTBEAT_MAX_MS`]
/// (its value as given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatError {
    pub value: String,
}

impl std::fmt::Display for HeartbeatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{HEARTBEAT_PARAM}={:?} is not 0 (no heartbeat) or a number of ms up to \
             {HEARTBEAT_MAX_MS}; sending one every {HEARTBEAT_INTERVAL_MS} ms",
            self.value
        )
    }
}

impl std::error::Error for HeartbeatError {}

/// The kernel argument that asks for a heartbeat every `interval` (`None`: none).
pub fn heartbeat_arg(interval: Option<std::time::Duration>) -> String {
    let ms = interval.map_or(0, |d| {
        u64::try_from(d.as_millis())
            .unwrap_or(u64::MAX)
            .clamp(1, HEARTBEAT_MAX_MS)
    });
    format!("{HEARTBEAT_PARAM}={ms}")
}

const CLOCK_KEYS: [&str; 3] = ["ts_us", "boot_us", "init_us"];

/// What a [`Event::Warning`] about console lines guest-init had to drop says.
pub const CONSOLE_DROPPED: &str = "log lines dropped while the console was blocked";

/// One status event, with its fields; the wire name is the variant's in snake case
/// (`ServiceStarted` is `service_started`). Fields that are `null` on the wire are `Option`s.
/// The events the host acts on (`ready`, `exited`, `restarting`, `fatal`, `power_off`) read
/// with defaults for absent fields, so another init's `{"event":"ready"}` still counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The contract was read and validated.
    ContractLoaded {
        hostname: String,
        service: String,
        /// Where it came from (`cmdline`, `device /dev/ubdc`).
        sources: Vec<String>,
        /// Where the network section came from: `contract`, `ip= parameter` or `none`.
        network: String,
    },
    /// Links, addresses and routes are configured.
    NetworkUp {
        links: Vec<String>,
        addresses: Vec<String>,
        routes: Vec<String>,
    },
    /// One data disk is mounted.
    DiskMounted {
        device: String,
        mount_point: String,
        formatted: bool,
        checked: bool,
    },
    /// Remote logging is on (`udp 192.0.2.14:514 rfc5424`).
    Logging { remote: String },
    /// The service was started (again, after `restarts` restarts).
    ServiceStarted {
        pid: i32,
        argv0: Option<String>,
        restarts: u64,
    },
    /// The service is ready, `after_ms` after its start; `via` the probe (`notify`,
    /// `tcp ADDR`), absent when the service has no readiness check.
    Ready {
        #[serde(default)]
        pid: i32,
        #[serde(default)]
        after_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        via: Option<String>,
    },
    /// The service ended: `status` in words, its exit code or the signal that ended it.
    Exited {
        #[serde(default)]
        pid: i32,
        #[serde(default)]
        status: String,
        code: Option<i32>,
        signal: Option<i32>,
        #[serde(default)]
        ran_ms: u64,
        /// The guest's OOM killer ended it (its kernel log names the pid). Optional: absent
        /// means no, or an init that does not tell.
        #[serde(default, skip_serializing_if = "is_false")]
        oom: bool,
    },
    /// The service is started again after `delay_ms`.
    Restarting {
        #[serde(default)]
        delay_ms: u64,
        #[serde(default)]
        restarts: u64,
    },
    /// PID 1 is alive: sent every [`HEARTBEAT_INTERVAL_MS`] while it supervises, so the host
    /// can tell a hung guest (kernel or PID 1) from a quiet one. `restarts` is the service's.
    Heartbeat {
        #[serde(default)]
        restarts: u64,
    },
    /// The guest's own figures, at a low rate (guest-init: every 10 s): memory from
    /// /proc/meminfo, the 1-minute load average, the uptime. Each is optional: absent when
    /// the guest could not read it. A host clamps them: they are the guest's word.
    Figures {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mem_total_kb: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mem_available_kb: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        load1: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        uptime_s: Option<f64>,
    },
    /// The liveness check failed `failures` times in a row (`threshold` restarts the
    /// service); `check` says which check (`exec /bin/x`, `tcp ADDR`), `error` how it failed.
    LivenessFailed {
        #[serde(default)]
        pid: i32,
        #[serde(default)]
        check: String,
        #[serde(default)]
        error: String,
        #[serde(default)]
        failures: u32,
        #[serde(default)]
        threshold: u32,
    },
    /// The data file systems are frozen (FIFREEZE, after a sync) at the host's request, for
    /// a snapshot; thawed on the host's `thaw` or after `bound_ms` at the latest.
    /// With a quiesce command (`service.quiesce`), `quiesce_ms` is how long it ran and
    /// `quiesce_error` why it failed or was killed at its timeout, absent when it exited 0:
    /// the file systems froze anyway, but the service's own data may be mid-write.
    Frozen {
        #[serde(default)]
        mount_points: Vec<String>,
        #[serde(default)]
        bound_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        quiesce_ms: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        quiesce_error: Option<String>,
    },
    /// A `freeze` request started the quiesce command (`command`, at most `timeout_ms`); the
    /// file systems freeze when it ends. The host waits that much longer for `frozen`.
    Quiescing {
        #[serde(default)]
        command: String,
        #[serde(default)]
        timeout_ms: u64,
    },
    /// The data file systems are thawed, `frozen_ms` after they froze; `by` is `request` or
    /// `bound` (the host never asked in time), or `refused: WHY` when nothing froze.
    Thawed {
        #[serde(default)]
        frozen_ms: u64,
        #[serde(default)]
        by: String,
    },
    /// A stop was requested: the stop signal goes out, SIGKILL after `stop_timeout_ms`.
    ShuttingDown {
        reason: String,
        stop_timeout_ms: u64,
    },
    /// The stop timeout passed.
    StopTimeout { action: String },
    /// Something went wrong that does not end the VM. Lost console lines are one, its
    /// reason containing [`CONSOLE_DROPPED`]: the host shows it where the console goes.
    Warning { reason: String },
    /// guest-init cannot go on; `field` is the contract's JSON path at fault, if any.
    Fatal {
        field: Option<String>,
        #[serde(default)]
        reason: String,
    },
    /// The data disks are down, one result each.
    DisksUnmounted { disks: Vec<Unmount> },
    /// The last event: why the VM powers off.
    PowerOff {
        #[serde(flatten)]
        why: PowerOff,
        #[serde(default)]
        processes_killed: u64,
    },
    /// An event this crate does not know, or whose fields it cannot read (another init's);
    /// `fields` is the whole object, name and clocks included. Never written by guest-init.
    #[serde(skip)]
    Other { name: String, fields: Value },
}

/// How one data disk was taken down.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unmount {
    pub mount_point: String,
    /// `unmounted`, `remounted read-only` or `failed: WHY`.
    pub result: String,
}

/// The reason of a `power_off`, tagged by `"reason"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reason")]
pub enum PowerOff {
    /// The service ended and its restart policy says not to restart it.
    #[serde(rename = "service ended")]
    ServiceEnded {
        status: String,
        code: Option<i32>,
        signal: Option<i32>,
    },
    /// The host asked (the signal, e.g. `SIGINT (ctrl-alt-del)`).
    #[serde(rename = "requested")]
    Requested { signal: String },
    /// guest-init could not go on: the contract field at fault, and the error when the
    /// service could not be started.
    #[serde(rename = "fatal")]
    Fatal {
        field: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// Another reason (another init's).
    #[serde(other)]
    Other,
}

impl Event {
    /// The wire name, e.g. `service_started`.
    pub fn name(&self) -> String {
        match self {
            Event::Other { name, .. } => name.clone(),
            known => fields_of(known)
                .get("event")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        }
    }

    /// The event's own fields as JSON (no name, no clocks).
    pub fn fields(&self) -> Map<String, Value> {
        let mut map = fields_of(self);
        map.remove("event");
        for k in CLOCK_KEYS {
            map.remove(k);
        }
        map
    }

    /// Reads an event from a parsed status object (one that has a string `event`).
    fn from_value(v: &Value) -> Event {
        Event::deserialize(v).unwrap_or_else(|_| Event::Other {
            name: name(v).to_string(),
            fields: v.clone(),
        })
    }

    /// `service_started` with `{"pid":42,...}` → `service started: pid=42 ...`, see [`human`].
    pub fn human(&self) -> String {
        human(&self.name(), &Value::Object(self.fields()))
    }
}

/// The object of an event, its name under `event` (an `Other`'s fields as they came).
/// For `skip_serializing_if`: an optional flag is written only when set.
fn is_false(b: &bool) -> bool {
    !*b
}

fn fields_of(ev: &Event) -> Map<String, Value> {
    let v = match ev {
        Event::Other { name, fields } => {
            let mut map = match fields {
                Value::Object(m) => m.clone(),
                _ => Map::new(),
            };
            map.insert("event".into(), Value::from(name.as_str()));
            return map;
        }
        // Serializing these plain types into a `Value` cannot fail (no maps with non-string
        // keys, no floats); an empty object would be the answer if it ever did.
        known => serde_json::to_value(known).unwrap_or_default(),
    };
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// One event as read from the channel: the event, its clocks and the object as it came.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub event: Event,
    pub clocks: Clocks,
    /// The whole object, name and clocks included (what the host records).
    pub value: Value,
}

/// One event line, newline included: the name and clocks first (for people reading the
/// stream), then the event's own fields in key order.
pub fn render(event: &Event, clocks: Clocks) -> String {
    let mut line = format!(
        "{{\"event\":{},\"ts_us\":{},\"boot_us\":{},\"init_us\":{}",
        Value::from(event.name()),
        clocks.ts_us,
        clocks.boot_us,
        clocks.init_us
    );
    for (key, value) in &event.fields() {
        line.push_str(&format!(",{}:{}", Value::from(key.as_str()), value));
    }
    line.push_str("}\n");
    line
}

/// Parses one status line; `None` for anything that is not a JSON object with a string
/// `event`, or that names a field twice (the guest writes these bytes: read them one way only).
pub fn parse(line: &str) -> Option<Line> {
    let value = parse_value(line)?;
    Some(Line {
        event: Event::from_value(&value),
        clocks: clocks(&value),
        value,
    })
}

/// Parses one status line to its JSON object, as [`parse`] does, without reading the event.
pub fn parse_value(line: &str) -> Option<Value> {
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

    const AT: Clocks = Clocks {
        ts_us: 1,
        boot_us: 2,
        init_us: 3,
    };

    #[test]
    fn an_event_is_one_line_with_name_and_clocks_first() {
        let ev = Event::ServiceStarted {
            pid: 42,
            argv0: Some("/bin/a\nb".into()),
            restarts: 0,
        };
        let line = render(&ev, AT);
        assert_eq!(
            line,
            "{\"event\":\"service_started\",\"ts_us\":1,\"boot_us\":2,\"init_us\":3,\"argv0\":\"/bin/a\\nb\",\"pid\":42,\"restarts\":0}\n"
        );
        let read = parse(&line).expect("parses back");
        assert_eq!(read.event, ev);
        assert_eq!(read.clocks, AT);
        assert_eq!(read.value["pid"], 42);
        assert_eq!(name(&read.value), "service_started");
    }

    /// The lines guest-init wrote before the events were typed, byte for byte.
    #[test]
    fn the_wire_format_is_what_it_was() {
        let cases: Vec<(Event, &str)> = vec![
            (
                Event::Ready {
                    pid: 7,
                    after_ms: 0,
                    via: None,
                },
                r#""pid":7,"after_ms":0"#,
            ),
            (
                Event::Ready {
                    pid: 7,
                    after_ms: 5,
                    via: Some("notify".into()),
                },
                r#""pid":7,"after_ms":5,"via":"notify""#,
            ),
            (
                Event::Exited {
                    pid: 7,
                    status: "exited with code 3".into(),
                    code: Some(3),
                    signal: None,
                    ran_ms: 9,
                    oom: false,
                },
                r#""pid":7,"status":"exited with code 3","code":3,"signal":null,"ran_ms":9"#,
            ),
            (
                Event::Exited {
                    pid: 7,
                    status: "killed by signal 9 (SIGKILL)".into(),
                    code: None,
                    signal: Some(9),
                    ran_ms: 9,
                    oom: true,
                },
                r#""pid":7,"status":"killed by signal 9 (SIGKILL)","code":null,"signal":9,"ran_ms":9,"oom":true"#,
            ),
            (
                Event::Fatal {
                    field: None,
                    reason: "r".into(),
                },
                r#""field":null,"reason":"r""#,
            ),
            (
                Event::DisksUnmounted {
                    disks: vec![Unmount {
                        mount_point: "/data".into(),
                        result: "unmounted".into(),
                    }],
                },
                r#""disks":[{"mount_point":"/data","result":"unmounted"}]"#,
            ),
            (
                Event::PowerOff {
                    why: PowerOff::ServiceEnded {
                        status: "s".into(),
                        code: None,
                        signal: Some(9),
                    },
                    processes_killed: 2,
                },
                r#""reason":"service ended","status":"s","code":null,"signal":9,"processes_killed":2"#,
            ),
            (
                Event::PowerOff {
                    why: PowerOff::Requested {
                        signal: "SIGTERM".into(),
                    },
                    processes_killed: 0,
                },
                r#""reason":"requested","signal":"SIGTERM","processes_killed":0"#,
            ),
            (
                Event::PowerOff {
                    why: PowerOff::Fatal {
                        field: Some("contract".into()),
                        error: None,
                    },
                    processes_killed: 0,
                },
                r#""reason":"fatal","field":"contract","processes_killed":0"#,
            ),
        ];
        for (ev, fields) in cases {
            let line = render(&ev, AT);
            let name = ev.name();
            // What the untyped writer made of the same fields (keys sorted, as serde_json's
            // map keeps them).
            let old: Value = serde_json::from_str(&format!("{{{fields}}}")).expect("fields");
            let mut want =
                format!("{{\"event\":\"{name}\",\"ts_us\":1,\"boot_us\":2,\"init_us\":3");
            for (k, v) in old.as_object().expect("object") {
                want.push_str(&format!(",{}:{}", Value::from(k.as_str()), v));
            }
            want.push_str("}\n");
            assert_eq!(line, want);
            assert_eq!(parse(&line).expect("parses").event, ev, "{line}");
        }
    }

    #[test]
    fn events_of_other_inits_are_kept_as_they_came() {
        let line = r#"{"event":"booted","ts_us":1,"custom":[1]}"#;
        let read = parse(line).expect("parses");
        assert_eq!(read.event.name(), "booted");
        assert!(
            matches!(&read.event, Event::Other { fields, .. } if fields["custom"] == json!([1]))
        );
        assert_eq!(read.clocks.ts_us, 1);
        assert_eq!(read.event.human(), "booted: custom=[1]");
        // A known name whose fields do not fit is another init's event too.
        let read = parse(r#"{"event":"ready","pid":"x"}"#).expect("parses");
        assert!(matches!(read.event, Event::Other { ref name, .. } if name == "ready"));
        let read = parse(r#"{"event":"ready"}"#).expect("parses");
        assert_eq!(
            read.event,
            Event::Ready {
                pid: 0,
                after_ms: 0,
                via: None
            }
        );
        let read = parse(r#"{"event":"contract_loaded"}"#).expect("parses");
        assert!(matches!(read.event, Event::Other { ref name, .. } if name == "contract_loaded"));
        // Unknown fields are ignored; an unknown power-off reason still is a power-off.
        let read = parse(r#"{"event":"ready","pid":1,"after_ms":2,"extra":true}"#).expect("ok");
        assert_eq!(
            read.event,
            Event::Ready {
                pid: 1,
                after_ms: 2,
                via: None
            }
        );
        let read =
            parse(r#"{"event":"power_off","reason":"halt","processes_killed":0}"#).expect("parses");
        assert!(matches!(
            read.event,
            Event::PowerOff {
                why: PowerOff::Other,
                ..
            }
        ));
    }

    #[test]
    fn fields_cannot_override_the_name_or_clocks() {
        let ev = Event::Other {
            name: "ready".into(),
            fields: json!({"event": "x", "ts_us": 9}),
        };
        let read = parse(&render(&ev, Clocks::default())).expect("parses");
        assert_eq!(name(&read.value), "ready");
        assert_eq!(read.clocks.ts_us, 0);
    }

    #[test]
    fn people_read_events_without_clocks_or_nulls() {
        let read =
            parse(r#"{"event":"ready","ts_us":1,"boot_us":2,"init_us":3,"pid":42,"x":null}"#)
                .expect("parses");
        assert_eq!(human(name(&read.value), &read.value), "ready: pid=42");
        assert_eq!(read.event.human(), "ready: after_ms=0 pid=42");
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
        let read =
            parse("{\"event\":\"fatal\\u001b[2J\",\"reason\":\"a\\nb\\u0000\"}").expect("event");
        assert_eq!(read.event.human(), "fatal\\u{1b}[2J: reason=a\\u{a}b\\u{0}");
        assert!(parse(r#"{"event":"ready","event":"fatal"}"#).is_none());
    }

    #[test]
    fn the_heartbeat_interval_comes_from_the_kernel_command_line() {
        let d = Some(HEARTBEAT_INTERVAL_MS);
        assert_eq!(heartbeat_interval_ms("root=/dev/ubda quiet"), Ok(d));
        assert_eq!(heartbeat_interval_ms("guest_init.heartbeat_ms=0"), Ok(None));
        assert_eq!(
            heartbeat_interval_ms("a guest_init.heartbeat_ms=2500 b"),
            Ok(Some(2500))
        );
        for bad in ["x", "-1", "60001", ""] {
            let e =
                heartbeat_interval_ms(&format!("guest_init.heartbeat_ms={bad}")).expect_err(bad);
            assert!(e.to_string().contains(HEARTBEAT_PARAM), "{e}");
        }
        // After `--` the arguments are init's, not the kernel's.
        assert_eq!(heartbeat_interval_ms("-- guest_init.heartbeat_ms=0"), Ok(d));
    }

    #[test]
    fn a_host_asks_for_the_heartbeat_it_reads_back() {
        use std::time::Duration;
        assert_eq!(heartbeat_arg(None), "guest_init.heartbeat_ms=0");
        let arg = heartbeat_arg(Some(Duration::from_millis(2500)));
        assert_eq!(heartbeat_interval_ms(&arg), Ok(Some(2500)));
        let huge = heartbeat_arg(Some(Duration::from_secs(3600)));
        assert_eq!(heartbeat_interval_ms(&huge), Ok(Some(HEARTBEAT_MAX_MS)));
        let tiny = heartbeat_arg(Some(Duration::from_micros(10)));
        assert_eq!(heartbeat_interval_ms(&tiny), Ok(Some(1)));
    }
}
