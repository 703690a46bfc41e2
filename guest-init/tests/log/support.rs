//! What the log sink tests share: sockets on the loopback interface, event waits, consoles.
#![allow(dead_code, unused_imports)] // each module uses a part

pub use contract::{Logging, RemoteSyslog, SyslogFormat, Transport};
pub use guest_init::log::{
    dropped_notice, LineBuffer, LogSink, Record, RemoteTarget, Severity, SinkConfig, Stream,
    Tuning, CONSOLE_WAIT, INIT_APP,
};
pub use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
pub use std::io::{self, Read, Write};
pub use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
pub use std::os::fd::AsFd;
pub use std::sync::{mpsc, Arc, Mutex};
pub use std::thread;
pub use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Upper bound for any single wait in these tests.
pub const WAIT: Duration = Duration::from_secs(10);

/// 2024-02-29T12:34:56.123456Z
pub fn fixed_time() -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(1_709_210_096_123_456)
}

pub fn fixed(severity: Severity, app: &str, pid: Option<u32>, text: &str) -> Record {
    Record {
        severity,
        timestamp: fixed_time(),
        text: text.to_string(),
        pid,
        app: app.to_string(),
    }
}

pub fn target(addr: SocketAddr, transport: Transport, format: SyslogFormat) -> RemoteTarget {
    RemoteTarget {
        addr,
        transport,
        format,
        facility: 3, // daemon
    }
}

/// Short timers so reconnection happens within a test's time.
pub fn fast() -> Tuning {
    Tuning {
        connect_timeout: Duration::from_millis(500),
        write_timeout: Duration::from_millis(200),
        backoff_initial: Duration::from_millis(10),
        backoff_max: Duration::from_millis(100),
        ..Tuning::default()
    }
}

pub fn start(remote: RemoteTarget, tuning: Tuning) -> LogSink {
    LogSink::start(SinkConfig {
        hostname: "vm1".to_string(),
        remote: Some(remote),
        console: None,
        tuning,
    })
    .expect("sink starts")
}

pub fn udp_receiver(addr: &str) -> Option<UdpSocket> {
    let socket = UdpSocket::bind(addr).ok()?;
    socket.set_read_timeout(Some(WAIT)).ok()?;
    Some(socket)
}

pub fn recv_datagram(socket: &UdpSocket) -> String {
    let mut buf = vec![0u8; 65_536];
    let n = socket
        .recv(&mut buf)
        .expect("a datagram within the timeout");
    String::from_utf8(buf[..n].to_vec()).expect("UTF-8 datagram")
}

/// A free TCP port on 127.0.0.1 with nothing listening on it (bound, then released).
pub fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("local addr")
}

/// Binds a listener on `addr`, retrying briefly (the port was just released).
pub fn listen_again(addr: SocketAddr) -> TcpListener {
    let deadline = Instant::now() + WAIT;
    loop {
        match TcpListener::bind(addr) {
            Ok(l) => return l,
            Err(e) if Instant::now() < deadline => {
                eprintln!("rebinding {addr}: {e}; retrying");
                thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("cannot listen on {addr} again: {e}"),
        }
    }
}

/// Waits (poll) for the sink's connection, at most `limit`.
pub fn accept_within(listener: &TcpListener, limit: Duration) -> TcpStream {
    let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
    let timeout = PollTimeout::try_from(limit).expect("timeout");
    match poll(&mut fds, timeout) {
        Ok(n) if n > 0 => {}
        other => panic!("no connection from the sink within {limit:?}: {other:?}"),
    }
    let (stream, _) = listener.accept().expect("accept");
    stream
}

/// Waits until `what` holds, checking every millisecond; panics after [`WAIT`].
pub fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "not within {WAIT:?}: {what}");
        thread::sleep(Duration::from_millis(1));
    }
}

/// Whether a TCP connection to `peer` is in CLOSE_WAIT (it has received the peer's FIN), from
/// `/proc/net/tcp`.
pub fn close_wait_to(peer: SocketAddr) -> bool {
    let SocketAddr::V4(v4) = peer else {
        return false;
    };
    // /proc/net/tcp shows the address as the kernel stores it (little-endian on x86) and the
    // port big-endian, both in hex.
    let want = format!(
        "{:08X}:{:04X}",
        u32::from_ne_bytes(v4.ip().octets()),
        v4.port()
    );
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    table.lines().skip(1).any(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        cols.get(2) == Some(&want.as_str()) && cols.get(3) == Some(&"08")
    })
}

/// A sink with the console only.
pub fn console_sink(console: &SharedConsole) -> LogSink {
    LogSink::start(SinkConfig {
        hostname: "vm1".to_string(),
        remote: None,
        console: Some(Box::new(console.clone())),
        tuning: Tuning::default(),
    })
    .expect("start")
}

/// Logs 100,000 service lines (`text(i)`) from another thread; they must all return (see
/// [`returns`]).
pub fn log_100k(sink: &Arc<LogSink>, text: impl Fn(u64) -> String + Send + 'static) {
    let caller = Arc::clone(sink);
    returns("100k log() calls", move || {
        for i in 0..100_000 {
            caller.log(Record::service(Stream::Stdout, "web", None, text(i)));
        }
    });
}

/// Says on the terminal (not captured by the test harness) that part of a test did not run.
pub fn skip(test: &str, why: &str) {
    let _ = writeln!(io::stderr(), "SKIPPED {test}: {why}");
}

/// Runs `f` on a thread and returns its result; panics if it does not return within [`WAIT`]
/// (what "never blocks" means here: a blocked caller would wait forever).
pub fn returns<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(WAIT)
        .unwrap_or_else(|_| panic!("{what} did not return within {WAIT:?}"))
}

/// Reads RFC 6587 octet-counted frames from a stream.
pub struct FrameReader {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl FrameReader {
    pub fn new(stream: TcpStream) -> FrameReader {
        stream.set_read_timeout(Some(WAIT)).expect("read timeout");
        FrameReader {
            stream,
            buf: Vec::new(),
        }
    }

    /// The next message; panics on malformed framing, a timeout or end of stream.
    pub fn next(&mut self) -> String {
        loop {
            if let Some(msg) = self.parse() {
                return msg;
            }
            let mut chunk = [0u8; 4096];
            let n = self
                .stream
                .read(&mut chunk)
                .expect("a frame within the timeout");
            assert!(n > 0, "connection closed mid-stream");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn parse(&mut self) -> Option<String> {
        let space = self.buf.iter().position(|&b| b == b' ')?;
        let len: usize = std::str::from_utf8(&self.buf[..space])
            .ok()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad frame length in {:?}", &self.buf[..space]));
        if self.buf.len() < space + 1 + len {
            return None;
        }
        let msg = String::from_utf8(self.buf[space + 1..space + 1 + len].to_vec()).expect("UTF-8");
        self.buf.drain(..space + 1 + len);
        Some(msg)
    }
}

/// The MSG part of an RFC 5424 message: what follows PRI+VERSION, TIMESTAMP, HOSTNAME,
/// APP-NAME, PROCID, MSGID and STRUCTURED-DATA (this sink never sends structured data).
pub fn msg_5424(message: &str) -> &str {
    message.splitn(8, ' ').nth(7).unwrap_or("")
}

/// A console that records what is written to it.
#[derive(Clone, Default)]
pub struct SharedConsole(pub Arc<Mutex<Vec<u8>>>);

impl Write for SharedConsole {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.0.lock().expect("console lock").extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A console whose writes block until the test ends (the sender side is dropped).
pub struct StuckConsole(pub mpsc::Receiver<()>);

impl Write for StuckConsole {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let _ = self.0.recv();
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
