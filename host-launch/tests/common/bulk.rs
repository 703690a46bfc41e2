//! Bulk TCP through an appliance's TAP device, for `tests/bulk_tcp.rs` and `benches/bulk_tcp.rs`:
//! a busybox image whose service listens with `nc -ll` on two ports, a sink (`wc -c`, then
//! the guest's /proc/net/netstat) and a source (`head -c` of /dev/zero), and the host side of
//! each transfer, run in the test's namespace.

use super::{GUEST, HOST_ADDRESS};
use e2e::{NetNs, RootFs};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub const SINK_PORT: u16 = 9000;
pub const SOURCE_PORT: u16 = 9001;

/// How long a transfer may go without progress before it is given up.
pub const STALL: Duration = Duration::from_secs(60);

/// The guest's console line of a large frame cut to a small buffer (vector_transports.c).
pub const GSO_ERROR: &str = "Incoming GSO frames and GRO disabled";

/// Builds `DIR/bulk.img` and its manifest; the source sends `bytes`.
pub fn image(dir: &Path, bytes: usize) -> PathBuf {
    let image = dir.join("bulk.img");
    let source = format!("#!/bin/sh\nexec head -c {bytes} /dev/zero\n");
    let sink = b"#!/bin/sh\nwc -c\ncat /proc/net/netstat\n".to_vec();
    RootFs::new()
        .busybox(&["sh", "nc", "wc", "head", "cat"])
        .bytes("/bin/sink", sink, 0o755)
        .bytes("/bin/source", source.into_bytes(), 0o755)
        .build(&image)
        .expect("root image");
    std::fs::set_permissions(&image, std::fs::Permissions::from_mode(0o644)).unwrap();
    let manifest = serde_json::json!({
        "contract_version": 1, "name": "bulk",
        "service": {"argv": ["/bin/sh", "-c", format!(
                        "nc -ll -p {SOURCE_PORT} -e /bin/source & \
                         exec nc -ll -p {SINK_PORT} -e /bin/sink")],
                    "uid": 65534, "gid": 65534,
                    "readiness": {"type": "tcp", "port": SINK_PORT},
                    "stop_timeout_ms": 3000},
        "ports": [{"port": SINK_PORT}, {"port": SOURCE_PORT}],
    });
    std::fs::write(dir.join("bulk.img.manifest.json"), manifest.to_string()).unwrap();
    image
}

/// Writes the spec `DIR/NAME.json` of the bulk appliance on TAP `tap` in `ns` (the host
/// address on the TAP); `kernel`, if given, is the spec's kernel.
pub fn spec(
    dir: &Path,
    name: &str,
    image: &Path,
    ns: &NetNs,
    tap: &str,
    kernel: Option<&Path>,
) -> PathBuf {
    let mut text = serde_json::json!({
        "name": name,
        "image": image,
        "memory_mib": 48,
        "network": {
            "tap": tap,
            "netns": ns.name(),
            "host_address": HOST_ADDRESS,
            "addresses": [format!("{GUEST}/24")],
        },
    });
    if let Some(k) = kernel {
        text["kernel"] = k.to_str().unwrap().into();
    }
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, text.to_string()).unwrap();
    path
}

/// A transfer's outcome: bytes moved, how long it took, and what failed if it did not end.
pub struct Transfer {
    pub bytes: usize,
    pub took: Duration,
    pub error: Option<String>,
    /// The sink's answer (host → guest only): the count, then the guest's netstat.
    pub reply: String,
}

impl Transfer {
    pub fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / self.took.as_secs_f64() / 1e6
    }
}

/// Sends `bytes` to the sink, closes the sending side and reads the guest's answer; gives up
/// after `deadline`.
pub fn send_to_guest(ns: &NetNs, bytes: usize, deadline: Duration) -> Transfer {
    let addr = guest(SINK_PORT);
    in_ns(ns, move || {
        let t = Instant::now();
        let mut sent = 0;
        let mut reply = String::new();
        let r = (|| -> std::io::Result<()> {
            let mut s = connect(addr)?;
            let chunk = vec![0u8; 1 << 16];
            while sent < bytes {
                if t.elapsed() > deadline {
                    return Err(std::io::Error::other(past(deadline)));
                }
                let n = chunk.len().min(bytes - sent);
                s.write_all(&chunk[..n])?;
                sent += n;
            }
            s.shutdown(Shutdown::Write)?;
            s.read_to_string(&mut reply)?;
            Ok(())
        })();
        Transfer {
            bytes: sent,
            took: t.elapsed(),
            error: r.err().map(|e| stalled(&e)),
            reply,
        }
    })
}

/// Reads the source to its end; gives up after `deadline`.
pub fn read_from_guest(ns: &NetNs, deadline: Duration) -> Transfer {
    let addr = guest(SOURCE_PORT);
    in_ns(ns, move || {
        let t = Instant::now();
        let mut got = 0;
        let r = (|| -> std::io::Result<()> {
            let mut s = connect(addr)?;
            let mut buf = vec![0u8; 1 << 16];
            loop {
                if t.elapsed() > deadline {
                    return Err(std::io::Error::other(past(deadline)));
                }
                match s.read(&mut buf)? {
                    0 => return Ok(()),
                    n => got += n,
                }
            }
        })();
        Transfer {
            bytes: got,
            took: t.elapsed(),
            error: r.err().map(|e| stalled(&e)),
            reply: String::new(),
        }
    })
}

fn in_ns(ns: &NetNs, f: impl FnOnce() -> Transfer + Send + 'static) -> Transfer {
    ns.enter(f).unwrap_or_else(|e| Transfer {
        bytes: 0,
        took: Duration::ZERO,
        error: Some(format!("entering the namespace: {e}")),
        reply: String::new(),
    })
}

fn past(deadline: Duration) -> String {
    format!("not done after {} s", deadline.as_secs())
}

/// An error of a transfer; a socket's timeout means [`STALL`] without progress.
fn stalled(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            format!("{e} (no progress for {} s)", STALL.as_secs())
        }
        _ => e.to_string(),
    }
}

fn guest(port: u16) -> SocketAddr {
    SocketAddr::new(GUEST.parse().unwrap(), port)
}

/// Connects, trying again for 5 s while refused: readiness is the sink's port, and the
/// service's other listeners start beside it.
fn connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let end = Instant::now() + Duration::from_secs(5);
    let s = loop {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused && Instant::now() < end => {
                std::thread::sleep(Duration::from_millis(50));
            }
            r => break r?,
        }
    };
    s.set_read_timeout(Some(STALL))?;
    s.set_write_timeout(Some(STALL))?;
    Ok(s)
}

/// A counter of the `IpExt:` lines of /proc/net/netstat (a line of names, a line of values).
pub fn ip_ext(netstat: &str, name: &str) -> Option<u64> {
    let mut lines = netstat.lines().filter(|l| l.starts_with("IpExt:"));
    let names = lines.next()?.split_whitespace();
    let values = lines.next()?.split_whitespace();
    names
        .zip(values)
        .find(|(n, _)| *n == name)
        .and_then(|(_, v)| v.parse().ok())
}
