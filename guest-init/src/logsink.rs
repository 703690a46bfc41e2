//! Log shipping: the service's stdout/stderr and guest-init's own messages, line by line, to
//! a remote syslog receiver (RFC 5424 or RFC 3164, over UDP or TCP with RFC 6587
//! octet-counting framing) and, when the contract asks, to the console.
//!
//! PID 1 must never block on logging, so the caller side ([`LogSink::log`]) only does a
//! `try_send` into a bounded channel per destination and counts the line as dropped when the
//! channel is full. Each destination has its own thread, so a stuck console cannot hold up the
//! remote copy and a slow log host cannot hold up the console copy.
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

use contract::names::facility_number;
use contract::{Logging, RemoteSyslog, SyslogFormat, Transport};
use nix::errno::Errno;
use nix::sys::socket::{recv, MsgFlags};
use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// APP-NAME of guest-init's own messages (including the "lines dropped" notices).
pub const INIT_APP: &str = "guest-init";

/// Longest text kept for one record; longer text is cut at [`LogSink::log`] so that the
/// queues' memory stays bounded even if a caller hands in a huge message.
pub const MAX_TEXT: usize = 8192;

/// Largest TCP syslog message (before framing): RFC 5425 4.3.1 asks receivers to accept 8192.
pub const TCP_MAX_MESSAGE: usize = 8192;
/// Largest RFC 5424 UDP datagram: RFC 5426 3.2 says receivers SHOULD accept 2048 octets.
pub const UDP_MAX_5424: usize = 2048;
/// Largest RFC 3164 UDP datagram: RFC 3164 4.1 limits packets to 1024 octets.
pub const UDP_MAX_3164: usize = 1024;

/// Room left for the header when telling the supervisor how long a line may be without
/// being truncated: PRI, timestamp, hostname (at most 63 by the contract, 255 by RFC) and
/// APP-NAME/PROCID fit in it.
const HEADER_ROOM: usize = 512;

/// Longest back-off [`Tuning`] accepts; keeps `Instant` arithmetic far from overflow.
const BACKOFF_CEILING: Duration = Duration::from_secs(3600);

/// How long [`LogSink::flush`] sleeps between attempts to queue its marker into a full channel.
const FLUSH_RETRY: Duration = Duration::from_millis(2);

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

// ---------------------------------------------------------------------------------------------
// Time: a hand-written UTC calendar conversion, so no date crate is needed in the static binary.
// ---------------------------------------------------------------------------------------------

/// A UTC calendar time with microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcTime {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub micros: u32,
}

impl UtcTime {
    /// Converts a system time; times before 1970 (only seen with an unset clock going
    /// backwards) are shown as the epoch rather than failing.
    pub fn from_system_time(t: SystemTime) -> UtcTime {
        let since = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        let secs = i64::try_from(since.as_secs()).unwrap_or(i64::MAX);
        UtcTime::from_unix(secs, since.subsec_micros())
    }

    /// Converts seconds since the epoch (and a microsecond fraction).
    pub fn from_unix(secs: i64, micros: u32) -> UtcTime {
        let days = secs.div_euclid(86_400);
        let rest = secs.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        // `rest` is in 0..86400, so these fit in u32.
        UtcTime {
            year,
            month,
            day,
            hour: (rest / 3600) as u32,
            minute: (rest % 3600 / 60) as u32,
            second: (rest % 60) as u32,
            micros: micros.min(999_999),
        }
    }

    /// RFC 3339 as RFC 5424 wants it: `2024-02-29T12:34:56.123456Z`.
    pub fn rfc3339(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second, self.micros
        )
    }

    /// The RFC 3164 timestamp `Feb  9 08:05:03` (day padded with a space, no year). The guest
    /// clock is UTC, so this is UTC too.
    pub fn rfc3164(&self) -> String {
        format!(
            "{} {:>2} {:02}:{:02}:{:02}",
            month_abbr(self.month),
            self.day,
            self.hour,
            self.minute,
            self.second
        )
    }
}

/// Year, month (1-12) and day (1-31) of a day count since 1970-01-01 in the proleptic
/// Gregorian calendar (Howard Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days.saturating_add(719_468);
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, 0..=146096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // year of era, 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of year from March 1st, 0..=365
    let mp = (5 * doy + 2) / 153; // month from March, 0..=11
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era.saturating_mul(400) + i64::from(month <= 2);
    (year, month, day)
}

fn month_abbr(month: u32) -> &'static str {
    match month {
        1 => "Jan",
        2 => "Feb",
        3 => "Mar",
        4 => "Apr",
        5 => "May",
        6 => "Jun",
        7 => "Jul",
        8 => "Aug",
        9 => "Sep",
        10 => "Oct",
        11 => "Nov",
        _ => "Dec",
    }
}

