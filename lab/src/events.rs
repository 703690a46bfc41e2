//! The status channel: guest-init writes one JSON object per line to the guest's `/dev/tty1`
//! (`{"event": NAME, "ts_us": .., "boot_us": .., "init_us": .., ...fields}`), which the harness
//! wires to a pipe (UML `con1=null,fd:3`) read by a thread.
//!
//! [`EventLog`] is what that thread fills and what tests wait on while the VM runs.

use crate::error::{Error, Result};
use serde_json::Value;
use std::io::Read;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// One status event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The event name, e.g. `service_started`.
    pub name: String,
    /// Guest wall clock, µs since the Unix epoch.
    pub ts_us: u64,
    /// Guest CLOCK_MONOTONIC (time since the kernel booted), µs.
    pub boot_us: u64,
    /// Time since guest-init started, µs.
    pub init_us: u64,
    /// The whole object, clocks and name included.
    pub json: Value,
    /// The event as the contract types it (`Other` for one it does not know).
    pub kind: contract::status::Event,
}

impl Event {
    /// Parses one status line; `None` for anything that is not an event object.
    pub fn parse(line: &str) -> Option<Event> {
        let contract::status::Line {
            event,
            clocks,
            value,
        } = contract::status::parse(line)?;
        Some(Event {
            name: event.name(),
            ts_us: clocks.ts_us,
            boot_us: clocks.boot_us,
            init_us: clocks.init_us,
            json: value,
            kind: event,
        })
    }

    /// A field of the event (`Value::Null` if absent).
    pub fn field(&self, key: &str) -> &Value {
        self.json.get(key).unwrap_or(&Value::Null)
    }

    /// A field as an integer.
    pub fn u64(&self, key: &str) -> Option<u64> {
        self.field(key).as_u64()
    }

    /// A field as an integer.
    pub fn i64(&self, key: &str) -> Option<i64> {
        self.field(key).as_i64()
    }

    /// A field as a string.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.field(key).as_str()
    }
}

#[derive(Debug, Default)]
struct State {
    /// Everything read, as text.
    raw: String,
    /// The partial line at the end of `raw` not parsed yet starts here.
    parsed_upto: usize,
    events: Vec<Event>,
    /// Lines that were not events (garbage on the channel is a test failure worth seeing).
    junk: Vec<String>,
    closed: bool,
}

/// The events read from a status channel so far; shared between the reader thread and tests.
#[derive(Debug, Clone, Default)]
pub struct EventLog {
    inner: Arc<(Mutex<State>, Condvar)>,
}

