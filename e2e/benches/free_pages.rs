//! What free page reporting (kernel/patches/0009) gives back, order by order (root): one VM
//! at 32 MiB on the project's kernel, booted with `um_page_reporting.order=N` for each order
//! asked (`off` is order 11, which the driver refuses, so the same kernel reports nothing),
//! orders alternating round by round (0 is the framework's own default, `pageblock_order`,
//! 4 MiB on UML: `page_reporting_register` takes a driver's 0 as "none given"). The service does what a service's start does to memory
//! (reads a 2 MiB binary, runs 200 short processes, writes 6 MiB into a tmpfs and removes it)
//! and then sleeps. Printed per order, medians over the rounds: what the host holds of the
//! VM's memory file (its `st_blocks`) 3 s after the work and `--settle` seconds after it, and
//! the host CPU time of the VM's processes over that window (what the reports and punches
//! cost, beside an idle VM's own wake-ups).
//!
//! ```sh
//! cargo bench -p e2e --bench free_pages [-- --orders off,2,3,5,7,9 --rounds 2 --settle 20]
//! ```

use e2e::{TempDir, Vm};
use std::time::{Duration, Instant};

const MEMORY_MIB: u32 = 32;
const SCRIPT: &str = "cat /bin/busybox > /dev/null
i=0
while [ $i -lt 200 ]; do /bin/true; i=$((i+1)); done
dd if=/dev/zero of=/scratch/fill bs=1M count=6 2>/dev/null
rm /scratch/fill
echo bench: settled
sleep 600
";

struct Args {
    orders: Vec<String>,
    rounds: usize,
    settle: u64,
}

fn args() -> Args {
    let mut a = Args {
        orders: "off,2,3,5,7,9".split(',').map(String::from).collect(),
        rounds: 2,
        settle: 20,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--orders" => {
                a.orders = it
                    .next()
                    .expect("--orders off,0,5")
                    .split(',')
                    .map(String::from)
                    .collect()
            }
            "--rounds" => a.rounds = it.next().and_then(|v| v.parse().ok()).expect("--rounds N"),
            "--settle" => a.settle = it.next().and_then(|v| v.parse().ok()).expect("--settle S"),
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

/// Host CPU time (ms) of the VM's processes, all threads.
fn cpu_ms(uml_pid: u32) -> f64 {
    e2e::host::vm_cpu_ns(uml_pid) as f64 / 1e6
}

struct Sample {
    early_kib: u64,
    late_kib: u64,
    cpu_ms: f64,
}

fn one(image: &std::path::Path, contract: &contract::Contract, order: &str, settle: u64) -> Sample {
    let (_, kernel) = e2e::bench_kernels("project").remove(0);
    let n = if order == "off" { "11" } else { order };
    let vm = Vm::new(image)
        .kernel(&kernel)
        .memory_mib(MEMORY_MIB)
        .arg(format!("um_page_reporting.order={n}"))
        .contract_cmdline(contract)
        .spawn()
        .unwrap();
    vm.wait_for_console("bench: settled", Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("order {order}: {e}\n{}", vm.console()));
    let pid = vm.pid().unwrap();
    let settled = Instant::now();
    let file = || {
        e2e::host::uml_memory_file(pid)
            .expect("the VM's memory file")
            .allocated
            >> 10
    };
    std::thread::sleep(Duration::from_secs(3));
    let early_kib = file();
    let cpu0 = cpu_ms(pid);
    std::thread::sleep(Duration::from_secs(settle).saturating_sub(settled.elapsed()));
    let cpu_ms = cpu_ms(pid) - cpu0;
    Sample {
        early_kib,
        late_kib: file(),
        cpu_ms,
    }
}

fn median<T: Copy + PartialOrd>(mut v: Vec<T>) -> T {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let a = args();
    let dir = TempDir::new("free-pages-bench").unwrap();
    let guest = e2e::script_guest::script_guest(
        &dir,
        "fpb",
        &["sh", "cat", "dd", "rm", "sleep", "true", "echo", "["],
        SCRIPT,
        8,
    )
    .unwrap();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("free_pages: load average before: {}", load.trim());
    let mut samples: Vec<Vec<Sample>> = a.orders.iter().map(|_| Vec::new()).collect();
    for r in 0..a.rounds {
        for (i, order) in a.orders.iter().enumerate() {
            let s = one(&guest.image, &guest.contract, order, a.settle);
            eprintln!(
                "round {}/{} order {order}: memory file {} KiB after 3 s, {} KiB after {} s; \
                 VM CPU {:.1} ms",
                r + 1,
                a.rounds,
                s.early_kib,
                s.late_kib,
                a.settle,
                s.cpu_ms
            );
            samples[i].push(s);
        }
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("free_pages: load average after: {}", load.trim());
    for (order, s) in a.orders.iter().zip(samples) {
        let early = median(s.iter().map(|x| x.early_kib).collect());
        let late = median(s.iter().map(|x| x.late_kib).collect());
        let cpu = median(s.iter().map(|x| x.cpu_ms).collect());
        println!(
            "order {order}: VM at {MEMORY_MIB} MiB, the host holds of its memory file {:.1} MiB \
             3 s after the work, {:.1} MiB after {} s; VM CPU over the window {cpu:.1} ms \
             (medians of {})",
            early as f64 / 1024.0,
            late as f64 / 1024.0,
            a.settle,
            a.rounds
        );
    }
}
