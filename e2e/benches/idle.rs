//! What an idle appliance costs the host, and where its wake-ups come from (root): one VM at
//! 32 MiB with a network interface and a service that only sleeps, booted with guest-init's
//! default heartbeat and with none (`guest_init.heartbeat_ms=0`, as host-launch asks without
//! a watchdog). For each: the host CPU time of all the VM's host processes over a quiet
//! window between the service's two dumps (their `schedstat`, in ms per second), and the guest's timer interrupts, timer
//! softirqs and network interrupts per second over the same window (`/proc/interrupts` and
//! `/proc/softirqs` read by the service at both ends of it).
//!
//! ```sh
//! cargo bench -p e2e --bench idle [-- --seconds 20]
//! ```

use e2e::{NetNs, RootFs, TempDir, Vm};
use std::time::{Duration, Instant};

fn seconds() -> u64 {
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        if a == "--seconds" {
            return it.next().and_then(|v| v.parse().ok()).unwrap_or(20);
        }
    }
    20
}

/// A counter in the service's console dump `n`: the number after `label` (`/proc/softirqs`,
/// or an interrupt's number such as ` 0:`), or for an interrupt named `label` at the end of
/// its `/proc/interrupts` line, the count after its number.
fn counter(console: &str, n: usize, label: &str) -> Option<u64> {
    let dump = console.split("DUMP").nth(n)?;
    dump.lines().find_map(|l| {
        let l = l.trim_end();
        if l.ends_with(label) && !label.ends_with(':') {
            let mut t = l.split_whitespace();
            t.find(|w| w.ends_with(':') && w[..w.len() - 1].bytes().all(|b| b.is_ascii_digit()))?;
            return t.next()?.parse().ok();
        }
        let (_, rest) = l.split_once(label)?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

fn run(image: &std::path::Path, heartbeat: Option<&str>, secs: u64) -> Result<String, String> {
    let ns = NetNs::with_tap("tap0").map_err(|e| e.to_string())?;
    let settle = 3;
    let script = format!(
        "sleep {settle}; echo DUMP; cat /proc/interrupts /proc/softirqs; sleep {secs}; \
         echo DUMP; cat /proc/interrupts /proc/softirqs; exec sleep 1000"
    );
    let c = contract::parse_json(
        serde_json::json!({
            "version": 1,
            "hostname": "idle",
            "network": {"interfaces": [{"name": "vec0", "addresses": ["192.0.2.10/24", "2001:db8::10/64"]}],
                        "routes": [{"destination": "0.0.0.0/0", "gateway": "192.0.2.1"}]},
            "service": {"name": "idle", "argv": ["/bin/sh", "-c", script]}
        })
        .to_string()
        .as_bytes(),
    )
    .map_err(|e| e.lines().join("; "))?;
    let mut vm = Vm::new(image)
        .network(&ns)
        .memory_mib(32)
        .timeout(Duration::from_secs(secs + 120))
        .contract_cmdline(&c);
    if let Some(h) = heartbeat {
        vm = vm.arg(format!("{}={h}", contract::status::HEARTBEAT_PARAM));
    }
    let vm = vm.spawn().map_err(|e| e.to_string())?;
    let uml = vm.pid().ok_or("no UML pid")?;
    vm.wait_for_console("DUMP", Duration::from_secs(60))
        .map_err(|e| e.to_string())?;
    // The CPU window stays a second clear of both dumps: each `cat` is an exec, which costs
    // more than the idle VM does in seconds.
    std::thread::sleep(Duration::from_secs(1));
    let (t0, c0) = (Instant::now(), e2e::host::vm_cpu_ns(uml));
    std::thread::sleep(Duration::from_secs(secs.saturating_sub(2).max(1)));
    let (t1, c1) = (Instant::now(), e2e::host::vm_cpu_ns(uml));
    let deadline = Instant::now() + Duration::from_secs(30);
    while vm.console().matches("DUMP").count() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    let console = vm.console();
    let _ = vm.mconsole("halt");
    let per_s = |label: &str| -> String {
        match (counter(&console, 1, label), counter(&console, 2, label)) {
            (Some(a), Some(b)) => format!("{:.2}", b.saturating_sub(a) as f64 / secs as f64),
            _ => "?".into(),
        }
    };
    let window = t1.duration_since(t0).as_secs_f64();
    Ok(format!(
        "host CPU {:.3} ms/s; guest per second: timer interrupts {}, TIMER softirqs {}, \
         vec0 interrupts {}, RCU softirqs {}",
        (c1 - c0) as f64 / 1e6 / window,
        per_s(" 0:"),
        per_s("TIMER:"),
        per_s("vec0"),
        per_s("RCU:"),
    ))
}

fn main() {
    let secs = seconds();
    let setup = || -> Result<(TempDir, std::path::PathBuf), String> {
        let guest_init = e2e::guest_init().map_err(|e| e.to_string())?;
        let dir = TempDir::new("idle-bench").map_err(|e| e.to_string())?;
        let image = dir.join("root.img");
        RootFs::new()
            .init(&guest_init)
            .busybox(&["sh", "sleep", "cat"])
            .build(&image)
            .map_err(|e| e.to_string())?;
        Ok((dir, image))
    };
    let (_dir, image) = match setup() {
        Ok(x) => x,
        Err(e) => {
            eprintln!("idle: {e}");
            std::process::exit(1);
        }
    };
    println!(
        "idle: kernel {}, one VM at 32 MiB, {secs} s window, load average {}",
        e2e::kernel_path().display(),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    for (label, hb) in [
        ("default heartbeat (1 s)", None),
        ("no heartbeat", Some("0")),
    ] {
        match run(&image, hb, secs) {
            Ok(line) => println!("idle: {label}: {line}"),
            Err(e) => {
                eprintln!("idle: {label}: {e}");
                std::process::exit(1);
            }
        }
    }
}
