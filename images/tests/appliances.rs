//! End to end: each appliance image, built from its recipe, run by `host-launch run` inside a
//! test network namespace with a TAP device, answering real clients from the namespace:
//! `dig` over UDP and TCP (the configured record, NXDOMAIN for an unknown name), `curl` (a
//! page from the web appliance's data disk), `logger` over UDP and TCP (the messages land on
//! the syslog appliance's data disk). Each then stops cleanly on SIGTERM.
//!
//! Needs root (network namespace, TAP device) and dig, curl and logger; fails, rather than
//! skips, without them.

mod common;

use e2e::TempDir;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A network namespace removed on drop.
struct Netns(String);

impl Netns {
    fn new(name: &str) -> Netns {
        let _ = Command::new("ip")
            .args(["netns", "del", name])
            .stderr(Stdio::null())
            .status();
        let ok = Command::new("ip")
            .args(["netns", "add", name])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "ip netns add {name} failed (this test needs root)");
        Command::new("ip")
            .args(["-n", name, "link", "set", "lo", "up"])
            .status()
            .expect("ip");
        Netns(name.to_string())
    }

    /// Runs a command inside the namespace and returns its standard output.
    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.0])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{args:?}: {e}"));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{args:?} failed ({}): {stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// The host-launch executable, built once with cargo for the host.
fn host_launch() -> PathBuf {
    static EXE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    EXE.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let ok = Command::new(cargo)
            .current_dir(e2e::workspace_root())
            .env("CARGO_TARGET_DIR", e2e::target_dir())
            .args(["build", "-p", "host-launch", "--bin", "host-launch"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "building host-launch failed");
        e2e::target_dir().join("debug/host-launch")
    })
    .clone()
}

/// A running appliance: the launcher, its output so far, its namespace.
struct Running {
    child: Child,
    lines: Vec<String>,
    rx: mpsc::Receiver<String>,
    ns: Netns,
    dir: Option<TempDir>,
}

impl Running {
    /// SIGTERM to the launcher; returns its exit code and everything it printed.
    fn stop(mut self) -> (Option<i32>, String, TempDir) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let code = self.child.wait().unwrap().code();
        while let Ok(l) = self.rx.recv_timeout(Duration::from_secs(2)) {
            self.lines.push(l);
        }
        let dir = self.dir.take().expect("stopped once");
        (code, self.lines.join("\n"), dir)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Builds the appliance's image from its recipe, writes a spec (the example's files, a data
/// disk file per manifest disk made by `data_disk`), starts `host-launch run` in a fresh
/// namespace and waits until the service is ready.
fn start(
    recipe: &str,
    guest: &str,
    files: serde_json::Value,
    data_disk: impl Fn(&Path),
) -> Running {
    assert!(
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() } == 0,
        "this test needs root (network namespace and TAP device)"
    );
    let pid = std::process::id();
    let dir = TempDir::new(&format!("appliance-{recipe}")).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let built = common::build(recipe, dir.path());
    // Unprivileged UML needs to open /dev/net/tun (0666 on Debian); else run it as root.
    let tun_open = std::fs::metadata("/dev/net/tun")
        .map(|m| m.permissions().mode() & 0o006 == 0o006)
        .unwrap_or(false);
    let run_as = if tun_open { "nobody" } else { "root" };
    let mut disks = Vec::new();
    for i in 0..common::recipe(recipe).manifest.disks.len() {
        let file = dir.join(format!("data{i}.img"));
        data_disk(&file);
        if run_as == "nobody" {
            std::os::unix::fs::chown(&file, Some(65534), Some(65534)).unwrap();
        }
        disks.push(serde_json::json!({ "file": file }));
    }
    let ns = Netns::new(&format!("img-{recipe}-{pid}"));
    let name = format!("img-{recipe}");
    let tap = format!("it{}{}", &recipe[..1], pid % 100_000);
    let spec = serde_json::json!({
        "name": name,
        "image": built.image,
        "memory_mib": 64,
        "run_as": run_as,
        "disks": disks,
        "files": files,
        "network": {
            "tap": tap, "netns": ns.0, "host_address": "192.0.2.1/24",
            "addresses": [format!("{guest}/24")],
            "routes": [{"destination": "0.0.0.0/0", "gateway": "192.0.2.1"}]
        }
    });
    let spec_path = dir.join("spec.json");
    std::fs::write(&spec_path, spec.to_string()).unwrap();
    let mut child = Command::new(host_launch())
        .arg("run")
        .arg(&spec_path)
        .env("HOST_LAUNCH_STATE_DIR", dir.join("state"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("host-launch");
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            eprintln!("{line}");
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(40)) {
            Ok(l) => {
                let ready = l.contains("] ") && l.contains(" ready: ");
                lines.push(l);
                if ready {
                    break;
                }
            }
            Err(_) => {
                let _ = child.kill();
                let mut err = String::new();
                let _ = child.stderr.take().unwrap().read_to_string(&mut err);
                panic!(
                    "{recipe}: not ready within 40 s:\n{}\n{err}",
                    lines.join("\n")
                );
            }
        }
    }
    Running {
        child,
        lines,
        rx,
        ns,
        dir: Some(dir),
    }
}