impl EventLog {
    pub fn new() -> EventLog {
        EventLog::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends raw bytes from the channel, parsing every complete line.
    pub fn push(&self, bytes: &[u8]) {
        let mut st = self.lock();
        st.raw.push_str(&String::from_utf8_lossy(bytes));
        while let Some(nl) = st.raw[st.parsed_upto..].find('\n') {
            let end = st.parsed_upto + nl;
            let line = st.raw[st.parsed_upto..end]
                .trim_end_matches('\r')
                .to_string();
            st.parsed_upto = end + 1;
            if line.trim().is_empty() {
                continue;
            }
            match Event::parse(&line) {
                Some(e) => st.events.push(e),
                None => st.junk.push(line),
            }
        }
        drop(st);
        self.inner.1.notify_all();
    }

    /// Marks the channel closed (the VM exited); waiters stop waiting.
    pub fn close(&self) {
        let mut st = self.lock();
        let rest = st.raw[st.parsed_upto..].trim().to_string();
        if !rest.is_empty() {
            st.parsed_upto = st.raw.len();
            match Event::parse(&rest) {
                Some(e) => st.events.push(e),
                None => st.junk.push(rest),
            }
        }
        st.closed = true;
        drop(st);
        self.inner.1.notify_all();
    }

    /// Reads `pipe` on a new thread until EOF, then closes the log.
    pub fn read_from(&self, mut pipe: impl Read + Send + 'static, echo: bool) {
        let log = self.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            while let Ok(n) = pipe.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                if echo {
                    eprint!("status: {}", String::from_utf8_lossy(&chunk[..n]));
                }
                log.push(&chunk[..n]);
            }
            log.close();
        });
    }

    /// A copy of the events so far.
    pub fn events(&self) -> Vec<Event> {
        self.lock().events.clone()
    }

    /// Everything read so far, as text.
    pub fn raw(&self) -> String {
        self.lock().raw.clone()
    }

    /// Lines that were not events.
    pub fn junk(&self) -> Vec<String> {
        self.lock().junk.clone()
    }

    /// Whether the channel reached EOF.
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Waits until `found` picks something out of the events, the channel closes, or
    /// `timeout` passes.
    pub fn wait_until<T>(
        &self,
        timeout: Duration,
        mut found: impl FnMut(&[Event]) -> Option<T>,
    ) -> std::result::Result<T, WaitError> {
        let deadline = Instant::now() + timeout;
        let mut st = self.lock();
        loop {
            if let Some(t) = found(&st.events) {
                return Ok(t);
            }
            if st.closed {
                return Err(WaitError::Closed);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(WaitError::TimedOut);
            }
            st = self
                .inner
                .1
                .wait_timeout(st, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// The first event called `name`, waiting for it up to `timeout`.
    pub fn wait_for(&self, name: &str, timeout: Duration) -> Result<Event> {
        self.wait_until(timeout, |evs| evs.iter().find(|e| e.name == name).cloned())
            .map_err(|why| self.wait_error(&format!("waiting for event {name:?}"), why, timeout))
    }

    /// The first `count` events called `name`, waiting for them up to `timeout`.
    pub fn wait_for_n(&self, name: &str, count: usize, timeout: Duration) -> Result<Vec<Event>> {
        self.wait_until(timeout, |evs| {
            let found: Vec<Event> = evs.iter().filter(|e| e.name == name).cloned().collect();
            (found.len() >= count).then_some(found)
        })
        .map_err(|why| {
            self.wait_error(
                &format!("waiting for {count} events {name:?}"),
                why,
                timeout,
            )
        })
    }

    fn wait_error(&self, what: &str, why: WaitError, timeout: Duration) -> Error {
        let why = match why {
            WaitError::Closed => "the status channel closed (the VM exited) first".to_string(),
            WaitError::TimedOut => format!("not there after {timeout:?}"),
        };
        Error::new(
            what,
            format!("{why}; events so far:\n{}", self.lock().raw.trim_end()),
        )
    }
}

/// Why [`EventLog::wait_until`] gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitError {
    TimedOut,
    Closed,
}

/// The names of `events`, in order.
pub fn names(events: &[Event]) -> Vec<&str> {
    events.iter().map(|e| e.name.as_str()).collect()
}

/// Whether `wanted` occur in `events` in this order (other events may come between).
pub fn in_order(events: &[Event], wanted: &[&str]) -> bool {
    let mut it = events.iter();
    wanted.iter().all(|w| it.any(|e| e.name == *w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_parsed_across_chunks() {
        let log = EventLog::new();
        log.push(b"{\"event\":\"a\",\"ts_us\":1,\"boot_us\":2,\"init_us\":3,\"pid\":4}\n{\"ev");
        log.push(b"ent\":\"b\",\"ts_us\":5,\"boot_us\":6,\"init_us\":7}\r\nnot json\n");
        log.push(b"{\"event\":\"c\",\"ts_us\":0,\"boot_us\":0,\"init_us\":0}");
        assert_eq!(names(&log.events()), ["a", "b"]);
        log.close();
        let evs = log.events();
        assert_eq!(names(&evs), ["a", "b", "c"]);
        assert_eq!(evs[0].u64("pid"), Some(4));
        assert_eq!((evs[1].ts_us, evs[1].boot_us, evs[1].init_us), (5, 6, 7));
        assert_eq!(log.junk(), ["not json"]);
        assert!(in_order(&evs, &["a", "c"]));
        assert!(!in_order(&evs, &["c", "a"]));
    }

    #[test]
    fn events_read_through_the_contract_type() {
        let e = Event::parse(
            r#"{"event":"ready","ts_us":1,"boot_us":2,"init_us":3,"after_ms":0,"pid":7}"#,
        )
        .unwrap();
        assert_eq!(
            e.kind,
            contract::status::Event::Ready {
                pid: 7,
                after_ms: 0,
                via: None
            }
        );
        assert_eq!(e.i64("pid"), Some(7));
        let other = Event::parse(r#"{"event":"x","n":1}"#).unwrap();
        assert!(matches!(other.kind, contract::status::Event::Other { .. }));
        assert_eq!(other.u64("n"), Some(1));
    }

    #[test]
    fn waiting_ends_on_the_event_on_close_or_on_timeout() {
        let log = EventLog::new();
        let writer = log.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            writer.push(b"{\"event\":\"x\",\"ts_us\":0,\"boot_us\":0,\"init_us\":0}\n");
            std::thread::sleep(Duration::from_millis(20));
            writer.close();
        });
        let e = log.wait_for("x", Duration::from_secs(5)).unwrap();
        assert_eq!(e.name, "x");
        let err = log.wait_for("y", Duration::from_secs(5)).unwrap_err();
        assert!(err.detail.contains("closed"), "{err}");
        t.join().unwrap();
        let fresh = EventLog::new();
        let err = fresh.wait_for("z", Duration::from_millis(10)).unwrap_err();
        assert!(err.detail.contains("not there"), "{err}");
    }
}
