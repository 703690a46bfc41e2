//! What the class tests and benchmarks share: clients that try the web and syslog classes'
//! services once (`web_attempt`, `syslog_attempt`, run inside the lab's namespace), a poller
//! that tries every 10 ms while something runs, and the downtime in what it saw.

use super::Lab;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One attempt of the poller: when, and whether the service answered.
pub type Attempt = (Instant, bool);

/// Polls with `attempt(n)` every 10 ms in the namespace while `during` runs; the attempts.
pub fn poll_while<T>(
    lab: &Lab,
    attempt: fn(u64) -> bool,
    during: impl FnOnce() -> T,
) -> (T, Vec<Attempt>) {
    let stop = Arc::new(AtomicBool::new(false));
    let ns = &lab.ns;
    std::thread::scope(|s| {
        let flag = stop.clone();
        let poller = s.spawn(move || {
            ns.enter(move || {
                let mut seen = Vec::new();
                let mut n = 0u64;
                while !flag.load(Ordering::Relaxed) {
                    let at = Instant::now();
                    seen.push((at, attempt(n)));
                    n += 1;
                    let next = at + Duration::from_millis(10);
                    std::thread::sleep(next.saturating_duration_since(Instant::now()));
                }
                seen
            })
            .expect("the poller in the namespace")
        });
        let out = during();
        // A moment of the new image's answers after the upgrade returned.
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::Relaxed);
        (out, poller.join().expect("poller"))
    })
}

/// The longest run of failed attempts: (last success before, first success after).
pub fn downtime(attempts: &[Attempt]) -> Option<Duration> {
    let mut best: Option<Duration> = None;
    let mut last_ok: Option<Instant> = None;
    let mut in_gap = false;
    for &(at, ok) in attempts {
        if ok {
            if let (true, Some(l)) = (in_gap, last_ok) {
                let gap = at - l;
                best = Some(best.map_or(gap, |b| b.max(gap)));
            }
            last_ok = Some(at);
            in_gap = false;
        } else {
            in_gap = true;
        }
    }
    best
}

const WEB: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::new(192, 0, 2, 80),
    80,
));

/// GET / over one connection: a 200 with the site's index.
pub fn web_attempt(_: u64) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&WEB, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"GET / HTTP/1.1\r\nHost: web1\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = Vec::new();
    let _ = s.take(64 << 10).read_to_end(&mut buf);
    buf.starts_with(b"HTTP/1.1 200") && buf.ends_with(b"<h1>class site</h1>\n")
}

const LOGS: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::new(192, 0, 2, 14),
    514,
));

/// One RFC 5424 message with sequence number `n` over a new TCP connection (octet counting).
pub fn syslog_attempt(n: u64) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&LOGS, Duration::from_millis(200)) else {
        return false;
    };
    let msg = format!("<134>1 2026-01-01T00:00:00Z swap-client poller - - - seq {n} end");
    s.write_all(format!("{} {msg}", msg.len()).as_bytes())
        .is_ok()
}

/// Tries `attempt` every `period` inside the lab's namespace until it succeeds or `limit`
/// passes; when it first succeeded.
pub fn first_success(
    lab: &Lab,
    attempt: fn(u64) -> bool,
    period: Duration,
    limit: Duration,
) -> Option<Instant> {
    lab.ns
        .enter(move || {
            let end = Instant::now() + limit;
            let mut n = 0u64;
            while Instant::now() < end {
                let at = Instant::now();
                if attempt(n) {
                    return Some(Instant::now());
                }
                n += 1;
                std::thread::sleep((at + period).saturating_duration_since(Instant::now()));
            }
            None
        })
        .ok()
        .flatten()
}
