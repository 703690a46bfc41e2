//! What the log sink costs its caller, PID 1's supervisor: the timings that the tests in
//! `tests/log/` used to assert, measured here instead (the tests check that the calls
//! return; how fast they do depends on the machine).
//!
//! - 100,000 `log()` calls while the TCP log host is absent (total and slowest call);
//! - 100,000 `log()` calls of 1000-byte lines to a TCP log host that never reads;
//! - `flush(300 ms)` with the log host absent, and `flush(500 ms)` with one that never reads.
//!
//! `cargo bench -p guest-init --bench log_sink` (loopback only).

use contract::{SyslogFormat, Transport};
use guest_init::log::{LogSink, Record, RemoteTarget, SinkConfig, Stream, Tuning};
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

fn tuning() -> Tuning {
    Tuning {
        queue_lines: 64,
        connect_timeout: Duration::from_millis(500),
        write_timeout: Duration::from_millis(200),
        backoff_initial: Duration::from_millis(10),
        backoff_max: Duration::from_millis(100),
        ..Tuning::default()
    }
}

fn sink(addr: SocketAddr, format: SyslogFormat, backlog_bytes: usize) -> LogSink {
    LogSink::start(SinkConfig {
        hostname: "vm1".to_string(),
        remote: Some(RemoteTarget {
            addr,
            transport: Transport::Tcp,
            format,
            facility: 3,
        }),
        console: None,
        tuning: Tuning {
            backlog_bytes,
            ..tuning()
        },
    })
    .unwrap_or_else(|e| panic!("the sink does not start: {e}"))
}

/// Logs `n` lines of `text`; returns the total time and the slowest call.
fn log_lines(sink: &LogSink, n: usize, text: &str) -> (Duration, Duration) {
    let began = Instant::now();
    let mut slowest = Duration::ZERO;
    for _ in 0..n {
        let t = Instant::now();
        sink.log(Record::service(Stream::Stdout, "web", None, text));
        slowest = slowest.max(t.elapsed());
    }
    (began.elapsed(), slowest)
}

fn main() {
    // Absent host: a port that was bound and released.
    let absent = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let s = sink(absent, SyslogFormat::Rfc5424, 16 * 1024);
    let (took, slowest) = log_lines(&s, 100_000, "line");
    println!("absent host: 100000 log() calls took {took:?}, the slowest {slowest:?}");
    let t = Instant::now();
    let r = s.flush(Duration::from_millis(300));
    println!(
        "absent host: flush(300ms) returned after {:?} ({})",
        t.elapsed(),
        if r.is_ok() {
            "ok"
        } else {
            "error, as expected"
        }
    );
    drop(s);

    // A host that accepts and never reads.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("addr: {e}"));
    std::thread::spawn(move || {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept() {
            held.push(stream);
        }
    });
    let s = sink(addr, SyslogFormat::Rfc3164, 64 * 1024);
    let line = "y".repeat(1000);
    let (took, slowest) = log_lines(&s, 100_000, &line);
    println!("slow host: 100000 log() calls of 1000 bytes took {took:?}, the slowest {slowest:?}");
    let t = Instant::now();
    let _ = s.flush(Duration::from_millis(500));
    println!("slow host: flush(500ms) returned after {:?}", t.elapsed());
}
