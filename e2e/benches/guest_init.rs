//! guest-init's own costs, from the status channel over 20 real UML boots:
//! time from guest-init's first instruction to the service's exec and to readiness, the
//! kernel's share before it, the static binary's size, and PID 1's resident memory while it
//! supervises a service.
//!
//! `cargo bench -p e2e --bench guest_init` (add `-- N` for another number of boots).

use e2e::{RootFs, TempDir, Vm};
use std::time::Duration;

const BOOTS: usize = 20;

fn main() {
    let boots = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(BOOTS);
    if let Err(e) = run(boots) {
        eprintln!("bench guest_init: {e}");
        std::process::exit(1);
    }
}

/// The service: reports PID 1's memory once it runs, then waits; ready by notification so
/// readiness has a real moment.
const SERVICE: &str = "echo >&3; sleep 0.2; \
    grep -E '^(VmRSS|VmHWM|RssAnon|RssFile)' /proc/1/status | tr -s ' \\t' ' ' | tr '\\n' ' '; \
    echo; exec sleep 100";

fn run(boots: usize) -> Result<(), Box<dyn std::error::Error>> {
    let init = e2e::guest_init()?;
    let size = std::fs::metadata(&init)?.len();
    let dir = TempDir::new("bench-init")?;
    let image = dir.join("root.img");
    RootFs::new()
        .busybox(&["sh", "sleep", "grep", "tr", "echo"])
        .build(&image)?;
    let contract = contract::parse_json(
        serde_json::json!({
            "version": 1,
            "hostname": "bench",
            "service": {
                "argv": ["/bin/sh", "-c", SERVICE],
                "readiness": {"type": "notify", "fd": 3},
                "restart": {"policy": "never"}
            }
        })
        .to_string()
        .as_bytes(),
    )?;
    let mut exec_us = Vec::new();
    let mut ready_us = Vec::new();
    let mut kernel_us = Vec::new();
    let mut rss = String::new();
    let mut steps: std::collections::BTreeMap<String, Vec<u64>> = Default::default();
    for i in 0..boots {
        let vm = Vm::new(&image).contract_cmdline(&contract).spawn()?;
        let started = vm.wait_for_event("service_started", Duration::from_secs(30))?;
        let ready = vm.wait_for_event("ready", Duration::from_secs(30))?;
        vm.wait_for_console("VmRSS", Duration::from_secs(30))?;
        let console = vm.console();
        vm.mconsole("cad")?;
        let outcome = vm.wait(Duration::from_secs(30))?;
        if !outcome.powered_off_cleanly() {
            return Err(
                format!("boot {i} did not power off cleanly:\n{}", outcome.report()).into(),
            );
        }
        for e in outcome
            .events()
            .iter()
            .take_while(|e| e.name != "service_started")
        {
            steps.entry(e.name.clone()).or_default().push(e.init_us);
        }
        exec_us.push(started.init_us);
        ready_us.push(ready.init_us);
        kernel_us.push(started.boot_us.saturating_sub(started.init_us));
        if let Some(line) = console.lines().find(|l| l.contains("VmRSS")) {
            rss = line.trim().to_string();
        }
    }
    let kernel = e2e::kernel_path();
    println!(
        "guest-init benchmark: {boots} boots of {} kernel {}, 64 MiB guest",
        vmm::kernel::whose(&kernel),
        kernel.display()
    );
    println!("{:<44} {:>9} {:>9} {:>9}", "", "median", "min", "max");
    row("guest-init start -> service exec (ms)", &mut exec_us);
    row("guest-init start -> service ready (ms)", &mut ready_us);
    row("kernel boot -> guest-init start (ms)", &mut kernel_us);
    for (name, values) in steps.iter_mut() {
        row(&format!("  guest-init start -> {name} (ms)"), values);
    }
    println!(
        "static binary size: {size} bytes ({:.2} MiB)",
        size as f64 / 1048576.0
    );
    println!("PID 1 memory while supervising (/proc/1/status): {rss}");
    Ok(())
}

fn row(label: &str, values: &mut [u64]) {
    values.sort_unstable();
    let ms = |us: u64| us as f64 / 1000.0;
    let median = values.get(values.len() / 2).copied().unwrap_or(0);
    let min = values.first().copied().unwrap_or(0);
    let max = values.last().copied().unwrap_or(0);
    println!(
        "{label:<44} {:>9.2} {:>9.2} {:>9.2}",
        ms(median),
        ms(min),
        ms(max)
    );
}