// ---------------------------------------------------------------------------------------------
// Formatting and framing: pure functions.
// ---------------------------------------------------------------------------------------------

/// Makes a line safe to put in one syslog message: trailing CR/LF are removed, a tab becomes a
/// space and every other control character becomes `?` (receivers split on newlines and
/// terminals act on escape sequences).
pub fn sanitize_text(text: &str) -> String {
    text.trim_end_matches(['\r', '\n'])
        .chars()
        .map(|c| match c {
            '\t' => ' ',
            c if c.is_control() => '?',
            c => c,
        })
        .collect()
}

/// An RFC 5424 header field: printable US-ASCII only (others become `_`), at most `max`
/// characters, and `-` (the NILVALUE) when empty.
fn header_field(value: &str, max: usize) -> String {
    let field: String = value
        .chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .take(max)
        .collect();
    if field.is_empty() {
        "-".to_string()
    } else {
        field
    }
}

/// An RFC 3164 TAG: at most 32 characters; anything that would confuse a parser looking for
/// `TAG[PID]:` (space, `:`, `[`, `]`, non-ASCII) becomes `_`.
fn tag_3164(app: &str) -> String {
    let tag: String = app
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && !matches!(c, ':' | '[' | ']') {
                c
            } else {
                '_'
            }
        })
        .take(32)
        .collect();
    if tag.is_empty() {
        "-".to_string()
    } else {
        tag
    }
}

/// PRI = facility * 8 + severity (RFC 5424 6.2.1); facilities above 23 do not exist.
fn pri(facility: u8, severity: Severity) -> u16 {
    u16::from(facility.min(23)) * 8 + u16::from(severity.code())
}

/// Cuts `s` to at most `max` bytes, on a character boundary.
fn truncate_utf8(s: &mut String, max: usize) {
    if s.len() <= max {
        return;
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1; // 0 is always a boundary, so this stops
    }
    s.truncate(cut);
}

/// Appends ` MSG` to a header, cutting MSG so the whole message is at most `max_len` bytes.
fn append_message(out: &mut String, text: &str, max_len: usize) {
    let mut msg = sanitize_text(text);
    let room = max_len.saturating_sub(out.len() + 1);
    truncate_utf8(&mut msg, room);
    if !msg.is_empty() {
        out.push(' ');
        out.push_str(&msg);
    }
}

/// An RFC 5424 message `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID - - MSG` (no MSGID, no
/// structured data), at most `max_len` bytes (only MSG is cut). MSG is sent without the
/// UTF-8 BOM: the grammar allows it (MSG-ANY) and many receivers display the BOM as garbage.
pub fn format_5424(rec: &Record, hostname: &str, facility: u8, max_len: usize) -> String {
    let procid = rec.pid.map_or_else(|| "-".to_string(), |p| p.to_string());
    let mut out = format!(
        "<{}>1 {} {} {} {} - -",
        pri(facility, rec.severity),
        UtcTime::from_system_time(rec.timestamp).rfc3339(),
        header_field(hostname, 255),
        header_field(&rec.app, 48),
        procid
    );
    append_message(&mut out, &rec.text, max_len);
    out
}

/// An RFC 3164 message `<PRI>Mmm dd hh:mm:ss HOSTNAME TAG[PID]: MSG`, at most `max_len` bytes
/// (only MSG is cut).
pub fn format_3164(rec: &Record, hostname: &str, facility: u8, max_len: usize) -> String {
    let pid = rec.pid.map(|p| format!("[{p}]")).unwrap_or_default();
    let mut out = format!(
        "<{}>{} {} {}{}:",
        pri(facility, rec.severity),
        UtcTime::from_system_time(rec.timestamp).rfc3164(),
        header_field(hostname, 255),
        tag_3164(&rec.app),
        pid
    );
    append_message(&mut out, &rec.text, max_len);
    out
}

/// RFC 6587 3.4.1 octet-counting framing: `MSG-LEN SP SYSLOG-MSG`.
pub fn frame_octet_counting(msg: &str) -> Vec<u8> {
    let mut frame = format!("{} ", msg.len()).into_bytes();
    frame.extend_from_slice(msg.as_bytes());
    frame
}

/// The text of the notice sent after `lines` lines were lost.
pub fn dropped_notice(lines: u64) -> String {
    let s = if lines == 1 { "" } else { "s" };
    format!("{lines} log line{s} dropped while the log host was unreachable or too slow")
}

fn console_dropped_notice(lines: u64) -> String {
    let s = if lines == 1 { "" } else { "s" };
    format!("{lines} log line{s} dropped while the console was blocked")
}