#[track_caller]
fn assert_clean_stop(code: Option<i32>, all: &str) {
    assert_eq!(code, Some(0), "{all}");
    assert!(all.contains("reason=requested"), "{all}");
}

fn blank_disk(mib: u64) -> impl Fn(&Path) {
    move |p: &Path| {
        let f = std::fs::File::create(p).unwrap();
        f.set_len(mib << 20).unwrap();
    }
}

#[test]
fn dns_appliance_answers_over_udp_and_tcp() {
    let conf = std::fs::read(e2e::workspace_root().join("examples/dns.json")).unwrap();
    let example: serde_json::Value = serde_json::from_slice(&conf).unwrap();
    let up = start("dns", "192.0.2.53", example["files"].clone(), |_: &Path| {});
    let udp = up.ns.run(&[
        "dig",
        "@192.0.2.53",
        "+short",
        "+tries=2",
        "www.example.net",
    ]);
    assert_eq!(udp.trim(), "192.0.2.80");
    let tcp = up
        .ns
        .run(&["dig", "@192.0.2.53", "+tcp", "+short", "www.example.net"]);
    assert_eq!(tcp.trim(), "192.0.2.80");
    let mx = up
        .ns
        .run(&["dig", "@192.0.2.53", "+short", "MX", "example.net"]);
    assert_eq!(mx.trim(), "10 mail.example.net.");
    for transport in ["+notcp", "+tcp"] {
        let unknown = up
            .ns
            .run(&["dig", "@192.0.2.53", transport, "nope.example.net"]);
        assert!(unknown.contains("status: NXDOMAIN"), "{unknown}");
    }
    let (code, all, dir) = up.stop();
    assert_clean_stop(code, &all);
    // dnsmasq logs to stderr (--log-facility=-), which guest-init copies to the console.
    let console = std::fs::read_to_string(dir.join("state/img-dns/console.log")).unwrap();
    assert!(console.contains("]: started, version 2."), "{console}");
    assert!(!console.contains("unknown user"), "{console}");
}

#[test]
fn web_appliance_serves_its_data_disk() {
    let up = start("web", "192.0.2.80", serde_json::json!([]), |disk: &Path| {
        // The operator's content: a data disk made on the host with the site under www/.
        let content = disk.with_extension("content");
        std::fs::create_dir_all(content.join("www")).unwrap();
        std::fs::write(
            content.join("www/index.html"),
            "<h1>hello from the web appliance</h1>\n",
        )
        .unwrap();
        let ok = Command::new("mkfs.ext4")
            .args(["-q", "-F", "-E", "root_owner=0:0", "-d"])
            .arg(&content)
            .arg(disk)
            .arg("16M")
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "mkfs.ext4 -d");
    });
    let page = up
        .ns
        .run(&["curl", "-sS", "--max-time", "5", "http://192.0.2.80/"]);
    assert_eq!(page, "<h1>hello from the web appliance</h1>\n");
    let missing = up.ns.run(&[
        "curl",
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--max-time",
        "5",
        "http://192.0.2.80/nope.html",
    ]);
    assert_eq!(missing, "404");
    let (code, all, _dir) = up.stop();
    assert_clean_stop(code, &all);
}

#[test]
fn syslog_appliance_writes_what_it_receives_to_its_data_disk() {
    let up = start(
        "syslog",
        "192.0.2.14",
        serde_json::json!([]),
        blank_disk(32),
    );
    for (flag, text) in [("--udp", "hello over udp"), ("--tcp", "hello over tcp")] {
        up.ns.run(&[
            "logger",
            flag,
            "--server",
            "192.0.2.14",
            "--port",
            "514",
            "--rfc5424",
            "-t",
            "e2e",
            text,
        ]);
    }
    // rsyslog writes as the messages arrive; give it a moment before stopping.
    std::thread::sleep(Duration::from_millis(500));
    let (code, all, dir) = up.stop();
    assert_clean_stop(code, &all);
    let disk = dir.join("data0.img");
    let messages = common::debugfs(&disk, "cat /log/messages");
    for text in ["hello over udp", "hello over tcp"] {
        assert!(
            messages.contains(text),
            "{text:?} not in /log/messages:\n{messages}\n{all}"
        );
    }
    let hosts = common::ls(&disk, "/log/hosts");
    assert!(!hosts.is_empty(), "no per-host log: {hosts:?}");
}
