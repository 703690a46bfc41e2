//! Integration tests of the log sink against real sockets on the loopback interface only
//! (127.0.0.1 and [::1]). Every wait is for an event (a connection, a datagram, a socket
//! state, a counter of the sink) and bounded, so a broken sink fails a test instead of
//! hanging it. How fast the sink is, is measured by `benches/log_sink.rs`, not asserted here.

use contract::{Logging, RemoteSyslog, SyslogFormat, Transport};
use guest_init::log::{
    dropped_notice, LineBuffer, LogSink, Record, RemoteTarget, Severity, SinkConfig, Stream,
    Tuning, INIT_APP,
};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsFd;
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Upper bound for any single wait in these tests.
const WAIT: Duration = Duration::from_secs(10);

/// 2024-02-29T12:34:56.123456Z
fn fixed_time() -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(1_709_210_096_123_456)
}

fn fixed(severity: Severity, app: &str, pid: Option<u32>, text: &str) -> Record {
    Record {
        severity,
        timestamp: fixed_time(),
        text: text.to_string(),
        pid,
        app: app.to_string(),
    }
}

fn target(addr: SocketAddr, transport: Transport, format: SyslogFormat) -> RemoteTarget {
    RemoteTarget {
        addr,
        transport,
        format,
        facility: 3, // daemon
    }
}

/// Short timers so reconnection happens within a test's time.
fn fast() -> Tuning {
    Tuning {
        connect_timeout: Duration::from_millis(500),
        write_timeout: Duration::from_millis(200),
        backoff_initial: Duration::from_millis(10),
        backoff_max: Duration::from_millis(100),
        ..Tuning::default()
    }
}

fn start(remote: RemoteTarget, tuning: Tuning) -> LogSink {
    LogSink::start(SinkConfig {
        hostname: "vm1".to_string(),
        remote: Some(remote),
        console: None,
        tuning,
    })
    .expect("sink starts")
}

fn udp_receiver(addr: &str) -> Option<UdpSocket> {
    let socket = UdpSocket::bind(addr).ok()?;
    socket.set_read_timeout(Some(WAIT)).ok()?;
    Some(socket)
}

fn recv_datagram(socket: &UdpSocket) -> String {
    let mut buf = vec![0u8; 65_536];
    let n = socket
        .recv(&mut buf)
        .expect("a datagram within the timeout");
    String::from_utf8(buf[..n].to_vec()).expect("UTF-8 datagram")
}

/// A free TCP port on 127.0.0.1 with nothing listening on it (bound, then released).
fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("local addr")
}

/// Binds a listener on `addr`, retrying briefly (the port was just released).
fn listen_again(addr: SocketAddr) -> TcpListener {
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
fn accept_within(listener: &TcpListener, limit: Duration) -> TcpStream {
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
fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "not within {WAIT:?}: {what}");
        thread::sleep(Duration::from_millis(1));
    }
}

