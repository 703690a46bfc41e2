//! The conformance kit's probe. The kit delivers it as a contract file (`/run/conformance/probe`,
//! mode 0755) and runs it as the service, so it sees only what the specification lets a host
//! give. It reports on stdout, one `=probe= KEY VALUE` line each, which the image's init must
//! copy to the console; everything it does is set by its environment (`PROBE_*`, see below).

#![deny(missing_debug_implementations)]
#![deny(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_lossless,
    clippy::exit,
    clippy::tests_outside_test_module
)]

use std::io::Write;
use std::net::TcpListener;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

/// The last stop-like signal received (0: none).
static SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    SIGNAL.store(sig, Ordering::SeqCst);
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "=probe= {line}");
    let _ = out.flush();
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn env_u64(name: &str) -> u64 {
    env(name).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// What the contract set up, as seen from inside: credentials, hostname, resolver, sysctls,
/// a contract file, the environment.
fn report() {
    report_status();
    report_settings();
    report_process();
    report_mounts();
}

/// A file's lines, trimmed, joined with ` | ` (or the error).
fn read(p: &str) -> String {
    match std::fs::read_to_string(p) {
        Ok(t) => t.lines().map(str::trim).collect::<Vec<_>>().join(" | "),
        Err(e) => format!("error {e}"),
    }
}

/// Credentials, capabilities and no_new_privs from /proc/self/status.
fn report_status() {
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        for l in status.lines() {
            let keep = [
                "Uid:",
                "Gid:",
                "Groups:",
                "CapInh:",
                "CapPrm:",
                "CapEff:",
                "CapBnd:",
                "CapAmb:",
                "NoNewPrivs:",
            ];
            if keep.iter().any(|k| l.starts_with(k)) {
                say(&format!(
                    "status {}",
                    l.split_whitespace().collect::<Vec<_>>().join(" ")
                ));
            }
        }
    }
}

/// Hostname, resolver, hosts, the asked sysctls, the asked contract file.
fn report_settings() {
    say(&format!("hostname {}", read("/proc/sys/kernel/hostname")));
    say(&format!("resolv {}", read("/etc/resolv.conf")));
    say(&format!("hosts {}", read("/etc/hosts")));
    for name in env("PROBE_SYSCTLS")
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
    {
        let path = format!("/proc/sys/{}", name.replace('.', "/"));
        say(&format!("sysctl {name}={}", read(&path)));
    }
    if let Some(path) = env("PROBE_FILE") {
        use std::os::unix::fs::MetadataExt;
        match std::fs::metadata(&path) {
            Ok(m) => say(&format!(
                "file {path} mode={:o} uid={} gid={} content={}",
                m.mode() & 0o7777,
                m.uid(),
                m.gid(),
                read(&path)
            )),
            Err(e) => say(&format!("file {path} error {e}")),
        }
    }
}

/// Environment, limits, oom_score_adj, cwd, the interface, both streams, argv, extra.
fn report_process() {
    let mut keys: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
    keys.sort();
    say(&format!("env {}", keys.join(",")));
    // "Max open files  SOFT  HARD  files": the contract's RLIMIT_NOFILE (version 2).
    if let Ok(limits) = std::fs::read_to_string("/proc/self/limits") {
        if let Some(l) = limits.lines().find(|l| l.starts_with("Max open files")) {
            let f: Vec<&str> = l.split_whitespace().collect();
            say(&format!(
                "limits nofile {}",
                f.get(3..5).unwrap_or_default().join(" ")
            ));
        }
    }
    // The contract's oom_score_adj (version 3).
    if let Ok(adj) = std::fs::read_to_string("/proc/self/oom_score_adj") {
        say(&format!("oom_score_adj {}", adj.trim()));
    }
    say(&format!(
        "cwd {}",
        std::env::current_dir()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    ));
    if let Some(iface) = env("PROBE_IFACE") {
        let sys = |f: &str| read(&format!("/sys/class/net/{iface}/{f}"));
        say(&format!(
            "iface {iface} mtu={} address={}",
            sys("mtu"),
            sys("address")
        ));
    }
    // One line on stderr: both streams go to the log.
    eprintln!("=probe= stderr ok");
    let argv: Vec<String> = std::env::args().collect();
    say(&format!("argv {}", argv.join(" ")));
    say(&format!("extra {}", read("/run/contract/extra.json")));
}

