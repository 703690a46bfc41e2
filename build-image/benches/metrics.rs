//! What looking at a fleet costs (root): N DNS appliances (the image of `recipes/dns.json`,
//! 32 MiB each) on one bridge in a namespace the benchmark creates, then the release
//! host-launch's own CPU and wall time for one `metrics` scrape (and its bytes, per
//! appliance), one `stats --format json`, and `top` refreshing every 2 s for `--seconds`
//! (its output to a pipe: the same collection a terminal gets) as a share of one CPU; and the
//! launchers' own CPU and RSS over `--seconds` with nothing scraping and with a scrape every
//! 2 s.
//!
//! ```sh
//! cargo bench -p build-image --bench metrics [-- --appliances 100 --rounds 5 --seconds 20]
//! ```
//!
//! The appliances are 198.18.x.y/16 (the benchmarking range); nothing leaves the namespace.

#[path = "../tests/lab/mod.rs"]
mod lab;

use lab::{release_host_launch, Lab};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

struct Args {
    appliances: usize,
    rounds: usize,
    seconds: u64,
}

fn args() -> Args {
    let mut a = Args {
        appliances: 100,
        rounds: 5,
        seconds: 20,
    };
    let mut it = std::env::args().skip(1);
    while let Some(w) = it.next() {
        let mut num = |what: &str| -> u64 {
            it.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{what} takes a number"))
        };
        match w.as_str() {
            "--appliances" => a.appliances = num("--appliances") as usize,
            "--rounds" => a.rounds = num("--rounds") as usize,
            "--seconds" => a.seconds = num("--seconds"),
            "--bench" => {}
            other => panic!("unknown argument {other}; see the file's header"),
        }
    }
    a
}

/// CPU seconds (user + system) of this process's waited-for children so far.
fn children_cpu() -> f64 {
    // SAFETY: getrusage writes one rusage into the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above; RUSAGE_CHILDREN is a valid target.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut u) };
    let s = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    s(u.ru_utime) + s(u.ru_stime)
}

/// Runs host-launch to the end: its output, wall time and CPU seconds.
fn timed(exe: &Path, state: &Path, args: &[&str]) -> (Output, Duration, f64) {
    let cpu = children_cpu();
    let t = Instant::now();
    let out = Command::new(exe)
        .args(args)
        .env("HOST_LAUNCH_STATE_DIR", state)
        .stdin(Stdio::null())
        .output()
        .expect("running host-launch");
    (out, t.elapsed(), children_cpu() - cpu)
}

/// The launchers' CPU seconds (user + system, from /proc/PID/stat) and their RSS in KiB,
/// summed over `pids`.
fn launchers(pids: &[u32]) -> (f64, u64) {
    let tick = 100.0; // USER_HZ on Linux
    pids.iter().fold((0.0, 0), |(cpu, rss), pid| {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let after = stat.rsplit_once(") ").map_or("", |(_, a)| a);
        let f: Vec<f64> = after
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0.0))
            .collect();
        let ticks = f.get(11).unwrap_or(&0.0) + f.get(12).unwrap_or(&0.0);
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0u64);
        (cpu + ticks / tick, rss + kib)
    })
}

/// What the launchers themselves spend over `window`, as a share of one CPU, and their
/// mean RSS: measured once with nothing looking at the fleet and once while `scrape` runs.
fn launcher_cost(pids: &[u32], window: Duration, scrape: impl Fn()) -> (f64, u64) {
    let (c0, _) = launchers(pids);
    let t = Instant::now();
    while t.elapsed() < window {
        scrape();
    }
    let (c1, rss) = launchers(pids);
    (
        (c1 - c0) / t.elapsed().as_secs_f64() * 100.0,
        rss / pids.len().max(1) as u64,
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Stops the fleet however the benchmark ends.
struct StopAll<'a> {
    exe: &'a Path,
    state: PathBuf,
}

impl Drop for StopAll<'_> {
    fn drop(&mut self) {
        let _ = Command::new(self.exe)
            .args(["stop", "--all", "--timeout", "60"])
            .env("HOST_LAUNCH_STATE_DIR", &self.state)
            .output();
    }
}

