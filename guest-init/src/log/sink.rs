//! The caller side of the log sink: configuration, errors, the bounded channels to the
//! destination threads, and [`LogSink`] itself.

use super::console::ConsoleWorker;
use super::format::truncate_utf8;
use super::record::Record;
use super::remote::{RemoteTarget, RemoteWorker};
use contract::Logging;
use std::fmt;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Longest text kept for one record; longer text is cut at [`LogSink::log`] so that the
/// queues' memory stays bounded even if a caller hands in a huge message.
pub const MAX_TEXT: usize = 8192;

/// Room left for the header when telling the supervisor how long a line may be without
/// being truncated: PRI, timestamp, hostname (at most 63 by the contract, 255 by RFC) and
/// APP-NAME/PROCID fit in it.
const HEADER_ROOM: usize = 512;

/// Longest back-off [`Tuning`] accepts; keeps `Instant` arithmetic far from overflow.
const BACKOFF_CEILING: Duration = Duration::from_secs(3600);

/// How long [`LogSink::flush`] sleeps between attempts to queue its marker into a full channel.
const FLUSH_RETRY: Duration = Duration::from_millis(2);

/// Why the log sink could not be set up, or could not finish flushing.
#[derive(Debug)]
pub enum LogError {
    /// The syslog host is not an IP literal (the contract validator should have caught it).
    BadHost { host: String },
    /// The facility name is unknown (the contract validator should have caught it).
    UnknownFacility { name: String },
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
            LogError::BadHost { host } => {
                write!(f, "syslog host '{host}' is not an IP address")
            }
            LogError::UnknownFacility { name } => {
                write!(f, "'{name}' is not a syslog facility")
            }
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

/// Everything [`LogSink::start`] needs.
pub struct SinkConfig {
    /// HOSTNAME in every message.
    pub hostname: String,
    /// The remote syslog receiver, if any.
    pub remote: Option<RemoteTarget>,
    /// Where console copies go (e.g. `/dev/console`), if any.
    pub console: Option<Box<dyn Write + Send>>,
    pub tuning: Tuning,
}

impl SinkConfig {
    /// The configuration the contract asks for; `console` is used only if `logging.console`.
    pub fn from_contract(
        logging: &Logging,
        hostname: &str,
        console: Box<dyn Write + Send>,
    ) -> Result<SinkConfig, LogError> {
        let remote = logging
            .remote
            .as_ref()
            .map(RemoteTarget::from_contract)
            .transpose()?;
        Ok(SinkConfig {
            hostname: hostname.to_string(),
            remote,
            console: logging.console.then_some(console),
            tuning: Tuning::default(),
        })
    }
}

impl fmt::Debug for SinkConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SinkConfig")
            .field("hostname", &self.hostname)
            .field("remote", &self.remote)
            .field("console", &self.console.is_some())
            .field("tuning", &self.tuning)
            .finish()
    }
}

/// A snapshot of the sink's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinkStats {
    /// Lines the remote thread handed to the kernel (notices not included).
    pub remote_sent: u64,
    /// Lines that will never reach the log host (queue full, backlog full, UDP refused).
    pub remote_dropped: u64,
    /// Lines that never reached the console because it was blocked.
    pub console_dropped: u64,
    /// Whether the remote thread currently has a socket.
    pub remote_connected: bool,
    /// The last connection or send error, for diagnostics.
    pub remote_last_error: Option<String>,
}

#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) remote_sent: AtomicU64,
    pub(super) remote_dropped: AtomicU64,
    pub(super) console_dropped: AtomicU64,
    pub(super) remote_connected: AtomicBool,
    remote_last_error: Mutex<Option<String>>,
}

impl Counters {
    pub(super) fn set_error(&self, why: Option<String>) {
        // Nothing panics while holding the lock, but take the value even if it were poisoned.
        let mut slot = self
            .remote_last_error
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *slot = why;
    }

