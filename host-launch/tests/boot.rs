//! End to end: a busybox httpd appliance built with the e2e harness, run by `host-launch run`
//! as an unprivileged user inside a test network namespace with a TAP device, answering HTTP,
//! refusing a second launch, and stopping cleanly on SIGTERM (exit 0, TAP removed, data disk
//! clean under `e2fsck -fn`).
//!
//! Needs root (network namespace, TAP device); fails, rather than skips, without it.

use e2e::{RootFs, TempDir};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const GUEST: &str = "192.0.2.10";

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
            .expect("ip")
            .success();
        assert!(ok, "ip netns add {name} failed (this test needs root)");
        Command::new("ip")
            .args(["-n", name, "link", "set", "lo", "up"])
            .status()
            .expect("ip");
        Netns(name.to_string())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// An HTTP GET from inside the namespace (on a thread that enters it).
fn http_get(netns: &str, addr: &str) -> std::io::Result<String> {
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

fn tap_exists(netns: &str, tap: &str) -> bool {
    Command::new("ip")
        .args(["-n", netns, "link", "show", "dev", tap])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn vm_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// What a test appliance needs: its directory, namespace, TAP name, spec and data disk.
struct Setup {
    dir: TempDir,
    ns: Netns,
    tap: String,
    spec: std::path::PathBuf,
    data: std::path::PathBuf,
}

/// Builds the busybox httpd image, its manifest, a formatted data disk, a namespace and the
/// spec of appliance `name`.
fn setup(name: &str) -> Setup {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root (network namespace and TAP device)"
    );
    assert!(
        Path::new("/bin/busybox").is_file(),
        "/bin/busybox is missing: install the Debian package busybox-static (the test \
         appliance's service)"
    );
    let dir = TempDir::new(name).expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let image = dir.join("root.img");
    RootFs::new()
        .file("/bin/busybox", "/bin/busybox", 0o755)
        .bytes("/www/index.html", b"hello from the appliance\n", 0o644)
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
    // The image has no mke2fs: the operator formats the data disk; host-launch uses it as is.
    let data = dir.join("data.img");
    let ok = Command::new("mkfs.ext4")
        .args(["-q", "-F"])
        .arg(&data)
        .arg("16M")
        .status()
        .expect("mkfs.ext4")
        .success();
    assert!(ok);
    let ns = Netns::new(&format!("hl-{name}-{}", std::process::id()));
    let tap = format!("hlt{}", std::process::id() % 100_000);
    // Unprivileged UML needs to open /dev/net/tun (mode 0666 on Debian); else run as root.
    let tun_open = std::fs::metadata("/dev/net/tun")
        .map(|m| m.permissions().mode() & 0o006 == 0o006)
        .unwrap_or(false);
    let run_as = if tun_open { "nobody" } else { "root" };
    if run_as == "nobody" {
        std::os::unix::fs::chown(&data, Some(65534), Some(65534)).unwrap();
    }
    let spec = dir.join("web.json");
    std::fs::write(
        &spec,
        format!(
            r#"{{"name":"{name}","image":"root.img","memory_mib":64,"run_as":"{run_as}",
                "disks":[{{"file":"data.img"}}],
                "network":{{"tap":"{tap}","netns":"{}","host_address":"192.0.2.1/24",
                            "addresses":["{GUEST}/24"],
                            "routes":[{{"destination":"0.0.0.0/0","gateway":"192.0.2.1"}}]}}}}"#,
            ns.0
        ),
    )
    .unwrap();
    Setup {
        dir,
        ns,
        tap,
        spec,
        data,
    }
}

