//! The sink's queue sizes and timers, and its errors.

use std::fmt;
use std::io;
use std::time::Duration;

/// Longest back-off [`Tuning`] accepts; keeps `Instant` arithmetic far from overflow.
const BACKOFF_CEILING: Duration = Duration::from_secs(3600);

/// Why the log sink could not be set up, or could not finish flushing.
#[derive(Debug)]
pub enum LogError {
    /// A sender thread could not be started.
    Spawn {
        thread: &'static str,
        source: io::Error,
    },
    /// `flush` ran out of time before a destination confirmed.
    FlushTimeout {
        destination: &'static str,
        waited: Duration,
    },
    /// `flush` finished, but lines are still waiting for the log host.
    Undelivered { lines: usize },
    /// A sender thread is gone (cannot happen unless it panicked).
    SenderGone { destination: &'static str },
}

impl fmt::Display for LogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogError::Spawn { thread, source } => {
                write!(f, "cannot start the {thread} log thread: {source}")
            }
            LogError::FlushTimeout {
                destination,
                waited,
            } => write!(
                f,
                "the {destination} log did not drain within {} ms",
                waited.as_millis()
            ),
            LogError::Undelivered { lines } => {
                write!(f, "{lines} log lines could not be sent to the log host")
            }
            LogError::SenderGone { destination } => {
                write!(f, "the {destination} log thread has stopped")
            }
        }
    }
}

impl std::error::Error for LogError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LogError::Spawn { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Queue sizes and timers. The defaults suit the VM; tests shorten the timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuning {
    /// Capacity of each destination's channel, in lines (at least 1).
    pub queue_lines: usize,
    /// Bytes of lines the remote thread keeps while the log host is unreachable.
    pub backlog_bytes: usize,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// How long one write may wait for a slow log host before the connection is dropped.
    pub write_timeout: Duration,
    /// First reconnection delay; doubled after every failure.
    pub backoff_initial: Duration,
    /// Largest reconnection delay (capped at one hour).
    pub backoff_max: Duration,
    /// A connection that lived this long resets the delay to `backoff_initial` when it fails.
    pub stable_after: Duration,
}

impl Default for Tuning {
    fn default() -> Tuning {
        Tuning {
            queue_lines: 512,
            backlog_bytes: 256 * 1024,
            connect_timeout: Duration::from_secs(3),
            write_timeout: Duration::from_secs(5),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(30),
            stable_after: Duration::from_secs(10),
        }
    }
}

impl Tuning {
    /// Clamps values that would break the sockets or the timer arithmetic.
    pub(super) fn sane(self) -> Tuning {
        let min = Duration::from_millis(1);
        let backoff_max = self.backoff_max.clamp(min, BACKOFF_CEILING);
        Tuning {
            queue_lines: self.queue_lines.max(1),
            backlog_bytes: self.backlog_bytes,
            connect_timeout: self.connect_timeout.clamp(min, BACKOFF_CEILING),
            write_timeout: self.write_timeout.clamp(min, BACKOFF_CEILING),
            backoff_initial: self.backoff_initial.clamp(min, backoff_max),
            backoff_max,
            stable_after: self.stable_after,
        }
    }
}
