//! Density and scale (root): N DNS appliances (the image of `recipes/dns.json`, 32 MiB each)
//! at once in a network namespace the benchmark creates (on one bridge, or each on its own
//! routed TAP device: `--layout`), for each N and each
//! kernel (the project's and Debian's side by side). For each fleet it prints the time from
//! the first `host-launch start` until every `state.json` says ready, the host memory per
//! appliance (the drop of `MemAvailable` once all are ready and settled, and the PSS of each
//! appliance's launcher and VM processes), the fleet's idle CPU
//! over 10 s windows until two agree within a tenth (at most 90 s; utime + stime of every
//! launcher and UML process of the fleet, as a share of the
//! machine's cores), how many answer `dig`, the time to stop all, and how many stopped
//! cleanly (exit status 0). It also checks that `host-launch status` agrees with each VM's
//! events (a `ready` event means `ready: yes`). Exits 1 when any appliance failed any of it.
//!
//! ```sh
//! cargo bench -p build-image --bench density [-- 10 100 500 --kernels project,debian \
//!     --memory-mib 32 --parallel cpu|N --host-launch PATH --layout auto]
//! ```
//!
//! Starts: `--parallel N` keeps N `start`s under way (default 8); `--parallel cpu` starts
//! the next appliance whenever the machine has room (the runnable tasks of /proc/stat's
//! `procs_running` at most two per core; never fewer than one start under way). At N=100 on
//! this 2-core machine, shared, 8 at a time was ready sooner (8.6–8.9 s against 10.5–10.9 s):
//! the booting VMs already keep both cores busy (all ready about 1 s after the last start),
//! and the gate also waits for other people's tasks. `--host-launch PATH` times another build
//! of host-launch (a change's before).
//!
//! `--layout bridge`: the appliances are 198.18.x.y/16 (the benchmarking range) on one bridge,
//! whose host side is 198.18.255.1; a Linux bridge takes at most 1,024 ports, so N is at most
//! 1,000 there. `--layout routed`: appliance i has the /30 block 198.18.0.0 + 4i to itself, the
//! host side of its TAP device the block's first address and the guest the second, and no
//! bridge: the layout host-launch/README.md ("More than 1,000 appliances") gives for large
//! fleets. `auto` (the default) is the bridge up to 1,000 and routed above. Nothing leaves the
//! namespace.

#[path = "../tests/lab/mod.rs"]
mod lab;

use lab::{bench_kernels, release_host_launch, Lab};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The longest a fleet may take to become ready before the rest count as failed.
const READY_LIMIT: Duration = Duration::from_secs(300);
/// How long the idle CPU is measured.
const IDLE_WINDOW: Duration = Duration::from_secs(10);
/// The longest the idle windows go on while the fleet's CPU is still falling.
const IDLE_SETTLE_MAX: Duration = Duration::from_secs(90);

/// The fleet's CPU over one [`IDLE_WINDOW`], as a share of the machine.
fn idle_window_percent(dir: &Path) -> f64 {
    let c0 = fleet_ticks(dir);
    let w = Instant::now();
    std::thread::sleep(IDLE_WINDOW);
    let ticks = fleet_ticks(dir).saturating_sub(c0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    ticks as f64 / hz / w.elapsed().as_secs_f64() / cores() as f64 * 100.0
}

struct Args {
    counts: Vec<usize>,
    kernels: String,
    memory_mib: u32,
    /// Starts under way at once; `None`: as many as the CPU has room for.
    parallel: Option<usize>,
    /// Another host-launch to time instead of this tree's release build.
    host_launch: Option<PathBuf>,
    /// `bridge`, `routed` or `auto` ([`layout`]).
    layout: String,
}

/// How a fleet of `n` is wired: on the lab's bridge, or each appliance on a routed TAP device.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Layout {
    Bridge,
    Routed,
}

/// The most ports the benchmark puts on one bridge (the kernel's limit is 1,024).
const BRIDGE_MAX: usize = 1000;