// ---------------------------------------------------------------------------------------------
// Line splitting for the service's pipes.
// ---------------------------------------------------------------------------------------------

/// Turns a byte stream (a pipe) into lines of at most `max` bytes.
///
/// Lines end at `\n`; one `\r` before it is removed. A line longer than `max` is cut into
/// pieces (on a UTF-8 boundary when possible) instead of being buffered without bound, so the
/// buffer never holds more than `max` bytes. Invalid UTF-8 becomes U+FFFD. Empty lines are
/// kept: deciding whether they are worth logging is the caller's business.
#[derive(Debug, Clone)]
pub struct LineBuffer {
    buf: Vec<u8>,
    max: usize,
}

impl LineBuffer {
    /// `max` is clamped to at least 4 bytes, so one UTF-8 character always fits.
    pub fn new(max: usize) -> LineBuffer {
        let max = max.max(4);
        LineBuffer {
            buf: Vec::with_capacity(max.min(4096)),
            max,
        }
    }

    /// Feeds bytes in; returns the lines they complete (or force out, when too long).
    pub fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut lines = Vec::new();
        for &b in bytes {
            if b == b'\n' {
                lines.push(self.take_line());
                continue;
            }
            if self.buf.len() >= self.max {
                lines.push(self.take_piece());
            }
            self.buf.push(b);
        }
        lines
    }

    /// The partial line left at end of stream, if any.
    pub fn flush(&mut self) -> Option<String> {
        if self.buf.is_empty() {
            None
        } else {
            Some(self.take_line())
        }
    }

    /// Bytes currently held (always at most `max`).
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    fn take_line(&mut self) -> String {
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        let line = String::from_utf8_lossy(&self.buf).into_owned();
        self.buf.clear();
        line
    }

    /// Cuts a full buffer, keeping an incomplete UTF-8 character for the next piece.
    fn take_piece(&mut self) -> String {
        let cut = utf8_cut(&self.buf);
        let rest = self.buf.split_off(cut);
        let piece = String::from_utf8_lossy(&self.buf).into_owned();
        self.buf = rest;
        piece
    }
}

/// Where to cut `buf` so that a UTF-8 character starting in its last 3 bytes is not split;
/// the whole length when there is no such character (or the data is not UTF-8).
fn utf8_cut(buf: &[u8]) -> usize {
    let len = buf.len();
    for back in 1..=3usize.min(len) {
        let i = len - back;
        let Some(&b) = buf.get(i) else { break };
        if b & 0xC0 == 0x80 {
            continue; // continuation byte: keep looking for the lead byte
        }
        let width = match b {
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => 1,
        };
        // Cut before the lead byte only if its character is incomplete and something stays.
        return if width > back && i > 0 { i } else { len };
    }
    len
}

// ---------------------------------------------------------------------------------------------
// Configuration and errors.
// ---------------------------------------------------------------------------------------------

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

/// Where and how remote lines go, resolved from the contract's `RemoteSyslog`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteTarget {
    pub addr: SocketAddr,
    pub transport: Transport,
    pub format: SyslogFormat,
    /// Facility number, 0..=23.
    pub facility: u8,
}

impl RemoteTarget {
    pub fn from_contract(remote: &RemoteSyslog) -> Result<RemoteTarget, LogError> {
        let ip: IpAddr = remote.host.parse().map_err(|_| LogError::BadHost {
            host: remote.host.clone(),
        })?;
        let facility =
            facility_number(&remote.facility).ok_or_else(|| LogError::UnknownFacility {
                name: remote.facility.clone(),
            })?;
        Ok(RemoteTarget {
            addr: SocketAddr::new(ip, remote.port),
            transport: remote.transport,
            format: remote.format,
            facility,
        })
    }

    /// The largest message (before framing) this transport and format should carry.
    pub fn max_message(&self) -> usize {
        match (self.transport, self.format) {
            (Transport::Tcp, _) => TCP_MAX_MESSAGE,
            (Transport::Udp, SyslogFormat::Rfc5424) => UDP_MAX_5424,
            (Transport::Udp, SyslogFormat::Rfc3164) => UDP_MAX_3164,
        }
    }

