//! Log shipping: the service's stdout/stderr and guest-init's own messages, line by line, to
//! a remote syslog receiver (RFC 5424 or RFC 3164, over UDP or TCP with RFC 6587
//! octet-counting framing) and, when the contract asks, to the console.
//!
//! PID 1 must never block on logging for long, so the caller side ([`LogSink::log`]) only
//! does a `try_send` into a bounded channel per destination and counts the line as dropped
//! when the channel is full. The service's lines ([`LogSink::log_service`]) are the exception
//! on the console: their copy waits, boundedly ([`CONSOLE_WAIT`]), for room while the console
//! is being read, so a service writing faster than the console goes is slowed down (its
//! pipe fills while the supervisor waits) instead of losing lines; a console nobody reads
//! costs one such wait, then lines are dropped and counted until it takes one again. Each
//! destination has its own thread, so a stuck console cannot hold up the remote copy and a
//! slow log host cannot hold up the console copy.
//!
//! The remote thread owns the socket. It keeps lines that could not be sent yet in a backlog
//! bounded in bytes ([`Tuning::backlog_bytes`]); while the log host is unreachable it keeps the
//! oldest lines (they usually explain the outage) and drops newer ones once the backlog is
//! full. It reconnects with exponential backoff, and before the first line sent after a gap it
//! sends a notice of its own (APP-NAME `guest-init`) saying how many lines were lost there.
//! Memory is bounded by the channel capacity plus the backlog, whatever the outage length.
//!
//! Everything here is written without `unwrap`, `expect` or panicking indexing: this code runs
//! in PID 1, where a panic brings the whole VM down.
//!
//! | part | job |
//! | --- | --- |
//! | [`record`] | one line before formatting: severity, stream, APP-NAME, PROCID |
//! | [`format`](mod@format) | RFC 5424 / RFC 3164 messages, octet-counting framing, the UTC calendar |
//! | [`line`](mod@line) | the byte stream of a pipe cut into bounded lines (the supervisor's buffer) |
//! | [`config`] | queue sizes and timers ([`Tuning`]), errors ([`LogError`]) |
//! | `channel` | the messages of a destination's channel, the shared counters |
//! | [`sink`] | the caller side: [`SinkConfig`], bounded channels, [`LogSink`] |
//! | `console` | the console thread |
//! | `remote` | the remote thread: socket, backlog, reconnection |
//!
//! # Why not the `syslog` crate
//!
//! The workspace's design card named the `syslog` crate (version 7) for the two formats; it
//! cannot produce the wire format the receivers and tests (`guest-init/tests/log/`,
//! `e2e/tests/init.rs`) expect, so it is not used:
//! - its RFC 3164 formatter writes the day zero-padded (`Feb 09`, where RFC 3164 4.1.2 and
//!   the tests want `Feb  9`), always writes `[pid]` (our records without a PROCID have
//!   none), and neither sanitizes nor bounds TAG and HOSTNAME;
//! - its RFC 5424 formatter takes MSGID as a number, so the NILVALUE `-` cannot be written,
//!   defaults HOSTNAME to `localhost`, and formats the timestamp with the `time` crate's
//!   RFC 3339, which trims trailing zeros of the fraction (`.1Z`, the tests want `.100000Z`);
//! - it cuts nothing to the transport's size limits (RFC 5426, RFC 3164 4.1), which the
//!   remote thread needs to stay within a datagram;
//! - it would bring the `time` crate (and its local-offset lookup, which refuses to run in a
//!   multi-threaded process) into the static PID 1 for what are ~100 lines of formatting here.
//!
//! guest-init's own messages reach the sink as [`Record::init`] records, from the boot's
//! [`crate::boot::Reporter`], which also sends their status events. The `log` crate is the
//! facade for what guest-init prints where no reporter is at hand (the first boot lines,
//! the power-off; [`crate::console::install_logger`]); the service's lines do not go through
//! it, because they carry the service's APP-NAME and PROCID, which `log::Record` has no place
//! for, and must never wait for a global logger's lock.

mod channel;
pub mod config;
mod console;
pub mod format;
pub mod line;
pub mod record;
mod remote;
pub mod sink;

pub use config::{LogError, Tuning};
pub use format::{
    civil_from_days, dropped_notice, format_3164, format_5424, frame_octet_counting, sanitize_text,
    UtcTime,
};
pub use line::LineBuffer;
pub use record::{Record, Severity, Stream, INIT_APP};
pub use remote::{RemoteTarget, TCP_MAX_MESSAGE, UDP_MAX_3164, UDP_MAX_5424};
pub use sink::{LogSink, SinkConfig, SinkStats, CONSOLE_WAIT, MAX_TEXT};