#[test]
fn busybox_httpd_appliance_boots_answers_and_stops_cleanly() {
    let Setup {
        dir,
        ns,
        tap,
        spec,
        data,
    } = setup("web");
    let state = dir.join("state");
    let exe = env!("CARGO_BIN_EXE_host-launch");
    let started = Instant::now();
    let mut child = Command::new(exe)
        .arg("run")
        .arg(&spec)
        .env("HOST_LAUNCH_STATE_DIR", &state)
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
    let ready = loop {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(l) => {
                let is_ready = l.contains("] ") && l.contains(" ready: ");
                lines.push(l);
                if is_ready {
                    break started.elapsed();
                }
            }
            Err(_) => {
                let _ = child.kill();
                let mut err = String::new();
                let _ = child.stderr.take().unwrap().read_to_string(&mut err);
                panic!("no ready event within 30 s:\n{}\n{err}", lines.join("\n"));
            }
        }
    };
    let body = http_get(&ns.0, &format!("{GUEST}:8080")).expect("HTTP from the guest");
    assert!(body.contains("hello from the appliance"), "{body}");

    // Status, and a second launch refused.
    let status = Command::new(exe)
        .args(["status", "web"])
        .env("HOST_LAUNCH_STATE_DIR", &state)
        .output()
        .unwrap();
    let status_text = String::from_utf8_lossy(&status.stdout).to_string();
    assert!(status_text.contains("web: running"), "{status_text}");
    assert!(status_text.contains("ready:    yes"), "{status_text}");
    let second = Command::new(exe)
        .arg("run")
        .arg(&spec)
        .env("HOST_LAUNCH_STATE_DIR", &state)
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(121));
    assert!(String::from_utf8_lossy(&second.stderr).contains("already running"));
    let st: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state.join("web/state.json")).unwrap()).unwrap();
    let uml_pid = st["uml_pid"].as_u64().unwrap() as u32;
    let rss = vm_rss_kib(uml_pid);
    eprintln!(
        "measured: ready {:.2} s after launch (guest: ready_after_ms {}), UML main process RSS {} KiB",
        ready.as_secs_f64(),
        st["ready_after_ms"],
        rss.map(|r| r.to_string()).unwrap_or_else(|| "?".into())
    );

    // SIGTERM: a clean shutdown through mconsole's ctrl-alt-del.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let code = child.wait().unwrap().code();
    while let Ok(l) = rx.recv_timeout(Duration::from_secs(2)) {
        lines.push(l);
    }
    let all = lines.join("\n");
    assert_eq!(code, Some(0), "{all}");
    assert!(
        all.contains("power off: processes_killed=0 reason=requested"),
        "{all}"
    );
    assert!(all.contains("disks unmounted"), "{all}");
    assert!(!tap_exists(&ns.0, &tap), "the TAP device was left behind");
    let st: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state.join("web/state.json")).unwrap()).unwrap();
    assert_eq!(st["phase"], "exited");
    assert_eq!(st["exit_code"], 0);
    let fsck = Command::new("e2fsck")
        .arg("-fn")
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        fsck.status.success(),
        "e2fsck: {}",
        String::from_utf8_lossy(&fsck.stdout)
    );
    let logs = Command::new(exe)
        .args(["logs", "web"])
        .env("HOST_LAUNCH_STATE_DIR", &state)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&logs.stdout).contains("ready: "));
}

#[test]
fn a_killed_launcher_leaves_nothing_that_blocks_the_next_launch() {
    let Setup {
        dir, ns, tap, spec, ..
    } = setup("kill");
    let state = dir.join("state");
    let exe = env!("CARGO_BIN_EXE_host-launch");
    let hl = |args: &[&str]| {
        let out = Command::new(exe)
            .args(args)
            .env("HOST_LAUNCH_STATE_DIR", &state)
            .output()
            .unwrap();
        (
            out.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let spec_s = spec.to_str().unwrap();
    let (code, out) = hl(&["start", spec_s, "--wait-ready", "30"]);
    assert_eq!(code, Some(0), "{out}");
    let st: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state.join("kill/state.json")).unwrap()).unwrap();
    let launcher = st["launcher_pid"].as_i64().unwrap() as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(launcher),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let (_, out) = hl(&["status", "kill"]);
    assert!(out.contains("dead (stale state)"), "{out}");
    assert!(
        tap_exists(&ns.0, &tap),
        "the dead launcher's TAP device is still there"
    );
    // The next launch cleans up (leftover UML processes, TAP device) and comes up.
    let (code, out) = hl(&["start", spec_s, "--wait-ready", "30"]);
    assert_eq!(code, Some(0), "{out}");
    let log = std::fs::read_to_string(state.join("kill/launcher.log")).unwrap();
    assert!(log.contains("previous launcher"), "{log}");
    let body = http_get(&ns.0, &format!("{GUEST}:8080")).expect("HTTP from the guest");
    assert!(body.contains("hello from the appliance"), "{body}");
    let (code, out) = hl(&["stop", "kill"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("clean power-off"), "{out}");
    assert!(!tap_exists(&ns.0, &tap));
    let (_, out) = hl(&["list"]);
    assert!(out.contains("kill") && out.contains("exited"), "{out}");
}
