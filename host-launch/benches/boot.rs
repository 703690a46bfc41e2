//! Boot benchmark of `host-launch run` with the busybox httpd test appliance (data disk, TAP
//! device in a network namespace), as root:
//!
//! 1. reliability: N launches in a row at 32 MiB (default 50), each waited on until "ready",
//!    answering HTTP, stopped with SIGTERM, exit status 0; also counts the kernel boots
//!    host-launch repeated because the kernel panicked before init
//!    (`run::BOOT_ATTEMPTS`);
//! 2. timing: M boots at 64 MiB (default 20): launcher start → "ready", split into the host's
//!    share (start → the guest kernel's clock starts), the kernel's (→ PID 1, the ready event's
//!    `boot_us − init_us`) and guest-init's (PID 1 → ready, `init_us`); median, min, max;
//! 3. memory: host memory of idle appliances, the PSS (and RSS) of all of a VM's processes
//!    from /proc/PID/smaps_rollup (counting each address space once: UML's I/O helpers share
//!    its memory), and the launcher's own.
//!
//! ```sh
//! cargo bench -p host-launch --bench boot [-- --boots 50 --runs 20 --only reliability|timing|memory]
//! ```
//!
//! Exits 1 if any boot failed.

#[path = "../tests/common/mod.rs"]
mod common;

use common::{http_get, launch, Appliance, Launch};
use e2e::NetNs;
use std::path::{Path, PathBuf};
use std::time::Duration;

const READY_TIMEOUT: Duration = Duration::from_secs(60);

struct Args {
    boots: usize,
    runs: usize,
    only: Option<String>,
}

fn args() -> Args {
    let mut a = Args {
        boots: 50,
        runs: 20,
        only: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        match x.as_str() {
            "--boots" => a.boots = it.next().and_then(|v| v.parse().ok()).expect("--boots N"),
            "--runs" => a.runs = it.next().and_then(|v| v.parse().ok()).expect("--runs N"),
            "--only" => a.only = it.next(),
            _ => {} // cargo passes --bench
        }
    }
    a
}

/// The clocks of one boot, µs.
#[derive(Debug, Clone, Copy)]
struct Timing {
    /// Launcher start → its "ready" line.
    total: u64,
    /// The ready event's guest clocks.
    boot: u64,
    init: u64,
    /// guest-init start → the contract loaded.
    contract: u64,
    /// Boots host-launch repeated after the kernel panicked before init.
    retries: usize,
}

impl Timing {
    fn host(&self) -> u64 {
        self.total.saturating_sub(self.boot)
    }
    fn kernel(&self) -> u64 {
        self.boot.saturating_sub(self.init)
    }
}

/// A test network and image for `n` appliances at once (on a bridge).
struct Bed {
    dir: e2e::TempDir,
    ns: NetNs,
    image: PathBuf,
    state: PathBuf,
}

impl Bed {
    fn new() -> Bed {
        common::require_root_and_busybox();
        let dir = common::temp_dir("bench");
        let image = common::build_image(dir.path(), "hello from the appliance\n");
        let ns = common::netns(true);
        let state = dir.join("state");
        Bed {
            dir,
            ns,
            image,
            state,
        }
    }

    /// Appliance `i` (its own TAP device, address 192.0.2.(10+i) and data disk).
    fn appliance(&self, i: usize, memory_mib: u32) -> (Appliance, PathBuf) {
        let data = self.dir.join(format!("data{i}.img"));
        if !data.exists() {
            common::data_disk(&data);
        }
        let a = Appliance {
            name: format!("bench{i}"),
            memory_mib,
            image: self.image.clone(),
            data,
            tap: common::tap_name(&i.to_string()),
            netns: self.ns.name().to_string(),
            bridge: true,
            address: format!("192.0.2.{}", 10 + i),
        };
        let spec = a.write_spec(self.dir.path());
        (a, spec)
    }
}

/// One boot to "ready", an HTTP answer, SIGTERM and exit 0; the clocks, or what went wrong.
fn boot_once(bed: &Bed, spec: &Path, a: &Appliance) -> Result<Timing, String> {
    let mut run = launch(spec, &a.name, &bed.state);
    let total = run.wait_ready(READY_TIMEOUT)?;
    let ready = run.event("ready").ok_or("no ready event in events.jsonl")?;
    let contract = run
        .event("contract_loaded")
        .ok_or("no contract_loaded event")?;
    let retries = run
        .lines
        .iter()
        .filter(|l| l.contains("booting again"))
        .count();
    let t = Timing {
        retries,
        total: total.as_micros() as u64,
        boot: ready["boot_us"].as_u64().unwrap_or(0),
        init: ready["init_us"].as_u64().unwrap_or(0),
        contract: contract["init_us"].as_u64().unwrap_or(0),
    };
    let http = http_get(&bed.ns, &format!("{}:8080", a.address));
    let console = run.console_tail(400);
    let (code, out) = run.stop();
    match http {
        Ok(body) if body.contains("hello from the appliance") => {}
        other => return Err(format!("no HTTP answer: {other:?}\n{out}")),
    }
    if code != Some(0) {
        return Err(format!(
            "exit status {code:?}\n{out}\n--- console:\n{console}"
        ));
    }
    Ok(t)
}

fn boots(bed: &Bed, n: usize, memory_mib: u32, label: &str) -> (usize, Vec<Timing>) {
    let (a, spec) = bed.appliance(0, memory_mib);
    let mut times = Vec::new();
    for i in 1..=n {
        match boot_once(bed, &spec, &a) {
            Ok(t) => {
                eprintln!(
                    "{label} {i}/{n}: ready after {:.3} s (kernel {:.3} s){}",
                    t.total as f64 / 1e6,
                    t.kernel() as f64 / 1e6,
                    if t.retries > 0 {
                        format!(", after {} kernel boot(s) that panicked", t.retries)
                    } else {
                        String::new()
                    }
                );
                times.push(t)
            }
            Err(e) => eprintln!("{label} {i}/{n}: FAILED: {e}"),
        }
    }
    (times.len(), times)
}

