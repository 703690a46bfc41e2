//! What the end-to-end tests and the boot benchmark share: a busybox httpd appliance image
//! built with the e2e harness, network namespaces, specs, a `host-launch run` that is waited
//! on until "ready" and stopped with SIGTERM, and the host memory of a running VM.
//!
//! Needs root (network namespace, TAP device) and `busybox-static`.

#![allow(dead_code)] // each test binary uses a part

use e2e::{RootFs, TempDir};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const EXE: &str = env!("CARGO_BIN_EXE_host-launch");

/// The host side of every test network.
pub const HOST_ADDRESS: &str = "192.0.2.1/24";

/// A network namespace removed on drop.
pub struct Netns(pub String);

impl Netns {
    pub fn new(name: &str) -> Netns {
        let _ = Command::new("ip")
            .args(["netns", "del", name])
            .stderr(Stdio::null())
            .status();
        let ok = Command::new("ip")
            .args(["netns", "add", name])
            .status()
            .expect("ip")
            .success();
        assert!(ok, "ip netns add {name} failed (this test needs root)");
        ip(name, &["link", "set", "lo", "up"]);
        Netns(name.to_string())
    }

    /// A bridge `br0` with the host address, for several appliances in one subnet.
    pub fn with_bridge(self) -> Netns {
        ip(&self.0, &["link", "add", "br0", "type", "bridge"]);
        ip(&self.0, &["addr", "add", HOST_ADDRESS, "dev", "br0"]);
        ip(&self.0, &["link", "set", "br0", "up"]);
        self
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn ip(ns: &str, args: &[&str]) {
    let ok = Command::new("ip")
        .args(["-n", ns])
        .args(args)
        .status()
        .expect("ip")
        .success();
    assert!(ok, "ip -n {ns} {} failed", args.join(" "));
}

/// An HTTP GET from inside the namespace (on a thread that enters it).
pub fn http_get(netns: &str, addr: &str) -> std::io::Result<String> {
    let ns = std::fs::File::open(Path::new("/run/netns").join(netns))?;
    let addr: std::net::SocketAddr = addr.parse().expect("addr");
    std::thread::spawn(move || {
        use std::os::fd::AsRawFd;
        // SAFETY: setns on this thread only, with a descriptor that stays open.
        if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
        s.set_read_timeout(Some(Duration::from_secs(3)))?;
        s.write_all(b"GET / HTTP/1.0\r\nHost: appliance\r\n\r\n")?;
        let mut body = String::new();
        s.read_to_string(&mut body)?;
        Ok(body)
    })
    .join()
    .expect("thread")
}

pub fn tap_exists(netns: &str, tap: &str) -> bool {
    Command::new("ip")
        .args(["-n", netns, "link", "show", "dev", tap])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Fails the test without root or busybox.
pub fn require_root_and_busybox() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root (network namespace and TAP device)"
    );
    assert!(
        Path::new("/bin/busybox").is_file(),
        "/bin/busybox is missing: install the Debian package busybox-static (the test \
         appliance's service)"
    );
}

/// The user UML runs as: `nobody` when it may open /dev/net/tun (mode 0666 on Debian), else
/// root.
pub fn run_as() -> &'static str {
    let tun_open = std::fs::metadata("/dev/net/tun")
        .map(|m| m.permissions().mode() & 0o006 == 0o006)
        .unwrap_or(false);
    if tun_open {
        "nobody"
    } else {
        "root"
    }
}

/// Builds the busybox httpd root image `DIR/root.img` and its manifest. The image serves
/// `text` at `/`.
pub fn build_image(dir: &Path, text: &str) -> PathBuf {
    let image = dir.join("root.img");
    RootFs::new()
        .file("/bin/busybox", "/bin/busybox", 0o755)
        .bytes("/www/index.html", text.as_bytes().to_vec(), 0o644)
        .dir("/data", 0o755)
        .build(&image)
        .expect("root image");
    std::fs::set_permissions(&image, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(
        dir.join("root.img.manifest.json"),
        r#"{"contract_version":1,"name":"busybox-httpd",
            "service":{"argv":["/bin/busybox","httpd","-f","-p","8080","-h","/www"],
                       "uid":65534,"gid":65534,"readiness":{"type":"tcp","port":8080},
                       "stop_timeout_ms":3000},
            "disks":[{"mount_point":"/data"}],
            "ports":[{"port":8080,"description":"HTTP"}]}"#,
    )
    .unwrap();
    image
}

/// A formatted 16 MiB data disk (the image has no mke2fs: the operator formats it).
pub fn data_disk(path: &Path, owner: &str) {
    let ok = Command::new("mkfs.ext4")
        .args(["-q", "-F"])
        .arg(path)
        .arg("16M")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("mkfs.ext4")
        .success();
    assert!(ok, "mkfs.ext4 {}", path.display());
    if owner == "nobody" {
        std::os::unix::fs::chown(path, Some(65534), Some(65534)).unwrap();
    }
}

/// One appliance's spec.
pub struct Appliance {
    pub name: String,
    pub memory_mib: u32,
    pub image: PathBuf,
    pub data: PathBuf,
    pub tap: String,
    pub netns: String,
    /// Joins the namespace's `br0` instead of giving the TAP device the host address.
    pub bridge: bool,
    pub address: String,
    pub run_as: &'static str,
}

