//! Overload sheds, never kills (root): the syslog class image (rsyslog) at its example spec's
//! memory under a UDP flood from the lab namespace (`--messages` messages of about 950 bytes
//! over `--seconds`, by default the 500,000 in 30 s that made the guest's OOM killer end
//! rsyslogd four times before its queue was bounded), onto a data disk of `--disk-mib`
//! (64 by default: it fills during the flood, rsyslogd's output stops and only its queue
//! holds what comes; on this loaded 2-core machine that is what made the unbounded queue
//! grow until the OOM killer ended rsyslogd, twice in 30 s). Fails if guest-init restarted the
//! service or reported it ended, or the guest's OOM killer ran; prints what was sent, what
//! the appliance stored (its data disk read back after a clean stop) and so what it shed,
//! with the CPU and the load average.
//!
//! ```sh
//! cargo bench -p build-image --bench overload [-- --messages 500000 --seconds 30 --kernel project --disk-mib 64]
//! ```

#[path = "../tests/lab/mod.rs"]
mod lab;

use lab::{bench_kernels, Lab};
use serde_json::Value;
use std::net::UdpSocket;
use std::process::Command;
use std::time::{Duration, Instant};

const GUEST: &str = "192.0.2.14";

struct Args {
    messages: u64,
    seconds: u64,
    kernel: String,
    disk_mib: u64,
}

fn args() -> Args {
    let mut a = Args {
        messages: 500_000,
        seconds: 30,
        kernel: "project".into(),
        disk_mib: 64,
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{x} needs a value"));
        match x.as_str() {
            "--messages" => a.messages = value().parse().expect("--messages N"),
            "--seconds" => a.seconds = value().parse().expect("--seconds N"),
            "--kernel" => a.kernel = value(),
            "--disk-mib" => a.disk_mib = value().parse().expect("--disk-mib N"),
            _ => {} // cargo bench passes --bench
        }
    }
    a
}

/// Sends `n` RFC 5424 messages of about 950 bytes to the appliance, paced over `secs`;
/// returns how many were sent and how long it took.
fn flood(lab: &Lab, n: u64, secs: u64) -> (u64, Duration) {
    lab.ns
        .enter(move || {
            let s = UdpSocket::bind("0.0.0.0:0").expect("flood socket");
            s.connect((GUEST, 514)).expect("connect");
            let pad = "x".repeat(880);
            let t = Instant::now();
            let mut sent = 0;
            for i in 0..n {
                let msg = format!("<134>1 2026-01-01T00:00:00Z flood bench - - - {i:08} {pad}");
                if s.send(msg.as_bytes()).is_ok() {
                    sent += 1;
                }
                // Paced in steps of 20 messages: a burst of more overflows the guest's socket
                // buffer before rsyslogd could queue anything.
                if i % 20 == 19 {
                    let due = Duration::from_secs_f64(secs as f64 * (i + 1) as f64 / n as f64);
                    std::thread::sleep(due.saturating_sub(t.elapsed()));
                }
            }
            (sent, t.elapsed())
        })
        .expect("the flood in the lab namespace")
}

fn main() {
    let a = args();
    let (label, kernel) = bench_kernels(&a.kernel).remove(0);
    let lab = Lab::new("overload", None);
    let image = lab.image("syslog");
    let disk = lab.join("logs-data.img");
    std::fs::File::create(&disk)
        .and_then(|f| f.set_len(a.disk_mib << 20))
        .expect("the data disk");
    let path = e2e::workspace_root().join("examples/syslog.json");
    let mut spec: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    spec["image"] = image.to_str().unwrap().into();
    spec["kernel"] = kernel.to_str().unwrap().into();
    spec["disks"][0]["file"] = disk.to_str().unwrap().into();
    spec["disks"][0]["size_mib"] = a.disk_mib.into();
    let tap = format!("tov{}", std::process::id() % 100_000);
    spec["network"] = lab.network(&tap, GUEST);
    spec.as_object_mut().unwrap().remove("syslog");
    let name = spec["name"].as_str().unwrap().to_string();
    lab.start(&lab.write_spec(&spec));
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let cpu = e2e::host::cpu_model();
    println!(
        "overload: {label} kernel, {} MiB, CPU {cpu}, load average {}",
        spec["memory_mib"],
        load.trim()
    );
    let (sent, took) = flood(&lab, a.messages, a.seconds);
    // The queue drains before the stop.
    std::thread::sleep(Duration::from_secs(5));
    let state = lab.state_dir().join(&name);
    let events = std::fs::read_to_string(state.join("events.jsonl")).unwrap_or_default();
    let console = std::fs::read_to_string(state.join("console.log")).unwrap_or_default();
    let (code, _) = lab.stop(&name);
    let stored = stored_lines(&disk);
    println!(
        "overload: sent {sent} messages of ~950 bytes in {:.1} s ({:.0}/s); stored {stored} \
         ({:.0}/s over the flood), shed {}",
        took.as_secs_f64(),
        sent as f64 / took.as_secs_f64(),
        stored as f64 / took.as_secs_f64(),
        sent.saturating_sub(stored)
    );
    let starts = events.matches("\"event\":\"service_started\"").count();
    let bad: Vec<&str> = events
        .lines()
        .filter(|l| l.contains("\"event\":\"restarting\"") || l.contains("\"event\":\"exited\""))
        .collect();
    println!(
        "overload: service starts {starts}, restarts or exits {}",
        bad.len()
    );
    for l in console
        .lines()
        .filter(|l| l.contains("discarded") || l.contains("oom"))
    {
        println!("  console: {l}");
    }
    assert_eq!(code, Some(0), "the appliance did not stop cleanly");
    assert!(
        bad.is_empty() && starts == 1,
        "the service was restarted or ended under the flood:\n{}",
        bad.join("\n")
    );
    assert!(
        !console.contains("Out of memory") && !console.contains("oom-kill"),
        "the guest's OOM killer ran:\n{console}"
    );
    assert!(stored > 0, "nothing was stored");
}

/// Lines of every log file on the data disk, read with debugfs after the appliance stopped.
fn stored_lines(disk: &std::path::Path) -> u64 {
    let ls = Command::new("debugfs")
        .args(["-R", "ls -p /log"])
        .arg(disk)
        .output()
        .expect("debugfs");
    let mut total = 0;
    for host in String::from_utf8_lossy(&ls.stdout).lines().filter_map(|l| {
        l.split('/')
            .nth(5)
            .filter(|n| !n.is_empty() && !n.starts_with('.'))
    }) {
        let days = Command::new("debugfs")
            .args(["-R", &format!("ls -p /log/{host}")])
            .arg(disk)
            .output()
            .expect("debugfs");
        for day in String::from_utf8_lossy(&days.stdout)
            .lines()
            .filter_map(|l| l.split('/').nth(5).filter(|n| n.ends_with(".log")))
        {
            let cat = Command::new("debugfs")
                .args(["-R", &format!("cat /log/{host}/{day}")])
                .arg(disk)
                .output()
                .expect("debugfs");
            total += cat.stdout.iter().filter(|&&b| b == b'\n').count() as u64;
        }
    }
    total
}
