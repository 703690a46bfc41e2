//! Issue 28's stream test, on real UML with the real syslog image (rsyslog, built from the
//! checked-in recipe): a numbered stream of messages goes to the appliance over TCP while
//! `host-launch snapshot` runs every second for 20 s (the 10th taken by `host-launch
//! backup`, the same freeze and copy packed into an archive, so that `host-launch restore`
//! can bring it back). Every copy passes `e2fsck -fn` and holds a prefix of the stream with
//! no torn record; the final disk holds every message sent, once, in order; the 10th,
//! restored into a new appliance, holds its prefix and accepts more.
//!
//! The host never reads a guest-written file system as root: `e2fsck` and `debugfs` run as
//! an unprivileged uid that owns the copy meanwhile.
//!
//! Needs root (network namespace, TAP devices); fails, rather than skips, without it.

mod common;
mod lab;

use lab::{debugfs_as, Lab};
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The HOSTNAME the stream's messages carry: their file is `/log/streamer/<day>.log`.
const SENDER: &str = "streamer";

/// The text of message `n`: numbered, with a fixed tail so a cut record shows.
fn message(n: u64) -> String {
    format!("stream-{n:07} the quick brown fox jumps over the lazy dog end")
}

/// A blank (all zeroes, sparse) data disk.
fn blank_disk(path: &Path, mib: u64) {
    std::fs::File::create(path)
        .unwrap()
        .set_len(mib << 20)
        .unwrap();
}

fn syslog_spec(lab: &Lab, name: &str, disk: &Path, tap: &str, address: &str) -> serde_json::Value {
    serde_json::json!({
        "name": name,
        "image": lab.join("syslog.img"),
        "memory_mib": 64,
        "disks": [{"file": disk}],
        "network": lab.network(tap, address),
    })
}

/// `e2fsck -fn` of `disk` as `uid`: clean, nothing to replay.
fn assert_fsck_clean_as(disk: &Path, uid: u32) {
    std::os::unix::fs::chown(disk, Some(uid), Some(uid)).unwrap();
    let (code, out) = e2e::host::output_text(e2e::host::as_uid(
        Command::new("e2fsck").arg("-fn").arg(disk),
        uid,
    ));
    std::os::unix::fs::chown(disk, Some(0), Some(0)).unwrap();
    assert_eq!(code, 0, "e2fsck -fn {}: {out}", disk.display());
}

/// The stream's records on `disk` (every day file of the sender, in order): the numbers of
/// the messages, asserted whole (each line ends with its full text and a newline).
fn stream_on(disk: &Path, uid: u32) -> Vec<u64> {
    let mut days: Vec<String> = debugfs_as(disk, uid, &format!("ls -p /log/{SENDER}"))
        .lines()
        .filter_map(|l| l.split('/').nth(5).map(str::to_string))
        .filter(|n| n.ends_with(".log"))
        .collect();
    days.sort();
    let mut numbers = Vec::new();
    for day in days {
        let text = debugfs_as(disk, uid, &format!("cat /log/{SENDER}/{day}"));
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "a torn last record in {}: {:?}",
            disk.display(),
            text.lines().last()
        );
        for line in text.lines() {
            let msg = line
                .split_once("stream-")
                .map(|(_, m)| format!("stream-{m}"))
                .unwrap_or_else(|| panic!("not a stream record: {line:?}"));
            let n: u64 = msg[7..14]
                .parse()
                .unwrap_or_else(|_| panic!("a torn record: {line:?}"));
            assert_eq!(msg, message(n), "a torn record: {line:?}");
            numbers.push(n);
        }
    }
    numbers
}

/// `numbers` are 1..=N for some N: a prefix of the stream, each message once.
#[track_caller]
fn assert_prefix(numbers: &[u64], what: &str) -> u64 {
    for (i, n) in numbers.iter().enumerate() {
        assert_eq!(*n, i as u64 + 1, "{what}: record {i} is message {n}");
    }
    numbers.len() as u64
}

/// A TCP connection to `to` from inside the lab's namespace (the socket stays there).
fn connect(lab: &Lab, to: &str) -> TcpStream {
    let to: SocketAddr = to.parse().unwrap();
    let s = lab
        .ns
        .enter(move || TcpStream::connect_timeout(&to, Duration::from_secs(5)))
        .expect("entering the namespace")
        .unwrap_or_else(|e| panic!("connecting to {to}: {e}"));
    s.set_nodelay(true).unwrap();
    s
}

/// Message `n` as an LF-framed RFC 5424 line.
fn framed(n: u64) -> String {
    format!("<134>1 - {SENDER} stream - - - {}\n", message(n))
}

