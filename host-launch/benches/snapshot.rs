//! Snapshot benchmark: how long `host-launch snapshot` keeps the service frozen, per copy
//! method and disk size, and how fast `backup` and `restore` move a large disk.
//!
//! Disks (ext4 made by the host; the guest's service appends lines without pause, see
//! tests/common/writer.rs): 64 MiB as mkfs leaves it, and 1 GiB holding 768 MiB of random
//! bytes (written into it by mkfs.ext4 -d), so the copy has data to move. Ten snapshots per
//! disk and method: the guest's count of the time frozen (`thawed.frozen_ms`) and the host's,
//! median, min and max. Methods: a sparse copy (the disk on the host's own file system,
//! /tmp, when it has no reflinks) and a reflink (the disk on an XFS with `reflink=1` this
//! benchmark makes on a loop device). Then, for the 1 GiB disk on the host's file system,
//! `host-launch backup` and `restore` (3 rounds, median): MB/s of the disk's 1024 MiB and of
//! its allocated bytes (random data: gzip's worst case).
//!
//! ```sh
//! cargo bench -p host-launch --bench snapshot [-- --rounds 10]
//! ```
//!
//! As root; needs busybox-static and xfsprogs (scripts/setup). Exits 1 if a snapshot fails.
//! About 3 GiB of scratch space under /tmp, removed at the end.

#[path = "../tests/common/mod.rs"]
mod common;

use common::writer::{image, spec, WRITER};
use common::{host_launch, launch, require_root_and_busybox, temp_dir, Launch};
use e2e::blockdev::LoopDevice;
use e2e::host::output_text;
use e2e::snapshot_output;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The bound each snapshot asks for: long enough for a 1 GiB sparse copy on a loaded host,
/// so no copy is cut by the guest's own thaw.
const BOUND: &str = "60";

fn rounds() -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
}

/// A data disk to benchmark on.
struct Disk {
    label: &'static str,
    size: &'static str,
    /// A directory whose files mkfs.ext4 puts on the disk.
    content: Option<PathBuf>,
}

/// The appliance on a new `disk` in `dir`, ready and writing.
fn start(dir: &Path, state: &Path, writer: &Path, disk: &Disk) -> (Launch, String, PathBuf) {
    let data = dir.join(format!("data-{}.img", disk.size));
    let mut mkfs = Command::new("mkfs.ext4");
    mkfs.args(["-q", "-F"]);
    if let Some(c) = &disk.content {
        mkfs.arg("-d").arg(c);
    }
    let (code, out) = output_text(mkfs.arg(&data).arg(disk.size));
    assert_eq!(code, 0, "mkfs.ext4: {out}");
    let name = format!("bench{}", disk.size.to_lowercase());
    let s = spec(dir, &name, writer, &data);
    let mut run = launch(&s, &name, state);
    run.wait_ready(Duration::from_secs(60)).expect("ready");
    std::thread::sleep(Duration::from_millis(500));
    (run, name, data)
}

/// Frozen times (guest, host) in ms of `rounds` snapshots of appliance `name`, and the
/// method the output names.
fn measure(dir: &Path, state: &Path, name: &str, rounds: usize) -> (Vec<u64>, Vec<u64>, String) {
    let (mut guest, mut host, mut method) = (Vec::new(), Vec::new(), String::new());
    for _ in 0..rounds {
        let snaps = dir.join("snaps");
        let (code, out) = output_text(
            host_launch(state, &["snapshot", name, "--bound", BOUND, "--to"]).arg(&snaps),
        );
        if code != 0 || !out.contains(": consistent (frozen ") {
            eprintln!("snapshot failed: {out}");
            std::process::exit(1);
        }
        guest.push(snapshot_output::frozen_ms(&out).unwrap_or(0));
        host.push(snapshot_output::host_frozen_ms(&out).unwrap_or(0));
        method = out
            .lines()
            .nth(1)
            .and_then(|l| l.rsplit(" (").next())
            .and_then(|r| r.split(',').next())
            .unwrap_or_default()
            .to_string();
        let _ = std::fs::remove_dir_all(&snaps);
    }
    (guest, host, method)
}

fn stats(v: &mut [u64]) -> String {
    v.sort_unstable();
    format!(
        "median {} ms, min {}, max {}",
        v[v.len() / 2],
        v[0],
        v[v.len() - 1]
    )
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Bytes allocated to a file.
fn allocated(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.blocks() * 512).unwrap_or(0)
}

/// Each disk's frozen times on the file system holding `dir`.
fn on_each_disk(dir: &Path, state: &Path, writer: &Path, disks: &[Disk], fs: &str, rounds: usize) {
    for d in disks {
        let (run, name, data) = start(dir, state, writer, d);
        let (mut g, mut h, m) = measure(dir, state, &name, rounds);
        println!(
            "{} ({} MiB allocated) on {fs}: {m}: frozen (guest) {}; seen by the host {}",
            d.label,
            allocated(&data) >> 20,
            stats(&mut g),
            stats(&mut h)
        );
        let _ = run.stop();
        let _ = std::fs::remove_file(&data);
    }
}