fn layout(wanted: &str, n: usize) -> Layout {
    match wanted {
        "bridge" => {
            assert!(
                n <= BRIDGE_MAX,
                "--layout bridge: N={n} is over the {BRIDGE_MAX} ports the benchmark puts on one \
                 bridge (a Linux bridge takes 1,024): use --layout routed or auto"
            );
            Layout::Bridge
        }
        "routed" => Layout::Routed,
        "auto" if n <= BRIDGE_MAX => Layout::Bridge,
        "auto" => Layout::Routed,
        other => panic!("--layout {other}: bridge, routed or auto"),
    }
}

fn args() -> Args {
    let mut a = Args {
        counts: Vec::new(),
        kernels: "project,debian".into(),
        memory_mib: 32,
        parallel: Some(8),
        host_launch: None,
        layout: "auto".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        let mut value = |name: &str| it.next().unwrap_or_else(|| panic!("{name} needs a value"));
        match x.as_str() {
            "--kernels" => a.kernels = value("--kernels"),
            "--memory-mib" => a.memory_mib = value("--memory-mib").parse().expect("--memory-mib N"),
            "--parallel" => {
                a.parallel = match value("--parallel").as_str() {
                    "cpu" => None,
                    n => Some(n.parse().expect("--parallel cpu|N")),
                }
            }
            "--host-launch" => a.host_launch = Some(value("--host-launch").into()),
            "--layout" => a.layout = value("--layout"),
            n if n.parse::<usize>().is_ok() => a.counts.push(n.parse().unwrap_or(0)),
            _ => {} // cargo passes --bench
        }
    }
    if a.counts.is_empty() {
        a.counts = vec![10, 100];
    }
    assert!(
        a.counts.iter().all(|&n| (1..=2000).contains(&n)),
        "N is 1 to 2000"
    );
    a
}

/// One fleet's appliance.
struct Member {
    name: String,
    spec: PathBuf,
    address: String,
}

/// The address of appliance `i` (0-based) in 198.18.0.0/16, on the bridge.
fn address(i: usize) -> String {
    format!("198.18.{}.{}", i / 200, i % 200 + 10)
}

/// Appliance `i`'s routed TAP device: (the host side, the guest's address), the first two
/// addresses of the /30 block 198.18.0.0 + 4i (in 198.18.0.0/15: up to 32,768 appliances).
fn routed_pair(i: usize) -> (String, String) {
    let base = u32::from(std::net::Ipv4Addr::new(198, 18, 0, 0)) + 4 * i as u32;
    let at = |k: u32| std::net::Ipv4Addr::from(base + k).to_string();
    (at(1), at(2))
}

/// The spec's `network` for appliance `i` in `layout`.
fn network(lab: &Lab, layout: Layout, i: usize, tap: &str) -> (Value, String) {
    match layout {
        Layout::Bridge => {
            let address = address(i);
            let bridge = lab.bridge.clone().expect("the lab has a bridge");
            let net = json!({"tap": tap, "netns": lab.ns.name(), "bridge": bridge,
                             "addresses": [format!("{address}/16")]});
            (net, address)
        }
        Layout::Routed => {
            let (host, guest) = routed_pair(i);
            let net = json!({"tap": tap, "netns": lab.ns.name(),
                             "host_address": format!("{host}/30"),
                             "addresses": [format!("{guest}/30")]});
            (net, guest)
        }
    }
}

/// Runs `f` on every item with `parallel` threads; the results in the items' order.
fn parallel<T: Sync, R: Send>(items: &[T], parallel: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    paced(items, parallel, |_| true, f)
}