fn stats(mut v: Vec<u64>) -> (f64, f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    v.sort_unstable();
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2] as f64
    } else {
        (v[n / 2 - 1] + v[n / 2]) as f64 / 2.0
    };
    (median / 1e3, v[0] as f64 / 1e3, v[n - 1] as f64 / 1e3)
}

fn timing_table(title: &str, t: &[Timing]) {
    println!("\n{title} ({} boots), milliseconds:", t.len());
    println!(
        "| {:<44} | {:>7} | {:>7} | {:>7} |",
        "", "median", "min", "max"
    );
    println!("|{:-<46}|{:->9}|{:->9}|{:->9}|", "", "", "", "");
    type Row = (&'static str, fn(&Timing) -> u64);
    let rows: [Row; 5] = [
        ("host-launch start → ready", |t| t.total),
        ("  host: launcher start → guest kernel clock", Timing::host),
        ("  kernel: boot → PID 1 (boot_us − init_us)", Timing::kernel),
        ("  guest-init: PID 1 → ready (init_us)", |t| t.init),
        ("    of which PID 1 → contract loaded", |t| t.contract),
    ];
    for (name, f) in rows {
        let (med, min, max) = stats(t.iter().map(f).collect());
        println!("| {name:<44} | {med:>7.0} | {min:>7.0} | {max:>7.0} |");
    }
}

/// Boots `count` appliances at once at `memory_mib`, lets them idle, and measures them.
fn memory(bed: &Bed, count: usize, memory_mib: u32) -> Result<(e2e::host::Memory, u64), String> {
    let apps: Vec<_> = (0..count).map(|i| bed.appliance(i, memory_mib)).collect();
    let mut runs: Vec<Launch> = apps
        .iter()
        .map(|(a, spec)| launch(spec, &a.name, &bed.state))
        .collect();
    let mut failed = None;
    for r in &mut runs {
        if let Err(e) = r.wait_ready(READY_TIMEOUT) {
            failed = Some(e);
        }
    }
    std::thread::sleep(Duration::from_secs(3));
    let mut vm = e2e::host::Memory::default();
    let mut launcher_pss = 0;
    if failed.is_none() {
        for r in &runs {
            let m = common::memory_of(&host_launch::state::process_group(r.uml_pid()));
            vm.processes += m.processes;
            vm.address_spaces += m.address_spaces;
            vm.rss_kib += m.rss_kib;
            vm.pss_kib += m.pss_kib;
            launcher_pss += common::memory_of(&[r.child.id()]).pss_kib;
        }
    }
    for r in runs {
        let (code, out) = r.stop();
        if code != Some(0) && failed.is_none() {
            failed = Some(format!("exit status {code:?}\n{out}"));
        }
    }
    match failed {
        Some(e) => Err(e),
        None => Ok((vm, launcher_pss)),
    }
}

fn main() {
    let args = args();
    let only = |part: &str| args.only.as_deref().is_none_or(|o| o == part);
    let bed = Bed::new();
    let mut failures = 0;
    let mut small = Vec::new();
    if only("reliability") {
        let (passed, t) = boots(&bed, args.boots, 32, "32 MiB boot");
        failures += args.boots - passed;
        let retries: usize = t.iter().map(|t| t.retries).sum();
        println!(
            "\nreliability: {passed}/{} launches at 32 MiB reached ready, answered HTTP and exited \
             0 on SIGTERM; {retries} kernel boot(s) panicked before init and were repeated by \
             host-launch ({} boots in all)",
            args.boots,
            t.len() + retries
        );
        small = t;
    }
    if only("timing") {
        let (passed, t) = boots(&bed, args.runs, 64, "64 MiB boot");
        failures += args.runs - passed;
        timing_table("start → ready at 64 MiB", &t);
        if !small.is_empty() {
            timing_table("start → ready at 32 MiB (the reliability boots)", &small);
        }
    }
    if only("memory") {
        println!("\nhost memory per idle appliance (KiB; UML = all of the VM's host processes):");
        println!(
            "| {:<34} | {:>11} | {:>8} | {:>8} | {:>13} |",
            "", "procs (mms)", "UML PSS", "UML RSS", "launcher PSS"
        );
        println!(
            "|{:-<36}|{:->13}|{:->10}|{:->10}|{:->15}|",
            "", "", "", "", ""
        );
        for (count, mib) in [(1, 32), (1, 64), (4, 32)] {
            let label = if count == 1 {
                format!("1 appliance, {mib} MiB")
            } else {
                format!("{count} at once, {mib} MiB, per appliance")
            };
            match memory(&bed, count, mib) {
                Ok((m, launcher)) => {
                    let c = count as u64;
                    println!(
                        "| {label:<34} | {:>11} | {:>8} | {:>8} | {:>13} |",
                        format!("{} ({})", m.processes / count, m.address_spaces / count),
                        m.pss_kib / c,
                        m.rss_kib / c,
                        launcher / c
                    );
                }
                Err(e) => {
                    failures += 1;
                    println!("| {label:<34} | FAILED |");
                    eprintln!("{e}");
                }
            }
        }
    }
    drop(bed); // the namespace and the files: exit skips destructors
    if failures > 0 {
        eprintln!("{failures} failure(s)");
        std::process::exit(1);
    }
}
