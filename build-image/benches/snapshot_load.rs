//! What snapshots cost the service (issue 28's figure): the syslog image (rsyslog) under a
//! UDP stream above what it can store (`--offered` ~100-byte RFC 5424 messages a second,
//! paced in steps of 20, as the overload bench does), in windows of `--seconds` alternating
//! without snapshots and with `host-launch snapshot` every second (`--rounds` windows with,
//! one more without: off, on, off, ...). The service's throughput in a window is what it
//! stored: each window ends with a snapshot (also in the windows "without", one per window)
//! whose copy's line count, read by `debugfs` as an unprivileged uid (never root), says how
//! many messages the disk held then. Prints each window's rate, the medians and the drop,
//! and the snapshots' frozen times.
//!
//! UDP rather than TCP: a TCP sender that outpaces the guest makes the host's stack send it
//! GSO frames, which UML's vector driver drops with "Incoming GSO frames and GRO disabled"
//! (seen here: the stream stalls for seconds), so a TCP rate would measure that stall.
//!
//! ```sh
//! cargo bench -p build-image --bench snapshot_load [-- --rounds 3 --seconds 10 --offered 40000]
//! ```
//!
//! As root (network namespace, TAP device).

#[path = "../tests/lab/mod.rs"]
mod lab;

use lab::{debugfs_as, Lab};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const GUEST: &str = "192.0.2.14";

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Sends numbered messages over `s`, `per_second` of them, until `stop`.
fn sender(
    s: UdpSocket,
    per_second: u64,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let t = Instant::now();
        let mut n: u64 = 0;
        while !stop.load(Ordering::Relaxed) {
            n += 1;
            let line = format!("<134>1 - loadgen bench - - - load-{n:09} the quick brown fox");
            let _ = s.send(line.as_bytes());
            sent.store(n, Ordering::Relaxed);
            if n.is_multiple_of(20) {
                let due = Duration::from_secs_f64(n as f64 / per_second as f64);
                std::thread::sleep(due.saturating_sub(t.elapsed()));
            }
        }
    })
}

/// One snapshot into `to`: the guest's frozen time (ms) and the copy.
fn snapshot(lab: &Lab, name: &str, to: &Path) -> (u64, PathBuf) {
    let out = lab.host_launch(&["snapshot", name, "--to", to.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "snapshot: {}", lab::shown(&out));
    assert!(text.contains(": consistent (frozen "), "{text}");
    let frozen = e2e::snapshot_output::frozen_ms(&text).unwrap_or(0);
    let copy = e2e::snapshot_output::first_copy(&text).expect("the copy in the output");
    (frozen, copy)
}

/// The messages a copy holds (the load generator's lines), its directory then removed.
fn stored(copy: &Path) -> u64 {
    let uid = 1_610_900_000;
    let days = debugfs_as(copy, uid, "ls -p /log/loadgen");
    let n = days
        .lines()
        .filter_map(|l| l.split('/').nth(5).filter(|n| n.ends_with(".log")))
        .map(|day| {
            debugfs_as(copy, uid, &format!("cat /log/loadgen/{day}"))
                .matches('\n')
                .count() as u64
        })
        .sum();
    let _ = std::fs::remove_dir_all(copy.parent().unwrap());
    n
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let rounds = arg("--rounds", 3);
    let seconds = arg("--seconds", 10);
    let offered = arg("--offered", 40000);
    let lab = Lab::new("snapload", None);
    let image = lab.image("syslog");
    let disk = lab.join("logs.img");
    std::fs::File::create(&disk)
        .and_then(|f| f.set_len(1 << 30))
        .expect("the data disk");
    let tap = format!("tsl{}", std::process::id() % 100_000);
    let spec = serde_json::json!({
        "name": "snapload", "image": image, "memory_mib": 64,
        "disks": [{"file": disk}], "network": lab.network(&tap, GUEST),
    });
    let up = lab.run_appliance(&spec);
    let s = lab
        .ns
        .enter(|| {
            let s = UdpSocket::bind("0.0.0.0:0")?;
            s.connect((GUEST, 514))?;
            Ok::<_, std::io::Error>(s)
        })
        .expect("the namespace")
        .expect("a UDP socket to the collector");
    let (stop, sent) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let thread = sender(s, offered, stop.clone(), sent.clone());
    std::thread::sleep(Duration::from_secs(3)); // warm-up
    let to = lab.join("snaps");
    let (_, copy) = snapshot(&lab, "snapload", &to);
    let (mut held, mut at) = (stored(&copy), Instant::now());
    let (mut off, mut on, mut frozen) = (Vec::new(), Vec::new(), Vec::new());
    for w in 0..(2 * rounds + 1) {
        let with = w % 2 == 1;
        for i in 1..seconds {
            let due = at + Duration::from_secs(i);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            if with {
                let (ms, copy) = snapshot(&lab, "snapload", &to);
                frozen.push(ms);
                let _ = std::fs::remove_dir_all(copy.parent().unwrap());
            }
        }
        std::thread::sleep(
            (at + Duration::from_secs(seconds)).saturating_duration_since(Instant::now()),
        );
        let (ms, copy) = snapshot(&lab, "snapload", &to);
        if with {
            frozen.push(ms);
        }
        let now = stored(&copy);
        let rate = (now - held) as f64 / at.elapsed().as_secs_f64();
        (held, at) = (now, Instant::now());
        let label = if with {
            "a snapshot every second"
        } else {
            "one snapshot at its end"
        };
        println!("window {}: {label}: {rate:.0} messages/s stored", w + 1);
        if with {
            on.push(rate);
        } else {
            off.push(rate);
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = thread.join();
    let total = sent.load(Ordering::Relaxed);
    let (code, all) = up.stop();
    assert_eq!(code, Some(0), "{all}");
    let (m_off, m_on) = (median(&mut off), median(&mut on));
    frozen.sort_unstable();
    println!(
        "syslog over UDP, {offered} messages/s offered: median {m_off:.0} stored/s without \
         snapshots, {m_on:.0} with one a second ({:+.1} %); {} snapshots frozen median {} ms \
         (max {}); sent {total}",
        (m_on / m_off - 1.0) * 100.0,
        frozen.len(),
        frozen.get(frozen.len() / 2).copied().unwrap_or(0),
        frozen.last().copied().unwrap_or(0)
    );
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|r| r.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "{rounds} windows of {seconds} s with snapshots; CPU: {cpu}; load average {}",
        load.trim()
    );
}