/// Whether a TCP connection to `peer` is in CLOSE_WAIT (it has received the peer's FIN), from
/// `/proc/net/tcp`.
fn close_wait_to(peer: SocketAddr) -> bool {
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
fn console_sink(console: &SharedConsole) -> LogSink {
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
fn log_100k(sink: &Arc<LogSink>, text: impl Fn(u64) -> String + Send + 'static) {
    let caller = Arc::clone(sink);
    returns("100k log() calls", move || {
        for i in 0..100_000 {
            caller.log(Record::service(Stream::Stdout, "web", None, text(i)));
        }
    });
}

/// Says on the terminal (not captured by the test harness) that part of a test did not run.
fn skip(test: &str, why: &str) {
    let _ = writeln!(io::stderr(), "SKIPPED {test}: {why}");
}

/// Runs `f` on a thread and returns its result; panics if it does not return within [`WAIT`]
/// (what "never blocks" means here: a blocked caller would wait forever).
fn returns<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(WAIT)
        .unwrap_or_else(|_| panic!("{what} did not return within {WAIT:?}"))
}

/// Reads RFC 6587 octet-counted frames from a stream.
struct FrameReader {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl FrameReader {
    fn new(stream: TcpStream) -> FrameReader {
        stream.set_read_timeout(Some(WAIT)).expect("read timeout");
        FrameReader {
            stream,
            buf: Vec::new(),
        }
    }

    /// The next message; panics on malformed framing, a timeout or end of stream.
    fn next(&mut self) -> String {
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
fn msg_5424(message: &str) -> &str {
    message.splitn(8, ' ').nth(7).unwrap_or("")
}

/// A console that records what is written to it.
#[derive(Clone, Default)]
struct SharedConsole(Arc<Mutex<Vec<u8>>>);

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
struct StuckConsole(mpsc::Receiver<()>);

impl Write for StuckConsole {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let _ = self.0.recv();
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn udp_receiver_gets_rfc5424_messages() {
    let rx = udp_receiver("127.0.0.1:0").expect("bind 127.0.0.1");
    let addr = rx.local_addr().expect("addr");
    let logging = Logging {
        remote: Some(RemoteSyslog {
            transport: Transport::Udp,
            host: "127.0.0.1".to_string(),
            port: addr.port(),
            format: SyslogFormat::Rfc5424,
            facility: "daemon".to_string(),
        }),
        console: false,
    };
    let cfg = SinkConfig::from_contract(&logging, "vm1", Box::new(io::sink())).expect("config");
    assert!(cfg.console.is_none());
    let sink = LogSink::start(cfg).expect("start");

    sink.log(fixed(Severity::Info, "web", Some(42), "hello world\r"));
    sink.log(fixed(Severity::Warning, "web", Some(42), "oops\tbad"));
    sink.log(fixed(
        Severity::Notice,
        INIT_APP,
        Some(1),
        "service started",
    ));

    assert_eq!(
        recv_datagram(&rx),
        "<30>1 2024-02-29T12:34:56.123456Z vm1 web 42 - - hello world"
    );
    assert_eq!(
        recv_datagram(&rx),
        "<28>1 2024-02-29T12:34:56.123456Z vm1 web 42 - - oops bad"
    );
    assert_eq!(
        recv_datagram(&rx),
        "<29>1 2024-02-29T12:34:56.123456Z vm1 guest-init 1 - - service started"
    );
    assert!(sink.flush(WAIT).is_ok());
    assert_eq!(sink.stats().remote_sent, 3);
}

#[test]
fn udp_receiver_gets_rfc3164_messages_over_ipv6() {
    let Some(rx) = udp_receiver("[::1]:0") else {
        skip(
            "udp_receiver_gets_rfc3164_messages_over_ipv6",
            "no IPv6 loopback here",
        );
        return;
    };
    let addr = rx.local_addr().expect("addr");
    let sink = start(target(addr, Transport::Udp, SyslogFormat::Rfc3164), fast());

    sink.log(fixed(Severity::Info, "web", Some(42), "hello"));
    sink.log(fixed(Severity::Error, "web", None, "no pid"));
    assert_eq!(recv_datagram(&rx), "<30>Feb 29 12:34:56 vm1 web[42]: hello");
    assert_eq!(recv_datagram(&rx), "<27>Feb 29 12:34:56 vm1 web: no pid");
}

#[test]
fn udp_datagrams_are_capped() {
    let rx = udp_receiver("127.0.0.1:0").expect("bind");
    let addr = rx.local_addr().expect("addr");
    let sink = start(target(addr, Transport::Udp, SyslogFormat::Rfc3164), fast());
    sink.log(fixed(Severity::Info, "web", None, &"x".repeat(5000)));
    let got = recv_datagram(&rx);
    assert_eq!(got.len(), 1024);
    assert!(sink.max_line() < 1024);
}

#[test]
fn service_and_init_records_carry_their_severity() {
    let rx = udp_receiver("127.0.0.1:0").expect("bind");
    let addr = rx.local_addr().expect("addr");
    let sink = start(target(addr, Transport::Udp, SyslogFormat::Rfc5424), fast());
    sink.log(Record::service(Stream::Stdout, "web", Some(7), "out"));
    sink.log(Record::service(Stream::Stderr, "web", Some(7), "err"));
    sink.log(Record::init(Severity::Error, "boom"));
    let out = recv_datagram(&rx);
    assert!(
        out.starts_with("<30>1 ") && out.ends_with(" vm1 web 7 - - out"),
        "{out}"
    );
    let err = recv_datagram(&rx);
    assert!(
        err.starts_with("<28>1 ") && err.ends_with(" vm1 web 7 - - err"),
        "{err}"
    );
    let init = recv_datagram(&rx);
    let pid = std::process::id();
    assert!(
        init.starts_with("<27>1 ") && init.ends_with(&format!(" vm1 guest-init {pid} - - boom")),
        "{init}"
    );
}

#[test]
fn tcp_receiver_gets_every_line_in_order() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let tuning = Tuning {
        queue_lines: 4096,
        ..fast()
    };
    let sink = start(target(addr, Transport::Tcp, SyslogFormat::Rfc5424), tuning);
    for i in 0..2000 {
        sink.log(Record::service(
            Stream::Stdout,
            "web",
            Some(9),
            format!("line {i}"),
        ));
    }
    let mut frames = FrameReader::new(accept_within(&listener, WAIT));
    for i in 0..2000 {
        let msg = frames.next();
        assert!(msg.starts_with("<30>1 "), "{msg}");
        assert_eq!(msg_5424(&msg), format!("line {i}"));
    }
    assert!(sink.flush(WAIT).is_ok());
    let stats = sink.stats();
    assert_eq!((stats.remote_sent, stats.remote_dropped), (2000, 0));
    assert!(stats.remote_connected);
}

#[test]
fn absent_tcp_host_never_blocks_and_the_gap_is_reported() {
    let addr = closed_port();
    let tuning = Tuning {
        queue_lines: 64,
        backlog_bytes: 16 * 1024,
        ..fast()
    };
    let sink = Arc::new(start(
        target(addr, Transport::Tcp, SyslogFormat::Rfc5424),
        tuning,
    ));

    log_100k(&sink, |i| format!("line {i}"));
    let stats = sink.stats();
    // Only the queue (64 lines) and the 16 KiB backlog can hold lines: memory stays bounded.
    assert!(stats.remote_dropped > 99_000, "{stats:?}");
    assert!(!stats.remote_connected);
    assert!(stats.remote_last_error.is_some());
    // Hands the caller-side drop count to the sender; the host is still absent.
    assert!(sink.flush(Duration::from_millis(300)).is_err());

    let listener = listen_again(addr);
    let mut frames = FrameReader::new(accept_within(&listener, WAIT));
    // The oldest lines that waited in the queue and backlog arrive in order; wherever lines
    // went missing, a notice says how many. Together they account for every line.
    let mut next = 0u64;
    let mut kept = 0u64;
    while next < 100_000 {
        let msg = frames.next();
        let text = msg_5424(&msg);
        if let Some(n) = text.strip_prefix("line ") {
            assert_eq!(n, next.to_string(), "line out of order");
            next += 1;
            kept += 1;
        } else {
            assert!(msg.contains(" vm1 guest-init "), "unexpected {msg}");
            let lost: u64 = text
                .split(' ')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("not a notice: {msg}"));
            assert_eq!(text, dropped_notice(lost));
            next += lost;
        }
    }
    assert_eq!(next, 100_000);
    assert!(kept > 0 && kept < 400, "kept {kept} lines");

    for i in 0..10 {
        sink.log(Record::service(
            Stream::Stdout,
            "web",
            None,
            format!("after {i}"),
        ));
    }
    for i in 0..10 {
        assert_eq!(msg_5424(&frames.next()), format!("after {i}"));
    }
    assert!(sink.flush(WAIT).is_ok());
    let stats = sink.stats();
    assert_eq!(
        stats.remote_sent + stats.remote_dropped,
        100_010,
        "{stats:?}"
    );
}

#[test]
fn slow_tcp_host_never_blocks() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    // Accept connections and hold them without ever reading, until told to stop (by a
    // connection of the test's own after the flag is set).
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopping = Arc::clone(&stop);
    let holder = thread::spawn(move || {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept() {
            if stopping.load(std::sync::atomic::Ordering::SeqCst) {
                break;
            }
            held.push(stream);
        }
        held.len()
    });
    let tuning = Tuning {
        queue_lines: 64,
        backlog_bytes: 64 * 1024,
        ..fast()
    };
    let sink = Arc::new(start(
        target(addr, Transport::Tcp, SyslogFormat::Rfc3164),
        tuning,
    ));

    let line = "y".repeat(1000);
    log_100k(&sink, move |_| line.clone());
    // 100 MB cannot fit in loopback socket buffers plus a 64 KiB backlog.
    assert!(sink.stats().remote_dropped > 0, "{:?}", sink.stats());
    // flush is bounded even though the host never reads. (It may even succeed: each
    // reconnection brings fresh socket buffers that can absorb the small backlog.)
    let flusher = Arc::clone(&sink);
    returns("flush", move || {
        let _ = flusher.flush(Duration::from_millis(500));
    });
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let _ = TcpStream::connect(addr);
    let connections = holder.join().expect("holder thread");
    assert!(connections >= 1);
}

#[test]
fn tcp_reconnects_after_the_host_restarts() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let sink = start(target(addr, Transport::Tcp, SyslogFormat::Rfc5424), fast());
    sink.log(Record::service(Stream::Stdout, "web", None, "before"));
    let mut frames = FrameReader::new(accept_within(&listener, WAIT));
    assert_eq!(msg_5424(&frames.next()), "before");

    // The log host goes away (the sink's end has its FIN)...
    drop(frames);
    drop(listener);
    wait_until("the sink's connection is in CLOSE_WAIT", || {
        close_wait_to(addr)
    });
    sink.log(Record::service(Stream::Stdout, "web", None, "during"));
    wait_until("the sink noticed that the host is gone", || {
        !sink.stats().remote_connected
    });
    // ...and comes back: the line logged meanwhile is not lost.
    let listener = listen_again(addr);
    let mut frames = FrameReader::new(accept_within(&listener, WAIT));
    assert_eq!(msg_5424(&frames.next()), "during");
    sink.log(Record::service(Stream::Stdout, "web", None, "after"));
    assert_eq!(msg_5424(&frames.next()), "after");
    assert_eq!(sink.stats().remote_dropped, 0);
}

#[test]
fn udp_to_a_closed_port_keeps_working() {
    let reserved = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = reserved.local_addr().expect("addr");
    drop(reserved);
    let sink = start(target(addr, Transport::Udp, SyslogFormat::Rfc5424), fast());
    // ICMP port-unreachable comes back and surfaces as ECONNREFUSED on later sends. Each line
    // is sent (or counted lost) before the next is logged.
    for i in 0..50u64 {
        sink.log(Record::service(
            Stream::Stdout,
            "web",
            None,
            format!("lost {i}"),
        ));
        wait_until("the sink took the line", || {
            let s = sink.stats();
            s.remote_sent + s.remote_dropped > i
        });
    }
    assert!(sink.flush(WAIT).is_ok());

    let Some(rx) = udp_receiver(&addr.to_string()) else {
        skip(
            "udp_to_a_closed_port_keeps_working",
            &format!("port {addr} was taken meanwhile; the second half did not run"),
        );
        return;
    };
    let deadline = Instant::now() + WAIT;
    let mut got = Vec::new();
    while !got.iter().any(|m: &String| m.ends_with(" - - found")) {
        assert!(Instant::now() < deadline, "nothing arrived: {got:?}");
        sink.log(Record::service(Stream::Stdout, "web", None, "found"));
        got.push(recv_datagram(&rx));
    }
    // Any notice of refused datagrams comes from guest-init, before the line.
    for m in &got {
        assert!(m.contains(" web ") || m.contains(" guest-init "), "{m}");
    }
}

#[test]
fn console_gets_app_prefixed_lines() {
    let console = SharedConsole::default();
    let sink = console_sink(&console);
    sink.log(Record::service(Stream::Stdout, "web", Some(3), "hello\r"));
    sink.log(Record::service(
        Stream::Stderr,
        "web",
        Some(3),
        "bad\x1b[0m",
    ));
    sink.log(Record::init(Severity::Notice, "service exited"));
    assert!(sink.flush(WAIT).is_ok());
    let text = String::from_utf8(console.0.lock().expect("lock").clone()).expect("UTF-8");
    assert_eq!(
        text,
        "web: hello\nweb: bad?[0m\nguest-init: service exited\n"
    );
}

#[test]
fn remote_only_records_skip_the_console() {
    let rx = udp_receiver("127.0.0.1:0").expect("bind");
    let console = SharedConsole::default();
    let sink = LogSink::start(SinkConfig {
        hostname: "vm1".to_string(),
        remote: Some(target(
            rx.local_addr().expect("addr"),
            Transport::Udp,
            SyslogFormat::Rfc5424,
        )),
        console: Some(Box::new(console.clone())),
        tuning: fast(),
    })
    .expect("start");
    sink.log_remote_only(Record::init(Severity::Notice, "network up (replayed)"));
    sink.log(Record::init(Severity::Notice, "service started"));
    assert!(sink.flush(WAIT).is_ok());
    assert_eq!(msg_5424(&recv_datagram(&rx)), "network up (replayed)");
    assert_eq!(msg_5424(&recv_datagram(&rx)), "service started");
    let text = String::from_utf8(console.0.lock().expect("lock").clone()).expect("UTF-8");
    assert_eq!(text, "guest-init: service started\n");
}

#[test]
fn a_stuck_console_blocks_neither_the_caller_nor_the_remote_copy() {
    let rx = udp_receiver("127.0.0.1:0").expect("bind");
    let addr = rx.local_addr().expect("addr");
    let (_unblock, blocked) = mpsc::channel::<()>();
    let sink = LogSink::start(SinkConfig {
        hostname: "vm1".to_string(),
        remote: Some(target(addr, Transport::Udp, SyslogFormat::Rfc5424)),
        console: Some(Box::new(StuckConsole(blocked))),
        tuning: Tuning {
            queue_lines: 16,
            ..fast()
        },
    })
    .expect("start");
    let sink = Arc::new(sink);
    let caller = Arc::clone(&sink);
    returns("1000 log() calls", move || {
        for i in 0..1000u64 {
            caller.log(Record::service(
                Stream::Stdout,
                "web",
                None,
                format!("n {i}"),
            ));
            if i % 10 == 0 {
                // Let the remote thread keep up: wait until it has taken this line.
                wait_until("the remote thread took the line", || {
                    let s = caller.stats();
                    s.remote_sent + s.remote_dropped > i
                });
            }
        }
    });
    assert!(sink.stats().console_dropped > 0);
    assert!(msg_5424(&recv_datagram(&rx)).starts_with("n "));
}

#[test]
fn flush_with_an_absent_host_is_bounded() {
    let sink = start(
        target(closed_port(), Transport::Tcp, SyslogFormat::Rfc5424),
        fast(),
    );
    for i in 0..10 {
        sink.log(Record::service(
            Stream::Stdout,
            "web",
            None,
            format!("x {i}"),
        ));
    }
    let sink = Arc::new(sink);
    let flusher = Arc::clone(&sink);
    let result = returns("flush", move || flusher.flush(Duration::from_millis(300)));
    assert!(result.is_err());
}

#[test]
fn line_buffer_feeds_the_sink() {
    let console = SharedConsole::default();
    let sink = console_sink(&console);
    let mut lines = LineBuffer::new(sink.max_line());
    for chunk in [&b"first li"[..], b"ne\r\nsecond", b" line\npartial"] {
        for line in lines.push(chunk) {
            sink.log(Record::service(Stream::Stdout, "web", None, line));
        }
    }
    if let Some(rest) = lines.flush() {
        sink.log(Record::service(Stream::Stdout, "web", None, rest));
    }
    assert!(sink.flush(WAIT).is_ok());
    let text = String::from_utf8(console.0.lock().expect("lock").clone()).expect("UTF-8");
    assert_eq!(text, "web: first line\nweb: second line\nweb: partial\n");
}