/// The asked mount points as mounted (type and options).
fn report_mounts() {
    let wanted: Vec<String> = env("PROBE_MOUNTS")
        .unwrap_or_default()
        .split(',')
        .map(str::to_string)
        .collect();
    if let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") {
        for l in mounts.lines() {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() >= 4 && wanted.iter().any(|w| w == f[1]) {
                say(&format!("mount {} {} {}", f[1], f[2], f[3]));
            }
        }
    }
}

/// Counts this start in /tmp (which outlives the service's runs) and returns its number.
fn count_start() -> u64 {
    let path = "/tmp/conformance-probe-starts";
    let n = std::fs::read_to_string(path)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0)
        + 1;
    let _ = std::fs::write(path, n.to_string());
    n
}

fn install_handlers() {
    for sig in [
        libc::SIGTERM,
        libc::SIGINT,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
    ] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            libc::signal(
                sig,
                on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
            );
        }
    }
}

/// Writes a marker file on the data disk and syncs it, so the kit can find it afterwards.
fn write_marker() {
    if let Some(path) = env("PROBE_WRITE") {
        let r = std::fs::write(&path, b"written by the probe\n")
            .and_then(|_| std::fs::File::open(&path)?.sync_all());
        match r {
            Ok(()) => say(&format!("wrote {path}")),
            Err(e) => say(&format!("write {path} error {e}")),
        }
    }
}

/// Listens (after a delay), tells a notify fd, and waits for a stop signal.
fn serve() -> i32 {
    std::thread::sleep(Duration::from_millis(env_u64("PROBE_LISTEN_DELAY_MS")));
    let _listener = match env("PROBE_PORT") {
        Some(port) => match TcpListener::bind(("0.0.0.0", port.parse().unwrap_or(7000))) {
            Ok(l) => {
                say(&format!("listening {port}"));
                Some(l)
            }
            Err(e) => {
                say(&format!("listen {port} error {e}"));
                None
            }
        },
        None => None,
    };
    if let Some(port) = env("PROBE_PORT") {
        let ok = std::net::TcpStream::connect(("127.0.0.1", port.parse().unwrap_or(7000))).is_ok();
        say(&format!("loopback {}", if ok { "ok" } else { "error" }));
    }
    if let Some(fd) = env("PROBE_NOTIFY_FD").and_then(|f| f.parse::<i32>().ok()) {
        // SAFETY: a write of one byte from a static buffer to a descriptor number.
        let n = unsafe { libc::write(fd, b"\n".as_ptr().cast(), 1) };
        say(&format!("notified fd {fd}: {n}"));
    }
    let ignore = env("PROBE_IGNORE_STOP").is_some();
    loop {
        std::thread::sleep(Duration::from_millis(20));
        let sig = SIGNAL.swap(0, Ordering::SeqCst);
        if sig != 0 {
            if ignore {
                say(&format!("signal {sig} ignored"));
            } else {
                say(&format!("signal {sig} stopping"));
                return 0;
            }
        }
    }
}

fn main() {
    install_handlers();
    let start = count_start();
    say(&format!("start {start} pid {}", std::process::id()));
    if start == 1 {
        report();
        write_marker();
    }
    // The first PROBE_FAIL_TIMES runs exit with PROBE_EXIT_CODE (restart policy checks).
    if start <= env_u64("PROBE_FAIL_TIMES") {
        // Exit statuses beyond i32 saturate; the kit asks for small ones.
        let code = i32::try_from(env_u64("PROBE_EXIT_CODE")).unwrap_or(i32::MAX);
        say(&format!("exit {code}"));
        std::process::exit(code);
    }
    if env("PROBE_EXIT_AT_ONCE").is_some() {
        say("exit 0");
        std::process::exit(0);
    }
    std::process::exit(serve());
}