/// Sends message 1, 2, ... over `s` every `every` until `stop`; `sent` counts them.
fn stream(
    mut s: TcpStream,
    every: Duration,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) {
            n += 1;
            s.write_all(framed(n).as_bytes())
                .expect("the collector took the stream");
            sent.store(n, Ordering::Relaxed);
            std::thread::sleep(every);
        }
    })
}

#[test]
fn snapshots_every_second_of_a_syslog_stream_hold_prefixes_and_the_10th_restores() {
    let lab = Lab::new("snapstream", None);
    lab.image("syslog");
    let disk = lab.join("data0.img");
    blank_disk(&disk, 64);
    let up = lab.run_appliance(&syslog_spec(&lab, "snapsys", &disk, "tsnap", "192.0.2.14"));
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let sender = stream(
        connect(&lab, "192.0.2.14:514"),
        Duration::from_millis(2),
        stop.clone(),
        sent.clone(),
    );
    let snaps = lab.join("snaps");
    let backups = lab.join("backups");
    let started = Instant::now();
    let mut prefixes = Vec::new();
    let mut tenth = None;
    for i in 1..=20u32 {
        let due = started + Duration::from_secs(u64::from(i));
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let sent_before = sent.load(Ordering::Relaxed);
        let (verb, to) = if i == 10 {
            ("backup", &backups)
        } else {
            ("snapshot", &snaps)
        };
        let out = lab.host_launch(&[verb, "snapsys", "--to", to.to_str().unwrap()]);
        let text = lab::shown(&out);
        assert!(out.status.success(), "{verb} {i}: {text}");
        assert!(text.contains(": consistent (frozen "), "{verb} {i}: {text}");
        let frozen = e2e::snapshot_output::frozen_ms(&text)
            .unwrap_or_else(|| panic!("the frozen time in: {text}"));
        if i == 10 {
            let archive = e2e::snapshot_output::archive(&text)
                .unwrap_or_else(|| panic!("the archive in: {text}"));
            tenth = Some(archive);
            eprintln!("backup {i}: frozen {frozen} ms, {sent_before}+ sent");
            continue;
        }
        let copy = e2e::snapshot_output::first_copy(&text)
            .unwrap_or_else(|| panic!("the copy in: {text}"));
        let uid = 1_610_800_000 + i;
        assert_fsck_clean_as(&copy, uid);
        let held = assert_prefix(&stream_on(&copy, uid), &format!("snapshot {i}"));
        eprintln!("snapshot {i}: frozen {frozen} ms, holds 1..={held} of {sent_before}+ sent");
        prefixes.push(held);
        std::fs::remove_dir_all(copy.parent().unwrap()).unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    sender.join().expect("the sender");
    let total = sent.load(Ordering::Relaxed);
    assert!(
        prefixes.windows(2).all(|w| w[0] <= w[1]) && prefixes.last() > prefixes.first(),
        "the snapshots' prefixes do not grow: {prefixes:?}"
    );
    // rsyslog writes what it received before it stops (a clean stop drains its queue).
    std::thread::sleep(Duration::from_secs(1));
    let (code, all) = up.stop();
    assert_eq!(code, Some(0), "{all}");
    let fin = stream_on(&disk, 1_610_800_100);
    assert_eq!(
        assert_prefix(&fin, "the final disk"),
        total,
        "messages lost"
    );
    eprintln!("the final disk holds all {total} messages");

    // The 10th, restored into a new disk, serves in a new appliance: it holds that prefix,
    // is ready (accepting on 514) and takes one more message after it.
    let archive = tenth.expect("the 10th backup");
    let restored = lab.join("restored.img");
    let out = lab.host_launch(&[
        "restore",
        archive.to_str().unwrap(),
        "--disk",
        restored.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "restore: {}", lab::shown(&out));
    assert_fsck_clean_as(&restored, 1_610_800_101);
    let held = assert_prefix(&stream_on(&restored, 1_610_800_101), "the 10th");
    assert!(
        prefixes[8] <= held && held <= prefixes[9],
        "the 10th holds 1..={held}, between the 9th's {} and the 11th's {}",
        prefixes[8],
        prefixes[9]
    );
    let again = lab.run_appliance(&syslog_spec(
        &lab,
        "snaprest",
        &restored,
        "trest",
        "192.0.2.15",
    ));
    connect(&lab, "192.0.2.15:514")
        .write_all(framed(held + 1).as_bytes())
        .expect("the restored appliance takes a message");
    std::thread::sleep(Duration::from_secs(1));
    let (code, all) = again.stop();
    assert_eq!(code, Some(0), "{all}");
    let after = stream_on(&restored, 1_610_800_102);
    assert_eq!(assert_prefix(&after, "the restored appliance"), held + 1);
    eprintln!(
        "the 10th restored: 1..={held}, then message {} taken",
        held + 1
    );
}
