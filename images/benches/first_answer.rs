//! Time from `host-launch start` to the DNS appliance's first answer (root), for the kernel
//! `UML_KERNEL` names (default: host-launch's): the checked-in DNS image at 32 MiB on a TAP
//! device in a network namespace; the clock starts when `host-launch start SPEC` is started,
//! and from then `dig @192.0.2.53 +short www.example.net` is started every 10 ms (each on its
//! own) until one answers 192.0.2.80; then the appliance is stopped, and that N times. Prints
//! the median and the worst, and of the guest's share (the `ready` event's `boot_us`: guest
//! kernel start to dnsmasq listening); then the host memory of the idle appliance (PSS and
//! RSS of all of the VM's host processes, 3 s after it became ready). The timed `start` is
//! host-launch's release build, as an operator runs it.
//!
//! ```sh
//! cargo bench -p image-builder --bench first_answer [-- --rounds 20 --memory-mib 32]
//! ```

#[path = "../tests/lab/mod.rs"]
mod lab;

use lab::dns::{probe, GUEST};
use lab::{bench_kernels, release_host_launch, shown, Lab};
use serde_json::json;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const NAME: &str = "fdns";
const PERIOD: Duration = Duration::from_millis(10);
/// A round that has no answer by then failed.
const GIVE_UP: Duration = Duration::from_secs(30);

struct Args {
    rounds: usize,
    memory_mib: u32,
}

fn args() -> Args {
    let mut a = Args {
        rounds: 20,
        memory_mib: 32,
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        match x.as_str() {
            "--rounds" => a.rounds = it.next().and_then(|v| v.parse().ok()).expect("--rounds N"),
            "--memory-mib" => {
                a.memory_mib = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--memory-mib N")
            }
            _ => {} // cargo passes --bench
        }
    }
    a
}

/// The guest clock (µs since the guest kernel started) of the appliance's `ready` event.
fn ready_boot_us(lab: &Lab) -> Option<u64> {
    let events = std::fs::read_to_string(lab.state_dir().join(NAME).join("events.jsonl")).ok()?;
    events
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["event"] == "ready")
        .and_then(|e| e["boot_us"].as_u64())
}

/// One round: start, dig until the answer, stop; the time from start to the answer and the
/// guest's share of it.
fn round(lab: &Lab, exe: &std::path::Path, spec: &str) -> Result<(Duration, Duration), String> {
    let stop = Arc::new(AtomicBool::new(false));
    let t = Instant::now();
    let rx = probe(
        &lab.ns.path(),
        PERIOD,
        stop.clone(),
        &["A", "www.example.net"],
    );
    // Not waited on here: the clock runs from this start, however long the command takes.
    let mut start = Command::new(exe)
        .args(["start", spec])
        .env("HOST_LAUNCH_STATE_DIR", lab.state_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("host-launch start: {e}"))?;
    let mut answered = None;
    while t.elapsed() < GIVE_UP {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(a) if a.text == "192.0.2.80" => {
                answered = Some(a.done.duration_since(t));
                break;
            }
            _ => {}
        }
    }
    stop.store(true, Ordering::Relaxed);
    let started = start
        .wait()
        .map_err(|e| format!("host-launch start: {e}"))?;
    let guest = Duration::from_micros(ready_boot_us(lab).unwrap_or(0));
    let o = lab.host_launch(&["stop", NAME]);
    if !started.success() {
        let mut err = String::new();
        use std::io::Read;
        start.stderr.take().map(|mut s| s.read_to_string(&mut err));
        return Err(format!("host-launch start failed: {err}"));
    }
    if !o.status.success() {
        return Err(format!("stop: {}", shown(&o)));
    }
    let answered = answered.ok_or_else(|| format!("no answer within {GIVE_UP:?}"))?;
    Ok((answered, guest))
}

/// Host memory of the appliance, idle, 3 s after it was ready.
fn idle_memory(lab: &Lab, spec: &str) -> Result<e2e::host::Memory, String> {
    let o = lab.host_launch(&["start", spec, "--wait-ready", "60"]);
    if !o.status.success() {
        return Err(format!("start: {}", shown(&o)));
    }
    std::thread::sleep(Duration::from_secs(3));
    let state = lab.state_dir().join(NAME).join("state.json");
    let state: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).unwrap())
        .map_err(|e| format!("{}: {e}", state.display()))?;
    let pid = state["uml_pid"]
        .as_u64()
        .ok_or("no uml_pid in state.json")? as u32;
    let m = e2e::host::memory_of(&e2e::host::vm_processes(pid));
    let o = lab.host_launch(&["stop", NAME]);
    if !o.status.success() {
        return Err(format!("stop: {}", shown(&o)));
    }
    Ok(m)
}

fn main() {
    let a = args();
    let kernel = std::env::var("UML_KERNEL").unwrap_or_else(|_| "host-launch's default".into());
    let lab = Lab::new("first", None);
    let image = lab.image("dns");
    let tap = format!("tfa{}", std::process::id() % 100_000);
    let spec = lab.write_spec(&json!({
        "name": NAME,
        "image": image,
        "memory_mib": a.memory_mib,
        "files": [{"path": "/run/dnsmasq.conf", "mode": "0644",
                   "content": "local=/example.net/\nhost-record=www.example.net,192.0.2.80\n"}],
        "network": lab.network(&tap, GUEST),
    }));
    let spec = spec.to_str().unwrap();
    let exe = release_host_launch();
    let mut times = Vec::new();
    let mut guest = Vec::new();
    let mut failures = 0;
    for i in 0..a.rounds {
        match round(&lab, &exe, spec) {
            Ok((d, g)) => {
                eprintln!(
                    "round {}/{}: first answer after {} ms (guest kernel start -> ready {} ms)",
                    i + 1,
                    a.rounds,
                    d.as_millis(),
                    g.as_millis()
                );
                times.push(d);
                guest.push(g);
            }
            Err(e) => {
                eprintln!("round {}/{}: FAILED: {e}", i + 1, a.rounds);
                failures += 1;
            }
        }
    }
    times.sort();
    guest.sort();
    if let (Some(median), Some(worst)) = (times.get(times.len() / 2), times.last()) {
        println!(
            "kernel {kernel}: host-launch start -> first DNS answer at {} MiB over {} rounds \
             (dig every {} ms): median {} ms, best {} ms, worst {} ms",
            a.memory_mib,
            times.len(),
            PERIOD.as_millis(),
            median.as_millis(),
            times[0].as_millis(),
            worst.as_millis()
        );
        println!(
            "kernel {kernel}: of which guest kernel start -> dnsmasq ready: median {} ms, \
             worst {} ms",
            guest[guest.len() / 2].as_millis(),
            guest[guest.len() - 1].as_millis()
        );
    }
    match idle_memory(&lab, spec) {
        Ok(m) => println!(
            "kernel {kernel}: idle DNS appliance at {} MiB: host PSS {} KiB, RSS {} KiB \
             ({} processes, {} address spaces)",
            a.memory_mib, m.pss_kib, m.rss_kib, m.processes, m.address_spaces
        ),
        Err(e) => {
            eprintln!("memory: FAILED: {e}");
            failures += 1;
        }
    }
    if failures > 0 {
        eprintln!("{failures} failure(s)");
        std::process::exit(1);
    }
}