/// The runnable tasks right now (`procs_running` of /proc/stat), this one's included.
fn procs_running() -> u64 {
    std::fs::read_to_string("/proc/stat")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("procs_running "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Runs `f` on every item, starting the next one whenever the machine has room (at most two
/// runnable tasks per core; at most `cores() * 8` under way; one always may run); the
/// results in the items' order.
fn cpu_paced<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    // The waiting thread is one of the runnable tasks.
    let room = |running: usize| running == 0 || procs_running() <= 2 * cores() + 1;
    paced(items, cores() as usize * 8, room, f)
}

/// Runs `f` on every item with `workers` threads, each taking the next item once
/// `room(items under way)` says so; the results in the items' order.
fn paced<T: Sync, R: Send>(
    items: &[T],
    workers: usize,
    room: impl Fn(usize) -> bool + Sync,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let running = AtomicUsize::new(0);
    let out: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..workers.max(1) {
            s.spawn(|| loop {
                while !room(running.load(Ordering::SeqCst)) {
                    std::thread::sleep(Duration::from_millis(2));
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                running.fetch_add(1, Ordering::SeqCst);
                let r = f(item);
                running.fetch_sub(1, Ordering::SeqCst);
                out.lock().unwrap()[i] = Some(r);
            });
        }
    });
    out.into_inner()
        .unwrap()
        .into_iter()
        .map(|r| r.expect("every item ran"))
        .collect()
}

fn host_launch(exe: &Path, state: &Path, args: &[&str]) -> Output {
    Command::new(exe)
        .args(args)
        .env("HOST_LAUNCH_STATE_DIR", state)
        .stdin(Stdio::null())
        .output()
        .expect("running host-launch")
}

fn mem_available_kib() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// utime + stime (clock ticks) of every process whose command line mentions `dir` (the
/// launchers name their spec in it, and every UML process its root image).
fn fleet_ticks(dir: &Path) -> u64 {
    let needle = dir.as_os_str().as_encoded_bytes();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut ticks = 0;
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        if !cmdline.windows(needle.len()).any(|w| w == needle) {
            continue;
        }
        // Threads (UML's I/O helpers are clones with CLONE_VM, each its own /proc entry).
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let f: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, r)| r.split_whitespace().collect())
            .unwrap_or_default();
        // After the command: state is field 3, utime 14 and stime 15 (1-based).
        let field = |n: usize| {
            f.get(n - 3)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        ticks += field(14) + field(15);
    }
    ticks
}

/// PSS of one appliance's host processes: its launcher and every process of its VM.
fn pss_kib(lab: &Lab, name: &str) -> u64 {
    let st = lab.state(name);
    let mut pids = Vec::new();
    if let Some(uml) = st["uml_pid"].as_u64() {
        pids = e2e::host::vm_processes(uml as u32);
    }
    if let Some(l) = st["launcher_pid"].as_u64() {
        pids.push(l as u32);
    }
    e2e::host::memory_of(&pids).pss_kib
}

fn cores() -> u64 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u64)
}

/// What one fleet did.
#[derive(Default)]
struct Figures {
    started: usize,
    /// When the last `start` returned (UML running).
    all_started: Duration,
    all_ready: Option<Duration>,
    ready: usize,
    memory_per_kib: i64,
    pss_per_kib: u64,
    idle_cpu_percent: f64,
    /// Every idle window's figure, in order (the last is `idle_cpu_percent`).
    idle_windows: Vec<f64>,
    answered: usize,
    stop_time: Duration,
    clean: usize,
    problems: Vec<String>,
}