impl Appliance {
    /// Writes `DIR/NAME.json` and returns its path.
    pub fn write_spec(&self, dir: &Path) -> PathBuf {
        let mut network = serde_json::json!({
            "tap": self.tap,
            "netns": self.netns,
            "addresses": [format!("{}/24", self.address)],
            "routes": [{"destination": "0.0.0.0/0", "gateway": "192.0.2.1"}],
        });
        if self.bridge {
            network["bridge"] = "br0".into();
        } else {
            network["host_address"] = HOST_ADDRESS.into();
        }
        let text = serde_json::json!({
            "name": self.name,
            "image": self.image,
            "memory_mib": self.memory_mib,
            "run_as": self.run_as,
            "disks": [{"file": self.data}],
            "network": network,
        })
        .to_string();
        let path = dir.join(format!("{}.json", self.name));
        std::fs::write(&path, text).unwrap();
        path
    }
}

/// A `host-launch run SPEC` in the foreground, its output lines collected on a thread.
pub struct Launch {
    pub child: Child,
    pub name: String,
    pub state: PathBuf,
    pub started: Instant,
    rx: mpsc::Receiver<String>,
    pub lines: Vec<String>,
}

impl Launch {
    /// Starts `host-launch run SPEC` with the state base directory `state`.
    pub fn start(spec: &Path, name: &str, state: &Path) -> Launch {
        let started = Instant::now();
        let mut child = Command::new(EXE)
            .arg("run")
            .arg(spec)
            .env("HOST_LAUNCH_STATE_DIR", state)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("host-launch");
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        let tx2 = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx2.send(format!("(stderr) {line}"));
            }
        });
        Launch {
            child,
            name: name.to_string(),
            state: state.to_path_buf(),
            started,
            rx,
            lines: Vec::new(),
        }
    }

    /// Waits for the "ready" line; returns the time since the start, or the output so far.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<Duration, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(l) => {
                    let ready = l.starts_with('[') && l.contains(" ready: ");
                    self.lines.push(l);
                    if ready {
                        return Ok(self.started.elapsed());
                    }
                }
                Err(e) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    self.drain(Duration::from_millis(500));
                    return Err(format!(
                        "no ready event within {} s ({e:?}):\n{}\n--- console:\n{}",
                        timeout.as_secs(),
                        self.lines.join("\n"),
                        self.console_tail(40)
                    ));
                }
            }
        }
    }

    fn drain(&mut self, quiet_for: Duration) {
        while let Ok(l) = self.rx.recv_timeout(quiet_for) {
            self.lines.push(l);
        }
    }

    /// SIGTERM, then waits for the launcher; returns its exit code and all its output.
    pub fn stop(mut self) -> (Option<i32>, String) {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let code = self.child.wait().unwrap().code();
        self.drain(Duration::from_millis(500));
        (code, self.lines.join("\n"))
    }

    pub fn state_json(&self) -> Value {
        let p = self.state.join(&self.name).join("state.json");
        serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap()
    }

    /// The status events of the run so far.
    pub fn events(&self) -> Vec<Value> {
        let p = self.state.join(&self.name).join("events.jsonl");
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The first event called `name`.
    pub fn event(&self, name: &str) -> Option<Value> {
        self.events().into_iter().find(|e| e["event"] == name)
    }

    pub fn uml_pid(&self) -> u32 {
        self.state_json()["uml_pid"].as_u64().expect("uml_pid") as u32
    }

    pub fn console_tail(&self, n: usize) -> String {
        let p = self.state.join(&self.name).join("console.log");
        let text = std::fs::read_to_string(p).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

/// Host memory of a set of processes, KiB.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    pub processes: usize,
    /// Distinct address spaces: UML's helper threads are processes sharing its memory.
    pub address_spaces: usize,
    pub rss_kib: u64,
    pub pss_kib: u64,
}

fn rollup_field(text: &str, field: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Whether two processes share one address space (`kcmp(KCMP_VM)`).
fn same_mm(a: u32, b: u32) -> bool {
    const KCMP_VM: libc::c_long = 1;
    // SAFETY: kcmp only compares kernel objects of the two processes.
    unsafe {
        libc::syscall(
            libc::SYS_kcmp,
            a as libc::c_long,
            b as libc::c_long,
            KCMP_VM,
            0,
            0,
        ) == 0
    }
}

/// RSS and PSS (`/proc/PID/smaps_rollup`) summed over the distinct address spaces of `pids`
/// (UML starts its I/O helpers with `clone(CLONE_VM)`: each shows the whole VM's memory).
pub fn memory_of(pids: &[u32]) -> Memory {
    let mut m = Memory::default();
    let mut seen: Vec<u32> = Vec::new();
    for &pid in pids {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) else {
            continue;
        };
        m.processes += 1;
        if seen.iter().any(|&s| same_mm(s, pid)) {
            continue;
        }
        seen.push(pid);
        m.address_spaces += 1;
        m.rss_kib += rollup_field(&text, "Rss:");
        m.pss_kib += rollup_field(&text, "Pss:");
    }
    m
}

/// Every process of the VM whose UML main process is `uml_pid`: UML leads its own process
/// group, and its helpers and the host processes of guest address spaces stay in it.
pub fn uml_processes(uml_pid: u32) -> Vec<u32> {
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let pgrp = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(2))
            .and_then(|g| g.parse::<u32>().ok());
        if pgrp == Some(uml_pid) {
            pids.push(pid);
        }
    }
    pids
}

/// A temporary directory the VM's user may enter.
pub fn temp_dir(label: &str) -> TempDir {
    let dir = TempDir::new(label).expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// A short TAP device name unique to this process: `hlPPPPPT` (at most 15 bytes).
pub fn tap_name(tag: &str) -> String {
    format!("hl{}{tag}", std::process::id() % 100_000)
}
