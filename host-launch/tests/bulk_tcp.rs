//! Bulk TCP through an appliance's TAP device, both ways (issue 24, the data path): a client
//! in the test's namespace sends 16 MiB to the guest (busybox `nc` into `wc -c`, which answers
//! the count) and reads 16 MiB from it (`head -c` of /dev/zero). Both transfers must complete
//! whole, and the guest must have received every frame the host sent it: no "Incoming GSO
//! frames" on its console (the vector driver's complaint when the host's 64 KiB TCP frames
//! meet receive buffers of the MTU's size, which it then drops) and no IP packet it had to
//! drop as truncated (`InTruncatedPkts` of the guest's /proc/net/netstat, which the sink
//! prints after the count). Before vmm gave the TAP interface `gro=1`, the host→guest
//! transfer crawled through retransmissions and the guest counted thousands of truncated
//! packets. Needs root and busybox-static; fails, rather than skips, without them.

mod common;

use common::{launch, netns, require_root_and_busybox, tap_name, temp_dir, GUEST, HOST_ADDRESS};
use e2e::{NetNs, RootFs};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What each transfer moves: many times the TAP's 64 KiB frames and the sockets' buffers.
const BYTES: usize = 16 << 20;
/// How long one transfer may go without progress before the test gives up on it.
const STALL: Duration = Duration::from_secs(60);

const SINK_PORT: u16 = 9000;
const SOURCE_PORT: u16 = 9001;

/// The guest's console line of a large frame cut to a small buffer (vector_transports.c).
const GSO_ERROR: &str = "Incoming GSO frames and GRO disabled";

#[test]
fn bulk_tcp_both_ways_arrives_whole_with_no_frame_dropped() {
    require_root_and_busybox();
    let dir = temp_dir("bulk-tcp");
    let image = image(dir.path());
    let ns = netns(false);
    let spec = dir.join("bulk.json");
    let text = serde_json::json!({
        "name": "bulk",
        "image": image,
        "memory_mib": 48,
        "network": {
            "tap": tap_name("b"),
            "netns": ns.name(),
            "host_address": HOST_ADDRESS,
            "addresses": [format!("{GUEST}/24")],
        },
    });
    std::fs::write(&spec, text.to_string()).unwrap();
    let state = dir.join("state");
    let mut run = launch(&spec, "bulk", &state);
    run.wait_ready(Duration::from_secs(60)).unwrap();

    let to_guest = send_to_guest(&ns);
    let from_guest = read_from_guest(&ns);
    let console = std::fs::read_to_string(state.join("bulk/console.log")).unwrap_or_default();
    let (code, all) = run.stop();

    let reply = to_guest.unwrap_or_else(|e| panic!("host → guest: {e}\n--- console:\n{console}"));
    let (count, netstat) = reply.split_once('\n').unwrap_or((&reply, ""));
    assert_eq!(
        count.trim(),
        BYTES.to_string(),
        "host → guest: the guest's wc -c counted another length; its answer:\n{reply}"
    );
    let read = from_guest.unwrap_or_else(|e| panic!("guest → host: {e}\n--- console:\n{console}"));
    assert_eq!(read, BYTES, "guest → host: bytes read");
    assert!(
        !console.contains(GSO_ERROR),
        "the guest cut the host's large frames (gro=1 missing on the vec0 argument?):\n{console}"
    );
    let truncated = ip_ext(netstat, "InTruncatedPkts")
        .unwrap_or_else(|| panic!("no IpExt InTruncatedPkts in the guest's answer:\n{reply}"));
    assert_eq!(
        truncated, 0,
        "the guest dropped {truncated} truncated packets:\n{netstat}"
    );
    assert_eq!(code, Some(0), "{all}");
}

/// The busybox image: `nc -ll` servers, the sink (`wc -c`, then the guest's IP counters) on
/// [`SINK_PORT`] and the source on [`SOURCE_PORT`], as user nobody.
fn image(dir: &Path) -> PathBuf {
    let image = dir.join("root.img");
    let source = format!("#!/bin/sh\nexec head -c {BYTES} /dev/zero\n");
    RootFs::new()
        .busybox(&["sh", "nc", "wc", "head", "cat"])
        .bytes(
            "/bin/sink",
            b"#!/bin/sh\nwc -c\ncat /proc/net/netstat\n".to_vec(),
            0o755,
        )
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
    std::fs::write(dir.join("root.img.manifest.json"), manifest.to_string()).unwrap();
    image
}

/// Sends [`BYTES`] to the sink, closes the sending side and returns the guest's answer.
fn send_to_guest(ns: &NetNs) -> Result<String, String> {
    let addr = guest(SINK_PORT);
    ns.enter(move || -> std::io::Result<String> {
        let mut s = connect(addr)?;
        let chunk = vec![0u8; 1 << 16];
        for _ in 0..BYTES / chunk.len() {
            s.write_all(&chunk)?;
        }
        s.shutdown(Shutdown::Write)?;
        let mut reply = String::new();
        s.read_to_string(&mut reply)?;
        Ok(reply)
    })
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("{e} (a transfer stalled for {} s?)", STALL.as_secs()))
}

/// Reads the source to its end; returns how many bytes came.
fn read_from_guest(ns: &NetNs) -> Result<usize, String> {
    let addr = guest(SOURCE_PORT);
    ns.enter(move || -> std::io::Result<usize> {
        let mut s = connect(addr)?;
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0;
        loop {
            match s.read(&mut buf)? {
                0 => return Ok(total),
                n => total += n,
            }
        }
    })
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("{e} (a transfer stalled for {} s?)", STALL.as_secs()))
}

fn guest(port: u16) -> SocketAddr {
    SocketAddr::new(GUEST.parse().unwrap(), port)
}

fn connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(STALL))?;
    s.set_write_timeout(Some(STALL))?;
    Ok(s)
}

/// A counter of the `IpExt:` lines of /proc/net/netstat (a line of names, a line of values).
fn ip_ext(netstat: &str, name: &str) -> Option<u64> {
    let mut lines = netstat.lines().filter(|l| l.starts_with("IpExt:"));
    let names = lines.next()?.split_whitespace();
    let values = lines.next()?.split_whitespace();
    names
        .zip(values)
        .find(|(n, _)| *n == name)
        .and_then(|(_, v)| v.parse().ok())
}