    /// The bytes to put on the wire for one record.
    pub fn encode(&self, rec: &Record, hostname: &str) -> Vec<u8> {
        let max = self.max_message();
        let msg = match self.format {
            SyslogFormat::Rfc5424 => format_5424(rec, hostname, self.facility, max),
            SyslogFormat::Rfc3164 => format_3164(rec, hostname, self.facility, max),
        };
        match self.transport {
            Transport::Tcp => frame_octet_counting(&msg),
            Transport::Udp => msg.into_bytes(),
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
    fn sane(self) -> Tuning {
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

// ---------------------------------------------------------------------------------------------
// The sink: caller side.
// ---------------------------------------------------------------------------------------------

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
struct Counters {
    remote_sent: AtomicU64,
    remote_dropped: AtomicU64,
    console_dropped: AtomicU64,
    remote_connected: AtomicBool,
    remote_last_error: Mutex<Option<String>>,
}

impl Counters {
    fn set_error(&self, why: Option<String>) {
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
enum Msg {
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
    /// as the [`LineBuffer`] limit so long lines are split rather than cut.
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

// ---------------------------------------------------------------------------------------------
// The console thread.
// ---------------------------------------------------------------------------------------------

struct ConsoleWorker {
    out: Box<dyn Write + Send>,
}

impl ConsoleWorker {
    fn run(mut self, rx: Receiver<Msg>) {
        while let Ok(msg) = rx.recv() {
            match msg {
                Msg::Line {
                    rec,
                    dropped_before,
                } => {
                    self.notice(dropped_before);
                    self.write_line(&rec.app, &rec.text);
                }
                Msg::Flush {
                    dropped_before,
                    ack,
                    ..
                } => {
                    self.notice(dropped_before);
                    let _ = self.out.flush();
                    let _ = ack.send(0);
                }
            }
        }
    }

    fn notice(&mut self, dropped: u64) {
        if dropped > 0 {
            self.write_line(INIT_APP, &console_dropped_notice(dropped));
        }
    }

    /// Writes `APP: text`; errors are ignored because the console is the last resort and
    /// there is nowhere else to report them.
    fn write_line(&mut self, app: &str, text: &str) {
        let line = format!("{app}: {}\n", sanitize_text(text));
        let _ = self.out.write_all(line.as_bytes());
        let _ = self.out.flush();
    }
}

// ---------------------------------------------------------------------------------------------
// The remote thread.
// ---------------------------------------------------------------------------------------------

/// A line waiting for the log host, with the number of lines lost just before it.
struct Entry {
    rec: Arc<Record>,
    gap: u64,
}

/// Lines the log host has not taken yet, bounded in bytes. Drops are remembered as a gap in
/// front of the next line kept (or as `trailing` after the last), so the "dropped" notice is
/// sent exactly where the lines went missing.
struct Backlog {
    entries: VecDeque<Entry>,
    bytes: usize,
    max_bytes: usize,
    trailing: u64,
}

impl Backlog {
    fn new(max_bytes: usize) -> Backlog {
        Backlog {
            entries: VecDeque::new(),
            bytes: 0,
            max_bytes,
            trailing: 0,
        }
    }

    /// Memory a line costs here (text, name and bookkeeping).
    fn cost(rec: &Record) -> usize {
        rec.text.len() + rec.app.len() + 64
    }

    /// Keeps the line, or drops it if full (the oldest lines stay). One line is always
    /// accepted into an empty backlog, so a tiny limit cannot stop logging altogether.
    /// Returns whether it was kept.
    fn push(&mut self, rec: Arc<Record>, gap: u64) -> bool {
        let cost = Backlog::cost(&rec);
        if !self.entries.is_empty() && self.bytes.saturating_add(cost) > self.max_bytes {
            self.trailing = self.trailing.saturating_add(gap).saturating_add(1);
            return false;
        }
        let gap = gap.saturating_add(std::mem::take(&mut self.trailing));
        self.bytes = self.bytes.saturating_add(cost);
        self.entries.push_back(Entry { rec, gap });
        true
    }

    /// Lines lost right before the next thing to send.
    fn front_gap(&self) -> u64 {
        self.entries.front().map_or(self.trailing, |e| e.gap)
    }

    fn clear_front_gap(&mut self) {
        match self.entries.front_mut() {
            Some(e) => e.gap = 0,
            None => self.trailing = 0,
        }
    }

    /// Records `n` lost lines before the next thing to send.
    fn add_front_gap(&mut self, n: u64) {
        match self.entries.front_mut() {
            Some(e) => e.gap = e.gap.saturating_add(n),
            None => self.trailing = self.trailing.saturating_add(n),
        }
    }

    fn front(&self) -> Option<Arc<Record>> {
        self.entries.front().map(|e| Arc::clone(&e.rec))
    }

    fn pop(&mut self) {
        if let Some(e) = self.entries.pop_front() {
            self.bytes = self.bytes.saturating_sub(Backlog::cost(&e.rec));
        }
    }

    /// Nothing to send: no line and no pending notice.
    fn is_idle(&self) -> bool {
        self.entries.is_empty() && self.trailing == 0
    }

    fn len(&self) -> usize {
        self.entries.len()
    }
}

/// An open socket to the log host.
enum Conn {
    Tcp(TcpStream),
    Udp(UdpSocket),
}

/// What happened to one message.
enum Sent {
    /// Handed to the kernel.
    Ok,
    /// UDP only: the receiver's port is closed (ICMP), the message is lost, the socket stays.
    Refused,
}

impl Conn {
    fn open(target: &RemoteTarget, tuning: &Tuning) -> io::Result<Conn> {
        match target.transport {
            Transport::Tcp => {
                let stream = TcpStream::connect_timeout(&target.addr, tuning.connect_timeout)?;
                stream.set_write_timeout(Some(tuning.write_timeout))?;
                Ok(Conn::Tcp(stream))
            }
            Transport::Udp => {
                let local: IpAddr = match target.addr {
                    SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
                    SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
                };
                let socket = UdpSocket::bind(SocketAddr::new(local, 0))?;
                // Connecting makes the kernel report ICMP errors (and fail early when there
                // is no route yet, which the back-off then retries).
                socket.connect(target.addr)?;
                socket.set_write_timeout(Some(tuning.write_timeout))?;
                Ok(Conn::Udp(socket))
            }
        }
    }

    fn send(&mut self, frame: &[u8]) -> io::Result<Sent> {
        match self {
            Conn::Tcp(stream) => {
                // Writing into a connection the host already closed "succeeds" once and loses
                // the line; checking first lets the line wait for the next connection.
                if peer_closed(stream) {
                    return Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "the log host closed the connection",
                    ));
                }
                stream.write_all(frame).map(|()| Sent::Ok)
            }
            Conn::Udp(socket) => match socket.send(frame) {
                Ok(_) => Ok(Sent::Ok),
                // ECONNREFUSED reports an earlier datagram's ICMP error; this one was not
                // sent, so try once more before calling it lost.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    match socket.send(frame) {
                        Ok(_) => Ok(Sent::Ok),
                        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Ok(Sent::Refused),
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            },
        }
    }
}

/// Whether the peer has closed (or reset) the connection, without waiting or consuming data.
fn peer_closed(stream: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    match recv(
        stream.as_raw_fd(),
        &mut byte,
        MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT,
    ) {
        Ok(0) => true,
        Ok(_) => false, // a receiver talking back is odd but harmless
        Err(Errno::EAGAIN) | Err(Errno::EINTR) => false,
        Err(_) => true,
    }
}

struct RemoteWorker {
    target: RemoteTarget,
    hostname: String,
    tuning: Tuning,
    counters: Arc<Counters>,
    conn: Option<Conn>,
    backlog: Backlog,
    backoff: Duration,
    next_attempt: Instant,
    connected_at: Instant,
}

impl RemoteWorker {
    fn new(
        target: RemoteTarget,
        hostname: String,
        tuning: Tuning,
        counters: Arc<Counters>,
    ) -> RemoteWorker {
        let now = Instant::now();
        RemoteWorker {
            target,
            hostname,
            tuning,
            counters,
            conn: None,
            backlog: Backlog::new(tuning.backlog_bytes),
            backoff: tuning.backoff_initial,
            next_attempt: now,
            connected_at: now,
        }
    }

    fn run(mut self, rx: Receiver<Msg>) {
        loop {
            let msg = match self.wait_time() {
                None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                Some(wait) => rx.recv_timeout(wait),
            };
            match msg {
                Ok(Msg::Line {
                    rec,
                    dropped_before,
                }) => {
                    if !self.backlog.push(rec, dropped_before) {
                        self.counters.remote_dropped.fetch_add(1, Ordering::Relaxed);
                    }
                    self.pump(false);
                }
                Ok(Msg::Flush {
                    dropped_before,
                    ack,
                    deadline,
                }) => {
                    self.backlog.trailing = self.backlog.trailing.saturating_add(dropped_before);
                    self.pump(true);
                    if self.backlog.is_idle() {
                        self.wait_sent(deadline);
                    }
                    let _ = ack.send(self.backlog.len());
                }
                Err(RecvTimeoutError::Timeout) => self.pump(false),
                Err(RecvTimeoutError::Disconnected) => {
                    // The sink is gone: one last bounded attempt, then exit.
                    self.pump(true);
                    return;
                }
            }
        }
    }

    /// Waits until the socket's send queue is empty (TCP: every byte acknowledged by the log
    /// host; UDP: every datagram handed to the network), or the deadline. A write only puts
    /// lines in the kernel's queue; at power-off the VM halts right after the flush, and what
    /// still sits in the queue would be lost.
    fn wait_sent(&self, deadline: Instant) {
        let Some(conn) = &self.conn else { return };
        let fd = match conn {
            Conn::Tcp(s) => s.as_raw_fd(),
            Conn::Udp(s) => s.as_raw_fd(),
        };
        loop {
            let mut queued: libc::c_int = 0;
            // SAFETY: TIOCOUTQ (SIOCOUTQ on sockets) writes one int through the pointer.
            let rc = unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut queued) };
            if rc != 0 || queued == 0 || Instant::now() >= deadline {
                return;
            }
            thread::sleep(Duration::from_millis(2));
        }
    }

    /// How long to wait for new lines: forever when nothing is pending, otherwise until the
    /// next reconnection attempt is due.
    fn wait_time(&self) -> Option<Duration> {
        if self.backlog.is_idle() {
            None
        } else {
            Some(self.next_attempt.saturating_duration_since(Instant::now()))
        }
    }

    /// Sends what it can. Stops when the backlog is empty or the log host fails; with
    /// `force` (flush, exit) one connection attempt is made even if the back-off says wait.
    fn pump(&mut self, force: bool) {
        let mut may_force = force;
        while !self.backlog.is_idle() {
            if self.conn.is_none() {
                let due = Instant::now() >= self.next_attempt;
                if !due && !may_force {
                    return;
                }
                may_force = false;
                if !self.connect() {
                    return;
                }
            }
            if !self.send_front() {
                return;
            }
        }
    }

    fn connect(&mut self) -> bool {
        match Conn::open(&self.target, &self.tuning) {
            Ok(conn) => {
                self.conn = Some(conn);
                self.connected_at = Instant::now();
                self.counters
                    .remote_connected
                    .store(true, Ordering::Relaxed);
                true
            }
            Err(e) => {
                self.fail(format!("cannot connect to {}: {e}", self.target.addr));
                false
            }
        }
    }

    /// Drops the connection and schedules the next attempt with exponential back-off.
    fn fail(&mut self, why: String) {
        let was_stable =
            self.conn.is_some() && self.connected_at.elapsed() >= self.tuning.stable_after;
        if was_stable {
            self.backoff = self.tuning.backoff_initial;
        }
        self.conn = None;
        self.counters
            .remote_connected
            .store(false, Ordering::Relaxed);
        self.counters.set_error(Some(why));
        let now = Instant::now();
        self.next_attempt = now.checked_add(self.backoff).unwrap_or(now);
        self.backoff = self.backoff.saturating_mul(2).min(self.tuning.backoff_max);
    }

    /// Sends the pending "dropped" notice, if any, then the oldest line. Returns false when
    /// the connection failed (the line stays for the next connection).
    fn send_front(&mut self) -> bool {
        let gap = self.backlog.front_gap();
        if gap > 0 {
            let notice = Record::init(Severity::Warning, dropped_notice(gap));
            match self.transmit(&notice) {
                // A refused notice is lost like a line; there is no point in a notice of it.
                Some(_) => self.backlog.clear_front_gap(),
                None => return false,
            }
        }
        let Some(rec) = self.backlog.front() else {
            return true;
        };
        match self.transmit(&rec) {
            Some(Sent::Ok) => {
                self.backlog.pop();
                self.counters.remote_sent.fetch_add(1, Ordering::Relaxed);
                true
            }
            Some(Sent::Refused) => {
                self.backlog.pop();
                self.backlog.add_front_gap(1);
                self.counters.remote_dropped.fetch_add(1, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// Encodes and sends one record; `None` when the connection failed (and was dropped).
    fn transmit(&mut self, rec: &Record) -> Option<Sent> {
        let frame = self.target.encode(rec, &self.hostname);
        let conn = self.conn.as_mut()?;
        match conn.send(&frame) {
            Ok(sent) => Some(sent),
            Err(e) => {
                self.fail(format!("cannot send to {}: {e}", self.target.addr));
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64, micros: u32) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_micros(u64::from(micros))
    }

    fn rec(severity: Severity, app: &str, pid: Option<u32>, text: &str) -> Record {
        Record {
            severity,
            timestamp: at(1_709_210_096, 123_456), // 2024-02-29T12:34:56.123456Z
            text: text.to_string(),
            pid,
            app: app.to_string(),
        }
    }

    #[test]
    fn logsink_civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(59), (1970, 3, 1));
        assert_eq!(civil_from_days(10_957), (2000, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29)); // divisible by 400: leap
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(19_783), (2024, 3, 1));
        assert_eq!(civil_from_days(47_541), (2100, 3, 1)); // 2100 is not a leap year
        assert_eq!(civil_from_days(47_540), (2100, 2, 28));
    }

    #[test]
    fn logsink_utc_times() {
        let t = UtcTime::from_unix(1_709_210_096, 123_456);
        assert_eq!(t.rfc3339(), "2024-02-29T12:34:56.123456Z");
        assert_eq!(t.rfc3164(), "Feb 29 12:34:56");
        assert_eq!(
            UtcTime::from_unix(0, 0).rfc3339(),
            "1970-01-01T00:00:00.000000Z"
        );
        assert_eq!(
            UtcTime::from_unix(2_147_483_647, 0).rfc3339(),
            "2038-01-19T03:14:07.000000Z"
        );
        assert_eq!(
            UtcTime::from_unix(951_782_400, 5).rfc3339(),
            "2000-02-29T00:00:00.000005Z"
        );
        assert_eq!(
            UtcTime::from_unix(1_707_465_903, 0).rfc3164(),
            "Feb  9 08:05:03"
        );
        assert_eq!(
            UtcTime::from_unix(1_735_689_599, 999_999).rfc3339(),
            "2024-12-31T23:59:59.999999Z"
        );
        // A clock before the epoch shows the epoch instead of failing.
        let before = UNIX_EPOCH - Duration::from_secs(10);
        assert_eq!(UtcTime::from_system_time(before).year, 1970);
    }

    #[test]
    fn logsink_format_5424() {
        let r = rec(Severity::Info, "web", Some(42), "hello world");
        assert_eq!(
            format_5424(&r, "vm1", 3, 2048),
            "<30>1 2024-02-29T12:34:56.123456Z vm1 web 42 - - hello world"
        );
        let r = rec(Severity::Error, "", None, "");
        assert_eq!(
            format_5424(&r, "", 16, 2048),
            "<131>1 2024-02-29T12:34:56.123456Z - - - - -"
        );
    }

    #[test]
    fn logsink_format_3164() {
        let r = rec(Severity::Warning, "web", Some(42), "disk low");
        assert_eq!(
            format_3164(&r, "vm1", 3, 1024),
            "<28>Feb 29 12:34:56 vm1 web[42]: disk low"
        );
        let r = rec(Severity::Notice, "my app:x", None, "hi");
        assert_eq!(
            format_3164(&r, "vm1", 1, 1024),
            "<13>Feb 29 12:34:56 vm1 my_app_x: hi"
        );
    }

    #[test]
    fn logsink_header_fields_are_sanitized() {
        let long = "a".repeat(60);
        let r = rec(Severity::Info, &long, Some(1), "x");
        let msg = format_5424(&r, "h o\u{e9}st", 3, 2048);
        assert!(
            msg.contains(&format!(" h_o_st {} 1 - - x", "a".repeat(48))),
            "{msg}"
        );
        let msg = format_3164(&r, "h", 3, 1024);
        assert!(
            msg.contains(&format!(" h {}[1]: x", "a".repeat(32))),
            "{msg}"
        );
    }

    #[test]
    fn logsink_sanitize() {
        assert_eq!(sanitize_text("plain"), "plain");
        assert_eq!(sanitize_text("crlf\r\n"), "crlf");
        assert_eq!(sanitize_text("cr\r"), "cr");
        assert_eq!(sanitize_text("a\tb"), "a b");
        assert_eq!(sanitize_text("\x1b[31mred\x1b[0m"), "?[31mred?[0m");
        assert_eq!(sanitize_text("in\nside"), "in?side");
        assert_eq!(sanitize_text("del\x7f c1\u{85}"), "del? c1?");
        assert_eq!(
            sanitize_text("h\u{e9}llo \u{1F600}"),
            "h\u{e9}llo \u{1F600}"
        );
    }

    #[test]
    fn logsink_messages_are_capped_on_char_boundaries() {
        let r = rec(Severity::Info, "a", None, &"\u{e9}".repeat(3000));
        let msg = format_5424(&r, "h", 3, 2048);
        assert!(msg.len() <= 2048 && msg.len() >= 2046, "{}", msg.len());
        let msg = format_3164(&r, "h", 3, 1024);
        assert!(msg.len() <= 1024 && msg.len() >= 1022, "{}", msg.len());
    }

    #[test]
    fn logsink_framing() {
        assert_eq!(frame_octet_counting("abc"), b"3 abc".to_vec());
        assert_eq!(frame_octet_counting(""), b"0 ".to_vec());
        assert_eq!(
            frame_octet_counting("\u{e9}"),
            "2 \u{e9}".as_bytes().to_vec()
        );
    }

    #[test]
    fn logsink_target_encoding() {
        let mut t = RemoteTarget {
            addr: "127.0.0.1:514".parse().unwrap(),
            transport: Transport::Tcp,
            format: SyslogFormat::Rfc3164,
            facility: 3,
        };
        let r = rec(Severity::Info, "web", None, "x");
        assert_eq!(
            t.encode(&r, "h"),
            b"28 <30>Feb 29 12:34:56 h web: x".to_vec()
        );
        t.transport = Transport::Udp;
        assert_eq!(t.encode(&r, "h"), b"<30>Feb 29 12:34:56 h web: x".to_vec());
        assert_eq!(t.max_message(), UDP_MAX_3164);
    }

    #[test]
    fn logsink_line_buffer_partial_and_crlf() {
        let mut lb = LineBuffer::new(100);
        assert!(lb.push(b"hel").is_empty());
        assert_eq!(lb.push(b"lo\r\nwor"), vec!["hello"]);
        assert_eq!(lb.push(b"ld\r"), Vec::<String>::new());
        assert_eq!(lb.push(b"\n\n"), vec!["world", ""]);
        assert_eq!(lb.push(b"tail"), Vec::<String>::new());
        assert_eq!(lb.flush(), Some("tail".to_string()));
        assert_eq!(lb.flush(), None);
    }

    #[test]
    fn logsink_line_buffer_splits_long_lines() {
        let mut lb = LineBuffer::new(4);
        assert_eq!(lb.push(b"abcdefghij\n"), vec!["abcd", "efgh", "ij"]);
        // Exactly `max` bytes then a newline is one line, not a piece and an empty line.
        assert_eq!(lb.push(b"abcd\n"), vec!["abcd"]);
        let mut lb = LineBuffer::new(10);
        let big = vec![b'x'; 1_000_000];
        let lines = lb.push(&big);
        assert_eq!(lines.len(), 99_999);
        assert!(lb.pending() <= 10);
        assert_eq!(lb.flush().map(|s| s.len()), Some(10));
    }

    #[test]
    fn logsink_line_buffer_keeps_utf8_whole() {
        let mut lb = LineBuffer::new(5);
        // "abcd" + "é" (2 bytes) would be cut inside the character at 5 bytes.
        let lines = lb.push("abcd\u{e9}f\n".as_bytes());
        assert_eq!(lines, vec!["abcd", "\u{e9}f"]);
        let mut lb = LineBuffer::new(4);
        assert_eq!(lb.push(b"ab\xff\xfecd\n"), vec!["ab\u{fffd}\u{fffd}", "cd"]);
    }

    #[test]
    fn logsink_utf8_cut() {
        assert_eq!(utf8_cut(b"abc"), 3);
        assert_eq!(utf8_cut("ab\u{e9}".as_bytes()), 4);
        assert_eq!(utf8_cut(&"ab\u{e9}".as_bytes()[..3]), 2);
        assert_eq!(utf8_cut(&"a\u{1F600}".as_bytes()[..4]), 1);
        assert_eq!(utf8_cut(&[0xF0, 0x9F]), 2); // nothing would stay: cut everything
    }

    #[test]
    fn logsink_backlog_remembers_gaps() {
        let r = Arc::new(rec(Severity::Info, "a", None, "x"));
        let cost = Backlog::cost(&r);
        let mut b = Backlog::new(cost * 2);
        assert!(b.push(Arc::clone(&r), 3));
        assert!(b.push(Arc::clone(&r), 0));
        assert!(!b.push(Arc::clone(&r), 2)); // full: this line and the 2 before it are lost
        assert_eq!(b.front_gap(), 3);
        b.clear_front_gap();
        b.pop();
        b.pop();
        assert_eq!(b.front_gap(), 3);
        assert!(!b.is_idle());
        assert!(b.push(Arc::clone(&r), 1));
        assert_eq!(b.front_gap(), 4);
        b.clear_front_gap();
        b.pop();
        assert!(b.is_idle());
    }

    #[test]
    fn logsink_target_from_contract() {
        let remote = RemoteSyslog {
            transport: Transport::Udp,
            host: "::1".to_string(),
            port: 5514,
            format: SyslogFormat::Rfc5424,
            facility: "local0".to_string(),
        };
        let t = RemoteTarget::from_contract(&remote).unwrap();
        assert_eq!(t.addr, "[::1]:5514".parse().unwrap());
        assert_eq!(t.facility, 16);
        let bad = RemoteSyslog {
            host: "loghost".to_string(),
            ..remote.clone()
        };
        assert!(matches!(
            RemoteTarget::from_contract(&bad),
            Err(LogError::BadHost { .. })
        ));
        let bad = RemoteSyslog {
            facility: "nope".to_string(),
            ..remote
        };
        assert!(matches!(
            RemoteTarget::from_contract(&bad),
            Err(LogError::UnknownFacility { .. })
        ));
    }
}