fn events_have_ready(lab: &Lab, name: &str) -> bool {
    std::fs::read_to_string(lab.state_dir().join(name).join("events.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .any(|e| e["event"] == "ready")
}

/// One letter for a kernel's label in names and TAPs: `p`roject, `d`ebian, or the first
/// letter of another kernel's file name (`--kernels project,/tmp/linux-main`: `l`).
fn tag(label: &str) -> char {
    let file = label.rsplit('/').next().unwrap_or(label);
    file.chars()
        .find(char::is_ascii_alphanumeric)
        .unwrap_or('k')
}

fn fleet(lab: &Lab, exe: &Path, kernel: &Path, label: &str, n: usize, a: &Args) -> Figures {
    let mut fig = Figures::default();
    let layout = layout(&a.layout, n);
    let members: Vec<Member> = (0..n)
        .map(|i| {
            let name = format!("d{}{}{i}", std::process::id() % 1000, tag(label));
            let tap = format!("t{}{}{i}", std::process::id() % 1000, tag(label));
            let (network, address) = network(lab, layout, i, &tap);
            let spec = lab.write_spec(&json!({
                "name": name,
                "image": lab.join("dns.img"),
                "kernel": kernel,
                "memory_mib": a.memory_mib,
                "files": [{"path": "/run/dnsmasq.conf", "mode": "0644",
                           "content": "local=/example.net/\nhost-record=www.example.net,192.0.2.80\n"}],
                "network": network,
            }));
            Member { name, spec, address }
        })
        .collect();
    let state = lab.state_dir();
    let _guard = StopOnPanic {
        exe,
        state: state.clone(),
        names: members.iter().map(|m| m.name.clone()).collect(),
    };
    let before = mem_available_kib();
    let t = Instant::now();
    let start = |m: &Member| host_launch(exe, &state, &["start", m.spec.to_str().unwrap()]);
    let starts = match a.parallel {
        Some(p) => parallel(&members, p, start),
        None => cpu_paced(&members, start),
    };
    fig.all_started = t.elapsed();
    for (m, o) in members.iter().zip(&starts) {
        if o.status.success() {
            fig.started += 1;
        } else {
            fig.problems.push(format!(
                "{}: start failed: {}",
                m.name,
                String::from_utf8_lossy(&o.stderr).trim()
            ));
        }
    }
    let mut pending: Vec<&Member> = members.iter().collect();
    while !pending.is_empty() && t.elapsed() < READY_LIMIT {
        pending.retain(|m| lab.state(&m.name)["ready"] != true);
        if !pending.is_empty() {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    if pending.is_empty() {
        fig.all_ready = Some(t.elapsed());
    }
    fig.ready = n - pending.len();
    for m in &pending {
        fig.problems.push(format!(
            "{}: not ready after {} s (phase {})",
            m.name,
            READY_LIMIT.as_secs(),
            lab.state(&m.name)["phase"]
        ));
    }
    // Settle, then what the fleet holds and burns while idle.
    std::thread::sleep(Duration::from_secs(5));
    let after = mem_available_kib();
    fig.memory_per_kib = (before as i64 - after as i64) / n as i64;
    fig.pss_per_kib = members.iter().map(|m| pss_kib(lab, &m.name)).sum::<u64>() / n as u64;
    // A large fleet is not idle 5 s after its last boot (at 500 the load average is over
    // 100 then): windows follow one another until one is within a tenth of the one before,
    // or for at most IDLE_SETTLE_MAX; the last window is the figure.
    let settle = Instant::now();
    let mut previous: Option<f64> = None;
    loop {
        let now = idle_window_percent(lab.dir.path());
        fig.idle_windows.push(now);
        let steady = previous.is_some_and(|p| (now - p).abs() <= p.max(0.1) / 10.0);
        if steady || settle.elapsed() >= IDLE_SETTLE_MAX {
            break;
        }
        previous = Some(now);
    }
    fig.idle_cpu_percent = fig.idle_windows.last().copied().unwrap_or(0.0);
    // `status` must agree with the events: a VM that sent `ready` reads ready.
    let status = host_launch(exe, &state, &["status", "--json"]);
    let status: Vec<Value> = serde_json::from_slice(&status.stdout).unwrap_or_default();
    for m in &members {
        let st = status.iter().find(|s| s["name"] == m.name.as_str());
        let ready = st.is_some_and(|s| s["state"]["ready"] == true);
        if events_have_ready(lab, &m.name) && !ready {
            fig.problems.push(format!(
                "{}: its events hold `ready` but `status` says not ready (phase {})",
                m.name,
                st.map(|s| s["state"]["phase"].clone()).unwrap_or_default()
            ));
        }
    }
    let ns = &lab.ns;
    let answers = parallel(&members, 4, |m| dig(ns, &m.address));
    for (m, ok) in members.iter().zip(&answers) {
        if *ok {
            fig.answered += 1;
        } else {
            // Slow or dead? Ask again once the others are done, and say what the guest said.
            let later = dig(ns, &m.address);
            fig.problems.push(format!(
                "{} ({}): no DNS answer in 3 s; {}; its console ends: {}",
                m.name,
                m.address,
                if later {
                    "answered when asked again"
                } else {
                    "no answer again"
                },
                console_tail(lab, &m.name)
            ));
        }
    }
    let t = Instant::now();
    let stops = parallel(&members, a.parallel.unwrap_or(8) * 2, |m| {
        host_launch(exe, &state, &["stop", &m.name, "--timeout", "120"])
    });
    fig.stop_time = t.elapsed();
    for (m, o) in members.iter().zip(&stops) {
        let st = lab.state(&m.name);
        if o.status.success() && st["exit_code"] == 0 {
            fig.clean += 1;
        } else {
            fig.problems.push(format!(
                "{}: not a clean stop: exit code {}, outcome {}; {}",
                m.name,
                st["exit_code"],
                st["outcome"],
                String::from_utf8_lossy(&o.stderr).trim()
            ));
        }
    }
    fig
}

/// Stops a fleet that a panic interrupted (the lab's namespace goes with the lab).
struct StopOnPanic<'a> {
    exe: &'a Path,
    state: PathBuf,
    names: Vec<String>,
}

impl Drop for StopOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            parallel(&self.names, 16, |n| {
                host_launch(self.exe, &self.state, &["stop", n, "--timeout", "30"])
            });
        }
    }
}