    fn last_error(&self) -> Option<String> {
        self.remote_last_error
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

/// What goes down a destination's channel.
pub(super) enum Msg {
    /// A line, with the number of lines dropped just before it on the caller side.
    Line {
        rec: Arc<Record>,
        dropped_before: u64,
    },
    /// Try to get everything out now, then answer with the number of lines still waiting.
    Flush {
        dropped_before: u64,
        ack: mpsc::Sender<usize>,
        /// When the caller stops waiting; the remote path waits up to then for the kernel to
        /// have really sent what it was given.
        deadline: Instant,
    },
}

#[derive(Debug, Clone, Copy)]
enum Destination {
    Remote,
    Console,
}

impl Destination {
    fn name(self) -> &'static str {
        match self {
            Destination::Remote => "remote",
            Destination::Console => "console",
        }
    }
}

/// The caller's end of one destination.
struct Path {
    tx: SyncSender<Msg>,
    /// Lines dropped since the last line that got into the channel.
    pending_drops: AtomicU64,
    destination: Destination,
}

impl Path {
    /// Queues a line without ever waiting; a full queue drops it and counts it.
    fn offer(&self, rec: &Arc<Record>, counters: &Counters) {
        let dropped_before = self.pending_drops.swap(0, Ordering::AcqRel);
        let msg = Msg::Line {
            rec: Arc::clone(rec),
            dropped_before,
        };
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = self.tx.try_send(msg) {
            self.pending_drops
                .fetch_add(dropped_before.saturating_add(1), Ordering::AcqRel);
            self.dropped_counter(counters)
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    fn dropped_counter<'a>(&self, counters: &'a Counters) -> &'a AtomicU64 {
        match self.destination {
            Destination::Remote => &counters.remote_dropped,
            Destination::Console => &counters.console_dropped,
        }
    }

    /// Queues a flush marker, retrying while the channel is full, until `deadline`.
    fn request_flush(&self, deadline: Instant) -> Result<Receiver<usize>, LogError> {
        let (ack, answer) = mpsc::channel();
        let mut msg = Msg::Flush {
            dropped_before: self.pending_drops.swap(0, Ordering::AcqRel),
            ack,
            deadline,
        };
        loop {
            match self.tx.try_send(msg) {
                Ok(()) => return Ok(answer),
                Err(TrySendError::Disconnected(_)) => {
                    return Err(LogError::SenderGone {
                        destination: self.destination.name(),
                    })
                }
                Err(TrySendError::Full(back)) => {
                    let now = Instant::now();
                    if now >= deadline {
                        if let Msg::Flush { dropped_before, .. } = back {
                            self.pending_drops
                                .fetch_add(dropped_before, Ordering::AcqRel);
                        }
                        return Err(self.timeout(deadline, now));
                    }
                    msg = back;
                    thread::sleep(FLUSH_RETRY.min(deadline.saturating_duration_since(now)));
                }
            }
        }
    }

    fn timeout(&self, deadline: Instant, now: Instant) -> LogError {
        LogError::FlushTimeout {
            destination: self.destination.name(),
            waited: now.saturating_duration_since(deadline),
        }
    }
}

/// Ships log lines to the remote syslog receiver and the console without ever blocking the
/// caller. Dropping it lets the threads finish what they hold and exit; call
/// [`LogSink::flush`] first at shutdown to wait (boundedly) for that.
pub struct LogSink {
    remote: Option<Path>,
    console: Option<Path>,
    counters: Arc<Counters>,
    max_line: usize,
}

impl LogSink {
    /// Starts one thread per configured destination.
    pub fn start(cfg: SinkConfig) -> Result<LogSink, LogError> {
        let tuning = cfg.tuning.sane();
        let counters = Arc::new(Counters::default());
        let max_line = cfg.remote.as_ref().map_or(MAX_TEXT, |t| {
            t.max_message()
                .saturating_sub(HEADER_ROOM)
                .clamp(64, MAX_TEXT)
        });
        let remote = match cfg.remote {
            Some(target) => {
                let worker = RemoteWorker::new(target, cfg.hostname, tuning, Arc::clone(&counters));
                Some(spawn_path(Destination::Remote, tuning, move |rx| {
                    worker.run(rx)
                })?)
            }
            None => None,
        };
        let console = match cfg.console {
            Some(out) => {
                let worker = ConsoleWorker { out };
                Some(spawn_path(Destination::Console, tuning, move |rx| {
                    worker.run(rx)
                })?)
            }
            None => None,
        };
        Ok(LogSink {
            remote,
            console,
            counters,
            max_line,
        })
    }

