//! What a guest system call costs: the static `syscall-probe` (e2e/syscall-probe) as the
//! service of a busybox-free test image, on the project's kernel and Debian's `linux.uml`
//! side by side (kernels alternate round by round, so both see the same load), and on the host
//! as the baseline. Prints, per kernel, the median over the rounds of the nanoseconds per
//! getpid, per 1-byte pipe write or read, per context switch between two guest processes and
//! between two threads of one (their system calls included) and per page fault, and each one's ratio to the host; and
//! fails when a switch lost a process's or a thread's FP registers (`fp_kept=NO`).
//!
//! `cargo bench -p e2e --bench syscalls [-- --rounds 5 --kernels project,debian --scale 1]`
//! (`--scale N` runs each operation N times longer, for a tracer attached to the VM: see
//! kernel/README.md, "Where a guest system call's time goes").

use e2e::{RootFs, TempDir, Vm};
use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

const OPS: [&str; 5] = [
    "getpid",
    "pipe_rw",
    "ctx_switch",
    "thread_switch",
    "page_fault",
];

struct Args {
    rounds: usize,
    kernels: String,
    /// The probe's SCALE: longer runs, for a tracer attached from outside.
    scale: u64,
}

fn args() -> Args {
    let mut a = Args {
        rounds: 5,
        kernels: "project,debian".into(),
        scale: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        match x.as_str() {
            "--rounds" => a.rounds = it.next().and_then(|v| v.parse().ok()).expect("--rounds N"),
            "--kernels" => a.kernels = it.next().expect("--kernels project,debian"),
            "--scale" => a.scale = it.next().and_then(|v| v.parse().ok()).expect("--scale N"),
            _ => {} // cargo bench passes --bench
        }
    }
    a
}

/// The probe's figures in one run's output: op -> ns per op. A switch that lost FP state is
/// an error.
fn parse(text: &str) -> Result<BTreeMap<String, u64>, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.split("probe ").nth(1) else {
            continue;
        };
        let mut words = rest.split_whitespace();
        let op = words.next().unwrap_or_default().to_string();
        if rest.contains("failed") {
            return Err(format!("probe {rest}"));
        }
        if rest.contains("fp_kept=NO") {
            return Err(format!(
                "{op}: a process's FP registers changed across context switches"
            ));
        }
        if let Some(ns) = words.find_map(|w| w.strip_prefix("ns_per_op=")) {
            out.insert(op, ns.parse().map_err(|_| format!("bad figure: {line}"))?);
        }
    }
    match OPS.iter().find(|op| !out.contains_key(**op)) {
        Some(op) => Err(format!("no figure for {op} in:\n{text}")),
        None => Ok(out),
    }
}

fn main() {
    let a = args();
    if let Err(e) = run(&a) {
        eprintln!("bench syscalls: {e}");
        std::process::exit(1);
    }
}

fn run(a: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let probe = e2e::build_static("syscall-probe", "syscall-probe")?;
    let dir = TempDir::new("bench-syscalls")?;
    let image = dir.join("root.img");
    RootFs::new().file("/probe", &probe, 0o755).build(&image)?;
    let contract = contract::parse_json(
        serde_json::json!({
            "version": 1,
            "hostname": "probe",
            "service": {"argv": ["/probe", a.scale.to_string()], "restart": {"policy": "never"}}
        })
        .to_string()
        .as_bytes(),
    )?;
    let kernels = e2e::bench_kernels(&a.kernels);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("syscalls: load average before: {}", load.trim());
    let mut host: Vec<BTreeMap<String, u64>> = Vec::new();
    let mut guest: BTreeMap<String, Vec<BTreeMap<String, u64>>> = BTreeMap::new();
    for round in 1..=a.rounds {
        let out = Command::new(&probe).output()?;
        host.push(parse(&String::from_utf8_lossy(&out.stdout))?);
        for (label, kernel) in &kernels {
            let outcome = Vm::new(&image)
                .kernel(kernel)
                .contract_cmdline(&contract)
                .timeout(Duration::from_secs(120 * a.scale))
                .run()?;
            if !outcome.powered_off_cleanly() {
                return Err(format!("{label}: round {round}:\n{}", outcome.report()).into());
            }
            let figures = parse(&outcome.console).map_err(|e| format!("{label}: {e}"))?;
            eprintln!("{label}: round {round}/{}: {figures:?}", a.rounds);
            guest.entry(label.clone()).or_default().push(figures);
        }
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("syscalls: load average after: {}", load.trim());
    println!(
        "median ns per operation over {} rounds (ratio to the host):",
        a.rounds
    );
    print!("{:<12} {:>10}", "operation", "host");
    for (label, _) in &kernels {
        print!(" {:>20}", label);
    }
    println!();
    for op in OPS {
        let h = median(&host, op);
        print!("{op:<12} {h:>10}");
        for (label, _) in &kernels {
            let g = median(&guest[label], op);
            print!(" {:>11} (x{:>6.1})", g, g as f64 / h.max(1) as f64);
        }
        println!();
    }
    Ok(())
}

fn median(runs: &[BTreeMap<String, u64>], op: &str) -> u64 {
    let mut v: Vec<u64> = runs.iter().filter_map(|r| r.get(op).copied()).collect();
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}
