//! The victim's ear in the network-boundary tests (host-launch/tests/routed_boundary.rs):
//! busybox's `nc` has no UDP, so a guest that must show which datagrams reached it runs this.
//!
//! `udp-log PORT` binds 0.0.0.0:PORT and prints `udp-log: TEXT from IP` for every datagram,
//! TEXT its first 64 bytes with anything but printable ASCII as `?` (one line per datagram,
//! whatever it carries). Prints `error: ...` and exits 1 if it cannot bind.

#![deny(missing_debug_implementations)]
#![deny(clippy::exit, clippy::tests_outside_test_module)]

use std::io::Write;
use std::net::UdpSocket;

/// How much of a datagram a line shows: the tests send short words.
const SHOWN: usize = 64;

fn main() {
    let port = std::env::args().nth(1).unwrap_or_default();
    if let Err(e) = run(&port) {
        println!("error: {e}");
        std::process::exit(1);
    }
}

fn run(port: &str) -> Result<(), String> {
    let port: u16 = port
        .parse()
        .map_err(|e| format!("usage: udp-log PORT ({port:?}: {e})"))?;
    let sock = UdpSocket::bind(("0.0.0.0", port)).map_err(|e| format!("bind {port}: {e}"))?;
    println!("udp-log: listening on {port}");
    let mut buf = [0u8; 2048];
    loop {
        let (n, from) = sock.recv_from(&mut buf).map_err(|e| e.to_string())?;
        let mut out = std::io::stdout().lock();
        // A console that went away ends nothing here: the service's supervisor sees it.
        let _ = writeln!(out, "udp-log: {} from {}", shown(&buf[..n]), from.ip());
        let _ = out.flush();
    }
}

/// The datagram's first [`SHOWN`] bytes, anything but printable ASCII as `?`.
fn shown(bytes: &[u8]) -> String {
    bytes
        .iter()
        .take(SHOWN)
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                char::from(b)
            } else {
                '?'
            }
        })
        .collect()
}