fn start_fleet(lab: &Lab, exe: &Path, n: usize) -> Duration {
    let bridge = lab.bridge.clone().expect("a bridge");
    let state = lab.state_dir();
    let names: Vec<String> = (0..n).map(|i| format!("m{i}")).collect();
    let specs: Vec<PathBuf> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let address = format!("198.18.{}.{}", i / 200, i % 200 + 10);
            lab.write_spec(&json!({
                "name": name, "image": lab.join("dns.img"), "memory_mib": 32,
                "files": [{"path": "/run/dnsmasq.conf", "mode": "0644",
                           "content": "local=/example.net/\nhost-record=www.example.net,192.0.2.80\n"}],
                "network": {"tap": format!("tm{}x{i}", std::process::id() % 1000),
                            "netns": lab.ns.name(), "bridge": bridge,
                            "addresses": [format!("{address}/16")]},
            }))
        })
        .collect();
    let t = Instant::now();
    std::thread::scope(|s| {
        for chunk in specs.chunks(n.div_ceil(4).max(1)) {
            let state = &state;
            s.spawn(move || {
                for spec in chunk {
                    let o = Command::new(exe)
                        .args(["start", spec.to_str().unwrap()])
                        .env("HOST_LAUNCH_STATE_DIR", state)
                        .stdin(Stdio::null())
                        .output()
                        .expect("host-launch start");
                    assert!(
                        o.status.success(),
                        "start {}: {}",
                        spec.display(),
                        lab::shown(&o)
                    );
                }
            });
        }
    });
    while t.elapsed() < Duration::from_secs(300) {
        if names.iter().all(|n| lab.state(n)["ready"] == true) {
            return t.elapsed();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("the fleet was not ready after 300 s");
}

fn main() {
    let a = args();
    let lab = Lab::new("metrics-bench", Some("br0"));
    lab.ns
        .ip(&["addr", "add", "198.18.255.1/16", "dev", "br0"])
        .expect("the bridge's benchmark address");
    lab.image("dns");
    let exe = release_host_launch();
    let state = lab.state_dir();
    let _stop = StopAll {
        exe: &exe,
        state: state.clone(),
    };
    let ready = start_fleet(&lab, &exe, a.appliances);
    std::thread::sleep(Duration::from_secs(5));
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_default();
    println!(
        "metrics: {} DNS appliances at 32 MiB, all ready after {:.1} s; {model}, load average {}",
        a.appliances,
        ready.as_secs_f64(),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );

    // The launchers' own cost, with nothing scraping and with a scrape every 2 s: metrics are
    // read from /proc and state files by the scraping process, so the launchers should not
    // notice; what they do pay for is the guests' figures events (every 10 s each).
    let pids: Vec<u32> = (0..a.appliances)
        .filter_map(|i| lab.state(&format!("m{i}"))["launcher_pid"].as_u64())
        .map(|p| p as u32)
        .collect();
    let window = Duration::from_secs(a.seconds);
    let (idle_cpu, idle_rss) = launcher_cost(&pids, window, || {
        std::thread::sleep(Duration::from_millis(200));
    });
    let (scraped_cpu, scraped_rss) = launcher_cost(&pids, window, || {
        let _ = timed(&exe, &state, &["metrics"]);
        std::thread::sleep(Duration::from_secs(2));
    });
    println!(
        "launchers ({} of them, over {} s): not scraped {idle_cpu:.2}% of one CPU in all, \
         {idle_rss} KiB RSS each; scraped every 2 s {scraped_cpu:.2}%, {scraped_rss} KiB each",
        pids.len(),
        a.seconds
    );

    let (mut wall, mut cpu, mut size) = (Vec::new(), Vec::new(), 0);
    for _ in 0..a.rounds {
        let (o, w, c) = timed(&exe, &state, &["metrics"]);
        assert!(o.status.success(), "metrics: {}", lab::shown(&o));
        let text = String::from_utf8_lossy(&o.stdout);
        let up = text
            .lines()
            .filter(|l| l.starts_with("appliance_up{"))
            .count();
        assert_eq!(up, a.appliances, "one appliance_up per appliance");
        size = o.stdout.len();
        wall.push(w.as_secs_f64() * 1e3);
        cpu.push(c * 1e3);
    }
    println!(
        "metrics (one scrape, median of {}): {:.0} ms wall, {:.0} ms CPU; {} bytes, {:.0} per appliance",
        a.rounds,
        median(wall),
        median(cpu),
        size,
        size as f64 / a.appliances as f64
    );

    let (mut wall, mut cpu) = (Vec::new(), Vec::new());
    for _ in 0..a.rounds {
        let (o, w, c) = timed(&exe, &state, &["stats", "--format", "json"]);
        assert!(o.status.success(), "stats: {}", lab::shown(&o));
        wall.push(w.as_secs_f64() * 1e3);
        cpu.push(c * 1e3);
    }
    println!(
        "stats --format json (median of {}): {:.0} ms wall, {:.0} ms CPU",
        a.rounds,
        median(wall),
        median(cpu)
    );

    let refreshes = (a.seconds / 2).max(1) + 1;
    let (o, w, c) = timed(
        &exe,
        &state,
        &[
            "top",
            "--interval",
            "2",
            "--iterations",
            &refreshes.to_string(),
        ],
    );
    assert!(o.status.success(), "top: {}", lab::shown(&o));
    println!(
        "top --interval 2, {refreshes} refreshes over {:.1} s: {:.1}% of one CPU, {:.0} ms CPU per refresh",
        w.as_secs_f64(),
        c / w.as_secs_f64() * 100.0,
        c * 1e3 / refreshes as f64
    );
}