/// The last lines of an appliance's console log, on one line (for a failure's report).
fn console_tail(lab: &Lab, name: &str) -> String {
    let text = lab.state_file_tail(name, "console.log", 2000);
    let lines: Vec<&str> = text.lines().rev().take(4).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
}

/// Whether the appliance answers `www.example.net` (3 tries of 1 s).
fn dig(ns: &e2e::NetNs, address: &str) -> bool {
    let out = ns
        .command("dig")
        .expect("dig in the namespace")
        .args([
            &format!("@{address}"),
            "+short",
            "+tries=3",
            "+time=1",
            "A",
            "www.example.net",
        ])
        .output()
        .expect("dig");
    String::from_utf8_lossy(&out.stdout).trim() == "192.0.2.80"
}

fn main() {
    // The lab (its namespace, its appliances) is dropped before the exit status is set.
    if fleets_failed() {
        std::process::exit(1);
    }
}

/// Runs every fleet; whether any appliance failed any of it.
fn fleets_failed() -> bool {
    let a = args();
    let kernels = bench_kernels(&a.kernels);
    let lab = Lab::new(
        "density",
        Some(&format!("brd{}", std::process::id() % 100_000)),
    );
    lab.ns
        .ip(&[
            "addr",
            "add",
            "198.18.255.1/16",
            "dev",
            lab.bridge.as_deref().unwrap(),
        ])
        .expect("the bridge's benchmark address");
    let image = lab.image("dns");
    assert_eq!(image, lab.join("dns.img"));
    let exe = a.host_launch.clone().unwrap_or_else(release_host_launch);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "density: DNS appliances at {} MiB (--layout {}), {} cores, starts {} ({}), load \
         average before: {}",
        a.memory_mib,
        a.layout,
        cores(),
        a.parallel
            .map(|p| format!("{p} at a time"))
            .unwrap_or_else(|| "paced by the CPU".into()),
        exe.display(),
        load.trim()
    );
    let mut failed = false;
    for &n in &a.counts {
        for (label, kernel) in &kernels {
            let f = fleet(&lab, &exe, kernel, label, n, &a);
            let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
            println!(
                "kernel {label}, N={n} ({:?}): started {}/{n} (the last after {:.1} s), all ready after {}, ready {}/{n}; host \
                 memory per appliance {:.1} MiB (MemAvailable drop), PSS {:.1} MiB (VM and launcher); idle fleet CPU {:.1}% of \
                 the machine over {} s (windows: {}); answered dig {}/{n}; stop all {:.1} s, clean {}/{n} \
                 (load average after: {})",
                layout(&a.layout, n),
                f.started,
                f.all_started.as_secs_f64(),
                f.all_ready
                    .map(|d| format!("{:.1} s", d.as_secs_f64()))
                    .unwrap_or_else(|| "- (not all)".into()),
                f.ready,
                f.memory_per_kib as f64 / 1024.0,
                f.pss_per_kib as f64 / 1024.0,
                f.idle_cpu_percent,
                IDLE_WINDOW.as_secs(),
                f.idle_windows
                    .iter()
                    .map(|p| format!("{p:.1}%"))
                    .collect::<Vec<_>>()
                    .join(", "),
                f.answered,
                f.stop_time.as_secs_f64(),
                f.clean,
                load.trim()
            );
            for p in f.problems.iter().take(20) {
                println!("  FAILED {p}");
            }
            if f.problems.len() > 20 {
                println!("  ... and {} more", f.problems.len() - 20);
            }
            failed |= !f.problems.is_empty();
        }
    }
    failed
}