/// `backup` and `restore` of the 1 GiB disk, 3 rounds: MB/s.
fn backup_and_restore(dir: &Path, state: &Path, writer: &Path, disk: &Disk) {
    let (run, name, data) = start(dir, state, writer, disk);
    let mib = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0) as f64 / 1048576.0;
    let (size, used) = (mib(&data), allocated(&data) as f64 / 1048576.0);
    let backups = dir.join("backups");
    let (mut b_rate, mut r_rate, mut archive_mib) = (Vec::new(), Vec::new(), 0.0);
    for round in 0..3 {
        let t = Instant::now();
        let (code, out) = output_text(
            host_launch(
                state,
                &["backup", &name, "--keep", "1", "--bound", BOUND, "--to"],
            )
            .arg(&backups),
        );
        let secs = t.elapsed().as_secs_f64();
        if code != 0 {
            eprintln!("backup failed: {out}");
            std::process::exit(1);
        }
        b_rate.push(size / secs);
        let archive = snapshot_output::archive(&out).expect("the archive in the output");
        archive_mib = mib(&archive);
        let target = dir.join(format!("restored{round}.img"));
        let t = Instant::now();
        let (code, out) = output_text(
            host_launch(state, &["restore"])
                .arg(&archive)
                .arg("--disk")
                .arg(&target),
        );
        let secs = t.elapsed().as_secs_f64();
        if code != 0 {
            eprintln!("restore failed: {out}");
            std::process::exit(1);
        }
        r_rate.push(size / secs);
        let _ = std::fs::remove_file(&target);
    }
    let (b, r) = (median(&mut b_rate), median(&mut r_rate));
    println!(
        "backup of the {} ({used:.0} MiB allocated, archive {archive_mib:.0} MiB): \
         median {b:.0} MiB/s of the disk, {:.0} MiB/s of its data",
        disk.label,
        b * used / size
    );
    println!(
        "restore of it into a new file: median {r:.0} MiB/s of the disk, {:.0} MiB/s of its data",
        r * used / size
    );
    let _ = run.stop();
    let _ = std::fs::remove_dir_all(&backups);
    let _ = std::fs::remove_file(&data);
}

fn main() {
    require_root_and_busybox();
    let rounds = rounds();
    let dir = temp_dir("snapbench");
    let state = dir.join("state");
    let writer = image(dir.path(), "writer", WRITER, "always");
    let content = dir.join("content");
    std::fs::create_dir(&content).unwrap();
    let (code, out) = output_text(
        Command::new("head")
            .args(["-c", "768M", "/dev/urandom"])
            .stdout(std::fs::File::create(content.join("random")).unwrap()),
    );
    assert_eq!(code, 0, "768 MiB of random bytes: {out}");
    let disks = [
        Disk {
            label: "64 MiB disk",
            size: "64M",
            content: None,
        },
        Disk {
            label: "1 GiB disk",
            size: "1G",
            content: Some(content.clone()),
        },
    ];

    let plain = dir.join("plain");
    std::fs::create_dir(&plain).unwrap();
    let fs = format!("the host's {}", fs_type(&plain));
    on_each_disk(&plain, &state, &writer, &disks, &fs, rounds);

    let xfs_file = dir.join("xfs.img");
    std::fs::File::create(&xfs_file)
        .unwrap()
        .set_len(3 << 30)
        .unwrap();
    let (code, out) = output_text(
        Command::new("mkfs.xfs")
            .args(["-q", "-m", "reflink=1"])
            .arg(&xfs_file),
    );
    assert_eq!(code, 0, "mkfs.xfs (package xfsprogs): {out}");
    let lo = LoopDevice::attach(&xfs_file).expect("a loop device");
    let mnt = dir.join("xfs");
    std::fs::create_dir(&mnt).unwrap();
    let (code, out) = output_text(Command::new("mount").arg(lo.path()).arg(&mnt));
    assert_eq!(code, 0, "mount: {out}");
    std::fs::set_permissions(&mnt, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    on_each_disk(&mnt, &state, &writer, &disks, "XFS (reflink=1)", rounds);
    let _ = Command::new("umount").arg(&mnt).status();
    drop(lo);
    let _ = std::fs::remove_file(&xfs_file);

    backup_and_restore(&plain, &state, &writer, &disks[1]);
    println!("{rounds} snapshots each; CPU: {}", cpu());
}

fn fs_type(p: &Path) -> String {
    let (_, out) = output_text(Command::new("findmnt").args(["-no", "FSTYPE", "-T"]).arg(p));
    out.trim().to_string()
}

fn cpu() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_default()
}
