//! What the network-boundary tests share (`tests/netpolicy.rs` on one bridge,
//! `tests/routed_boundary.rs` on routed TAP devices): the neighbour and attacker images, and
//! the host side's clients, listeners and views of the namespace.

use e2e::{NetNs, RootFs};
use std::net::{TcpListener, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The neighbour: busybox httpd on 8080 (declared) and on 8081 (not declared). With
/// `udp_log`, it also declares that UDP port and prints every datagram it gets there on its
/// console (`e2e`'s `udp-log`), so a test sees what reached it.
pub fn neighbour_image(dir: &Path, file: &str, text: &str, udp_log: Option<u16>) -> PathBuf {
    let image = dir.join(file);
    let mut root = RootFs::new()
        .busybox(&["sh", "httpd"])
        .ipv6_modules()
        .expect("the UML kernel's IPv6 modules")
        .bytes("/www/index.html", text.as_bytes().to_vec(), 0o644);
    let mut ports = vec![serde_json::json!({"port": 8080, "protocol": "tcp"})];
    let script = match udp_log {
        None => "httpd -p 8081 -h /www && exec httpd -f -p 8080 -h /www".to_string(),
        Some(port) => {
            let log = e2e::build_static("e2e", "udp-log").expect("building udp-log");
            root = root.file("/bin/udp-log", log, 0o755);
            ports.push(serde_json::json!({"port": port, "protocol": "udp"}));
            format!("httpd -p 8081 -h /www && httpd -p 8080 -h /www && exec /bin/udp-log {port}")
        }
    };
    root.build(&image).expect("root image");
    std::fs::set_permissions(&image, std::fs::Permissions::from_mode(0o644)).unwrap();
    let manifest = serde_json::json!({
        "contract_version": contract::VERSION, "name": "neighbour",
        "service": {"argv": ["/bin/sh", "-c", script],
                    "uid": 65534, "gid": 65534, "readiness": {"type": "tcp", "port": 8080},
                    "stop_timeout_ms": 3000},
        "ports": ports,
    });
    std::fs::write(
        dir.join(format!("{file}.manifest.json")),
        manifest.to_string(),
    )
    .unwrap();
    image
}

/// The attacker: guest root with every capability, running `/run/attack.sh` of its spec
/// (busybox's shell and tools, `net-attack` for crafted frames); it declares 8080, as the
/// neighbour does.
pub fn attacker_image(dir: &Path) -> PathBuf {
    let image = dir.join("attacker.img");
    let attack = e2e::build_static("e2e", "net-attack").expect("building net-attack");
    RootFs::new()
        .busybox(&["sh", "httpd", "ip", "nc", "sleep", "echo", "awk", "cat"])
        .ipv6_modules()
        .expect("the UML kernel's IPv6 modules")
        .file("/bin/net-attack", attack, 0o755)
        .bytes("/www/index.html", b"attacker\n".to_vec(), 0o644)
        .build(&image)
        .expect("root image");
    std::fs::set_permissions(&image, std::fs::Permissions::from_mode(0o644)).unwrap();
    let manifest = serde_json::json!({
        "contract_version": 1, "name": "attacker",
        "service": {"argv": ["/bin/sh", "/run/attack.sh"], "uid": 0, "gid": 0,
                    "capabilities": contract::names::CAPABILITIES,
                    "readiness": {"type": "tcp", "port": 8080}, "stop_timeout_ms": 3000},
        "ports": [{"port": 8080, "protocol": "tcp"}],
    });
    std::fs::write(dir.join("attacker.img.manifest.json"), manifest.to_string()).unwrap();
    image
}

/// A command's standard output inside the namespace.
pub fn sh(ns: &NetNs, program: &str, args: &[&str]) -> String {
    let o = ns.output(program, args).expect(program);
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Every nftables rule of the namespace.
pub fn nft_ruleset(ns: &NetNs) -> String {
    sh(ns, "nft", &["list", "ruleset"])
}

/// The appliance's console log so far (empty before it has one).
pub fn console(state: &Path, name: &str) -> String {
    std::fs::read_to_string(state.join(name).join("console.log")).unwrap_or_default()
}

/// Waits for `text` in the appliance's console log, and returns the log.
pub fn wait_console(state: &Path, name: &str, text: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let c = console(state, name);
        if c.contains(text) {
            return c;
        }
        assert!(
            Instant::now() < deadline,
            "no {text:?} in {name}'s console within {timeout:?}:\n{c}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The host side's ears during the attacks: the datagrams that reach its UDP addresses (as
/// "PAYLOAD from IP"), and the connections to a TCP address the attacker may reach (its
/// `network.egress`) and to one it may not, counted; all listen until `stop` is set.
pub struct HostSide {
    pub stop: Arc<AtomicBool>,
    pub got: Arc<Mutex<Vec<String>>>,
    pub allowed: Arc<AtomicU32>,
    pub refused: Arc<AtomicU32>,
}

impl HostSide {
    pub fn listen(ns: &NetNs, udp: &[&str], allowed: &str, refused: &str) -> HostSide {
        let h = HostSide {
            stop: Arc::new(AtomicBool::new(false)),
            got: Arc::new(Mutex::new(Vec::new())),
            allowed: Arc::new(AtomicU32::new(0)),
            refused: Arc::new(AtomicU32::new(0)),
        };
        for a in udp {
            udp_listener(ns, a, h.got.clone(), h.stop.clone());
        }
        tcp_listener(ns, allowed, h.allowed.clone(), h.stop.clone());
        tcp_listener(ns, refused, h.refused.clone(), h.stop.clone());
        h
    }

    /// The datagrams so far.
    pub fn datagrams(&self) -> Vec<String> {
        self.got.lock().unwrap().clone()
    }

    /// Fails unless the allowed TCP address was reached `times` times and the other never.
    pub fn assert_connections(&self, times: u32) {
        assert_eq!(
            self.allowed.load(Ordering::Relaxed),
            times,
            "connections to the host's egress port (the control)"
        );
        assert_eq!(
            self.refused.load(Ordering::Relaxed),
            0,
            "the host's port outside the attacker's egress was reached"
        );
    }
}

/// Fails if a router advertisement of `prefix` left a route or an address in the namespace.
pub fn assert_no_router_advertisement_taken(ns: &NetNs, prefix: &str) {
    let routes = sh(ns, "ip", &["-6", "route", "show"]);
    let addrs = sh(ns, "ip", &["-6", "addr", "show"]);
    assert!(
        !routes.contains(prefix) && !routes.contains("proto ra"),
        "a router advertisement was taken: {routes}"
    );
    assert!(!addrs.contains(prefix), "an RA gave an address: {addrs}");
}

/// Datagrams the host side receives on `addr`, as "PAYLOAD from IP", until `stop`.
pub fn udp_listener(ns: &NetNs, addr: &str, got: Arc<Mutex<Vec<String>>>, stop: Arc<AtomicBool>) {
    let sock: UdpSocket = ns.bind_udp(addr.parse().unwrap()).expect("bind");
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while !stop.load(Ordering::Relaxed) {
            if let Ok((n, from)) = sock.recv_from(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                got.lock()
                    .unwrap()
                    .push(format!("{text} from {}", from.ip()));
            }
        }
    });
}

/// Connections the host side accepts on `addr`, counted until `stop`.
fn tcp_listener(ns: &NetNs, addr: &str, count: Arc<AtomicU32>, stop: Arc<AtomicBool>) {
    let l: TcpListener = ns.bind_tcp(addr.parse().unwrap()).expect("bind");
    l.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            if l.accept().is_ok() {
                count.fetch_add(1, Ordering::Relaxed);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
}

/// Asks each of `addrs` ([`super::http_get`]) every 250 ms until `stop`: how many asked,
/// and the failures. Dropped, it stops and waits for its thread, so that a failing test lets go
/// of the namespace (the thread holds it) and the namespace's drop removes it.
pub struct Prober {
    pub asked: Arc<AtomicU32>,
    pub failed: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Prober {
    pub fn start(ns: Arc<NetNs>, addrs: Vec<String>, stop: Arc<AtomicBool>) -> Prober {
        let asked = Arc::new(AtomicU32::new(0));
        let failed = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (asked, failed, stop) = (asked.clone(), failed.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    for a in &addrs {
                        asked.fetch_add(1, Ordering::Relaxed);
                        if let Err(e) = super::http_get(&ns, a) {
                            failed.lock().unwrap().push(format!("{a}: {e}"));
                        }
                    }
                    std::thread::sleep(Duration::from_millis(250));
                }
            })
        };
        Prober {
            asked,
            failed,
            stop,
            thread: Some(thread),
        }
    }

    fn end(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Stops asking, and fails the test if any probe failed or fewer than `min` were asked.
    pub fn assert_all_answered(mut self, min: u32, during: &str) {
        self.end();
        let failed = self.failed.lock().unwrap().clone();
        let asked = self.asked.load(Ordering::Relaxed);
        assert!(
            failed.is_empty(),
            "{} of {asked} probes failed {during}: {failed:?}",
            failed.len(),
        );
        assert!(asked >= min, "only {asked} probes {during}");
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.end();
    }
}
