//! The remote thread: owns the socket to the log host, keeps a byte-bounded backlog while it
//! is unreachable, reconnects with [`Backoff`], and sends a notice where lines were lost.

use super::channel::{Counters, Msg};
use super::config::Tuning;
use super::format::{dropped_notice, format_3164, format_5424, frame_octet_counting};
use super::record::{Record, Severity};
use crate::backoff::Backoff;
use contract::checked::Remote;
use contract::{SyslogFormat, Transport};
use nix::errno::Errno;
use nix::sys::socket::{recv, MsgFlags};
use std::collections::VecDeque;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// Largest TCP syslog message (before framing): RFC 5425 4.3.1 asks receivers to accept 8192.
pub const TCP_MAX_MESSAGE: usize = 8192;
/// Largest RFC 5424 UDP datagram: RFC 5426 3.2 says receivers SHOULD accept 2048 octets.
pub const UDP_MAX_5424: usize = 2048;
/// Largest RFC 3164 UDP datagram: RFC 3164 4.1 limits packets to 1024 octets.
pub const UDP_MAX_3164: usize = 1024;

/// Where and how remote lines go, from the validated contract's typed remote target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteTarget {
    pub addr: SocketAddr,
    pub transport: Transport,
    pub format: SyslogFormat,
    /// Facility number, 0..=23.
    pub facility: u8,
}

impl From<&Remote> for RemoteTarget {
    fn from(remote: &Remote) -> RemoteTarget {
        RemoteTarget {
            addr: remote.addr,
            transport: remote.transport,
            format: remote.format,
            facility: remote.facility,
        }
    }
}

impl RemoteTarget {
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

pub(super) struct RemoteWorker {
    target: RemoteTarget,
    hostname: String,
    tuning: Tuning,
    counters: Arc<Counters>,
    conn: Option<Conn>,
    backlog: Backlog,
    backoff: Backoff,
    next_attempt: Instant,
    connected_at: Instant,
}

impl RemoteWorker {
    pub(super) fn new(
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
            backoff: Backoff::new(tuning.backoff_initial, tuning.backoff_max),
            next_attempt: now,
            connected_at: now,
        }
    }

    pub(super) fn run(mut self, rx: Receiver<Msg>) {
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
            self.backoff.reset();
        }
        self.conn = None;
        self.counters
            .remote_connected
            .store(false, Ordering::Relaxed);
        self.counters.set_error(Some(why));
        let now = Instant::now();
        self.next_attempt = now.checked_add(self.backoff.next_delay()).unwrap_or(now);
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
    use crate::log::record::testing::rec;

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
}
