//! The caller side of the log sink: configuration, errors, the bounded channels to the
//! destination threads, and [`LogSink`] itself.

use super::channel::{Counters, Msg};
use super::config::{LogError, Tuning};
use super::console::ConsoleWorker;
use super::format::truncate_utf8;
use super::record::Record;
use super::remote::{RemoteTarget, RemoteWorker};
use contract::checked::Checked;
use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// Longest text kept for one record; longer text is cut at [`LogSink::log`] so that the
/// queues' memory stays bounded even if a caller hands in a huge message.
pub const MAX_TEXT: usize = 8192;

/// Room left for the header when telling the supervisor how long a line may be without
/// being truncated: PRI, timestamp, hostname (at most 63 by the contract, 255 by RFC) and
/// APP-NAME/PROCID fit in it.
const HEADER_ROOM: usize = 512;

/// How long [`LogSink::flush`] sleeps between attempts to queue its marker into a full channel.
const FLUSH_RETRY: Duration = Duration::from_millis(2);

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
    /// The configuration a validated contract asks for; `console` is used only if
    /// `logging.console`.
    pub fn from_checked(c: &Checked, console: Box<dyn Write + Send>) -> SinkConfig {
        SinkConfig {
            hostname: c.contract.hostname.clone(),
            remote: c.remote.as_ref().map(RemoteTarget::from),
            console: c.contract.logging.console.then_some(console),
            tuning: Tuning::default(),
        }
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

/// How long [`LogSink::log_service`] waits for room in the console's queue before it drops
/// the line: long enough for a console that is being read to take a line, short enough that
/// a console nobody reads holds the supervisor up once, not at every line.
pub const CONSOLE_WAIT: Duration = Duration::from_millis(500);

/// The caller's end of one destination.
#[derive(Debug)]
struct Path {
    tx: SyncSender<Msg>,
    /// Lines dropped since the last line that got into the channel.
    pending_drops: AtomicU64,
    destination: Destination,
    /// A wait for room timed out, and no line got in since: do not wait again until one does.
    stalled: AtomicBool,
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

    /// Queues a line, waiting up to `max_wait` for room while the destination takes lines;
    /// a full queue after that drops it and counts it, and later lines are offered without
    /// waiting until one gets in again.
    fn offer_waiting(&self, rec: &Arc<Record>, counters: &Counters, max_wait: Duration) {
        if self.stalled.load(Ordering::Acquire) {
            self.offer(rec, counters);
            if self.pending_drops.load(Ordering::Acquire) == 0 {
                self.stalled.store(false, Ordering::Release);
            }
            return;
        }
        let deadline = Instant::now() + max_wait;
        let dropped_before = self.pending_drops.swap(0, Ordering::AcqRel);
        let mut msg = Msg::Line {
            rec: Arc::clone(rec),
            dropped_before,
        };
        loop {
            match self.tx.try_send(msg) {
                Ok(()) => return,
                Err(TrySendError::Full(back)) if Instant::now() < deadline => {
                    msg = back;
                    thread::sleep(FLUSH_RETRY);
                }
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                    self.pending_drops
                        .fetch_add(dropped_before.saturating_add(1), Ordering::AcqRel);
                    self.dropped_counter(counters)
                        .fetch_add(1, Ordering::Relaxed);
                    self.stalled.store(true, Ordering::Release);
                    return;
                }
            }
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
#[derive(Debug)]
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

    /// Queues one of the service's lines: as [`LogSink::log`] for the log host, but the
    /// console copy waits (up to [`CONSOLE_WAIT`]) for room while the console is being read,
    /// so a service writing faster than the console goes is slowed down (its pipe fills)
    /// instead of losing lines. Only a console nobody reads loses lines, counted.
    pub fn log_service(&self, mut rec: Record) {
        if self.remote.is_none() && self.console.is_none() {
            return;
        }
        truncate_utf8(&mut rec.text, MAX_TEXT);
        let rec = Arc::new(rec);
        if let Some(console) = &self.console {
            console.offer_waiting(&rec, &self.counters, CONSOLE_WAIT);
        }
        if let Some(remote) = &self.remote {
            remote.offer(&rec, &self.counters);
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
        stalled: AtomicBool::new(false),
    })
}