    /// Queues a line for every destination and returns at once. The text is cut to
    /// [`MAX_TEXT`] bytes; a destination whose queue is full drops the line and counts it.
    pub fn log(&self, mut rec: Record) {
        if self.remote.is_none() && self.console.is_none() {
            return;
        }
        truncate_utf8(&mut rec.text, MAX_TEXT);
        let rec = Arc::new(rec);
        for path in [&self.console, &self.remote].into_iter().flatten() {
            path.offer(&rec, &self.counters);
        }
    }

    /// Queues a line for the remote destination only: for messages the console has shown
    /// already (guest-init's boot messages from before the sink started).
    pub fn log_remote_only(&self, mut rec: Record) {
        let Some(remote) = &self.remote else { return };
        truncate_utf8(&mut rec.text, MAX_TEXT);
        remote.offer(&Arc::new(rec), &self.counters);
    }

    /// Gives queued lines up to `timeout` to get out (used at shutdown). Errors say which
    /// destination did not drain in time, or how many lines the log host did not take.
    pub fn flush(&self, timeout: Duration) -> Result<(), LogError> {
        let deadline = Instant::now()
            .checked_add(timeout)
            .unwrap_or_else(Instant::now);
        let mut waiting = Vec::new();
        for path in [&self.console, &self.remote].into_iter().flatten() {
            waiting.push((path, path.request_flush(deadline)?));
        }
        for (path, answer) in waiting {
            let left = deadline.saturating_duration_since(Instant::now());
            match answer.recv_timeout(left) {
                Ok(0) => {}
                Ok(lines) => return Err(LogError::Undelivered { lines }),
                Err(RecvTimeoutError::Timeout) => {
                    return Err(path.timeout(deadline, Instant::now()))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(LogError::SenderGone {
                        destination: path.destination.name(),
                    })
                }
            }
        }
        Ok(())
    }

    /// The longest line the remote target carries without truncation; the supervisor uses it
    /// as the [`LineBuffer`](super::LineBuffer) limit so long lines are split rather than cut.
    pub fn max_line(&self) -> usize {
        self.max_line
    }

    pub fn stats(&self) -> SinkStats {
        SinkStats {
            remote_sent: self.counters.remote_sent.load(Ordering::Relaxed),
            remote_dropped: self.counters.remote_dropped.load(Ordering::Relaxed),
            console_dropped: self.counters.console_dropped.load(Ordering::Relaxed),
            remote_connected: self.counters.remote_connected.load(Ordering::Relaxed),
            remote_last_error: self.counters.last_error(),
        }
    }
}

fn spawn_path(
    destination: Destination,
    tuning: Tuning,
    body: impl FnOnce(Receiver<Msg>) + Send + 'static,
) -> Result<Path, LogError> {
    let (tx, rx) = mpsc::sync_channel(tuning.queue_lines);
    thread::Builder::new()
        .name(format!("log-{}", destination.name()))
        // Formatting lives on the heap; a small stack keeps PID 1's footprint small.
        .stack_size(256 * 1024)
        .spawn(move || body(rx))
        .map_err(|source| LogError::Spawn {
            thread: destination.name(),
            source,
        })?;
    Ok(Path {
        tx,
        pending_drops: AtomicU64::new(0),
        destination,
    })
}
