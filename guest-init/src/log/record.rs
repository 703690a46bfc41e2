//! One log line before formatting: its severity, the stream it came from, and who wrote it.

use std::time::SystemTime;

/// APP-NAME of guest-init's own messages (including the "lines dropped" notices).
pub const INIT_APP: &str = "guest-init";

/// Syslog severities (RFC 5424 6.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Emergency = 0,
    Alert = 1,
    Critical = 2,
    Error = 3,
    Warning = 4,
    Notice = 5,
    Info = 6,
    Debug = 7,
}

impl Severity {
    /// The numeric code that goes into PRI.
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// Which pipe of the service a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    /// stdout lines are `info`; stderr lines are `warning`: distinguishable on the receiver,
    /// but not `err`, because many programs (Python's `logging`, Go's `log`) write ordinary
    /// diagnostics to stderr and would otherwise trip error-level alerting.
    pub fn severity(self) -> Severity {
        match self {
            Stream::Stdout => Severity::Info,
            Stream::Stderr => Severity::Warning,
        }
    }
}

/// One log line, before formatting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub severity: Severity,
    pub timestamp: SystemTime,
    pub text: String,
    /// PROCID; `None` prints as `-`.
    pub pid: Option<u32>,
    /// APP-NAME: the service's name, or [`INIT_APP`].
    pub app: String,
}

impl Record {
    /// A record stamped with the current time.
    pub fn new(severity: Severity, app: &str, pid: Option<u32>, text: impl Into<String>) -> Record {
        Record {
            severity,
            timestamp: SystemTime::now(),
            text: text.into(),
            pid,
            app: app.to_string(),
        }
    }

    /// A line of the service's output; the severity follows [`Stream::severity`].
    pub fn service(stream: Stream, app: &str, pid: Option<u32>, text: impl Into<String>) -> Record {
        Record::new(stream.severity(), app, pid, text)
    }

    /// One of guest-init's own messages (APP-NAME `guest-init`, PROCID our pid, 1 in the VM).
    pub fn init(severity: Severity, text: impl Into<String>) -> Record {
        Record::new(severity, INIT_APP, Some(std::process::id()), text)
    }
}

/// Records with a fixed time, for the formatting tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::{Record, Severity};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    fn at(secs: u64, micros: u32) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_micros(u64::from(micros))
    }

    pub(crate) fn rec(severity: Severity, app: &str, pid: Option<u32>, text: &str) -> Record {
        Record {
            severity,
            timestamp: at(1_709_210_096, 123_456), // 2024-02-29T12:34:56.123456Z
            text: text.to_string(),
            pid,
            app: app.to_string(),
        }
    }
}
