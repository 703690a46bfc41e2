//! DNS queries from one UDP socket inside a test network namespace, for the benchmarks that
//! time an appliance's first answer (the image builder's and uml-runc's): one socket in the
//! benchmark's own process, not a `dig` per query.

use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

/// A DNS query for `name` type A with id `id` (RFC 1035: header, one question, class IN).
pub fn a_query(id: u16, name: &str) -> Vec<u8> {
    query(id, name, 1)
}

/// A DNS query for `name` of type `qtype` (1 A, 16 TXT) with id `id`, class IN.
pub fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut q = Vec::with_capacity(32);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]); // RD; 1 question
    for label in name.split('.') {
        // A DNS label is at most 63 bytes; the tests' names are short.
        q.push(u8::try_from(label.len()).expect("a DNS label of at most 255 bytes"));
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0); // the root
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&[0, 1]); // class IN
    q
}

/// Whether `reply` answers one of our queries (id below `sent`) with no error and holds an A
/// record (type A, class IN, 4 bytes of data) of the address `want`: dnsmasq's reply ends with
/// it, NSD's has the zone's NS records after it.
pub fn answers_a(reply: &[u8], sent: u16, want: [u8; 4]) -> bool {
    let id = reply.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    let is_answer = reply.get(2).is_some_and(|f| f & 0x80 != 0);
    let no_error = reply.get(3).is_some_and(|f| f & 0x0f == 0);
    let answers = reply.get(6..8).is_some_and(|c| c != [0, 0]);
    let has_a = reply
        .get(12..)
        .unwrap_or_default()
        .windows(14)
        .any(|w| w[..4] == [0, 1, 0, 1] && w[8..10] == [0, 4] && w[10..] == want);
    id.is_some_and(|i| i < sent) && is_answer && no_error && answers && has_a
}

/// Sends an A query for `name` to `server` every `period` from one UDP socket inside the
/// namespace `ns` until one answers `want` or `limit` passes, on a thread of its own; the
/// thread returns when the answer came (`None`: no answer within `limit`).
/// One socket in the benchmark's own process, not a `dig` per query: dozens of dig processes
/// starting during a boot took CPU from it on this 2-core machine.
pub fn first_answer(
    ns: &Path,
    server: &str,
    name: &str,
    want: [u8; 4],
    period: Duration,
    limit: Duration,
) -> std::io::Result<std::thread::JoinHandle<std::io::Result<Option<Instant>>>> {
    let netns = std::fs::File::open(ns)?;
    let server: std::net::SocketAddr = format!("{server}:53").parse().expect("address");
    let name = name.to_string();
    Ok(std::thread::spawn(move || {
        // SAFETY: setns on this thread only, which then only uses its own socket.
        if unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let sock = std::net::UdpSocket::bind("0.0.0.0:0")?;
        sock.set_read_timeout(Some(period))?;
        let start = Instant::now();
        let mut buf = [0u8; 512];
        let mut sent = 0u16;
        while start.elapsed() < limit {
            // Unreachable while the TAP device is not there yet: try again next period.
            let _ = sock.send_to(&a_query(sent, &name), server);
            sent = sent.wrapping_add(1);
            let next = Instant::now() + period;
            while Instant::now() < next {
                if let Ok((n, from)) = sock.recv_from(&mut buf) {
                    if from == server && answers_a(buf.get(..n).unwrap_or_default(), sent, want) {
                        return Ok(Some(Instant::now()));
                    }
                }
            }
        }
        Ok(None)
    }))
}
