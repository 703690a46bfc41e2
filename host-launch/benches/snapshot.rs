//! Snapshot benchmark: how long `host-launch snapshot` keeps the service frozen, per copy
//! method, for a 64 MiB data disk (`ext4` made by the host, written by the guest's service
//! without pause; see tests/common/writer.rs): ten snapshots per method, the guest's count
//! of the time frozen (`thawed.frozen_ms`) and the host's, median, min and max. Methods: a
//! sparse copy (the disk on the host's own file system, /tmp, when it has no reflinks) and a
//! reflink (the disk on an XFS with `reflink=1` this benchmark makes on a loop device).
//!
//! ```sh
//! cargo bench -p host-launch --bench snapshot [-- --rounds 10]
//! ```
//!
//! As root; needs busybox-static and xfsprogs (scripts/setup). Exits 1 if a snapshot fails.

#[path = "../tests/common/mod.rs"]
mod common;

use common::writer::{image, spec, WRITER};
use common::{host_launch, launch, require_root_and_busybox, temp_dir};
use e2e::blockdev::LoopDevice;
use e2e::host::output_text;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn rounds() -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
}

/// Frozen times (guest, host) in ms of `rounds` snapshots of a writer on a disk in `dir`,
/// and the method the output names.
fn measure(dir: &Path, state: &Path, writer: &Path, rounds: usize) -> (Vec<u64>, Vec<u64>, String) {
    let data = dir.join("data.img");
    e2e::host::mkfs_ext4(&data, "64M");
    let name = format!("bench{}", dir.display().to_string().len() % 100);
    let s = spec(dir, &name, writer, &data);
    let mut run = launch(&s, &name, state);
    run.wait_ready(Duration::from_secs(60)).expect("ready");
    std::thread::sleep(Duration::from_millis(500));
    let (mut guest, mut host, mut method) = (Vec::new(), Vec::new(), String::new());
    for _ in 0..rounds {
        let snaps = dir.join("snaps");
        let (code, out) = output_text(host_launch(state, &["snapshot", &name, "--to"]).arg(&snaps));
        if code != 0 || !out.contains(": consistent (frozen ") {
            eprintln!("snapshot failed: {out}");
            std::process::exit(1);
        }
        let after = out
            .split(": consistent (frozen ")
            .nth(1)
            .unwrap_or_default();
        let mut words = after.split(' ');
        guest.push(words.next().and_then(|v| v.parse().ok()).unwrap_or(0));
        host.push(
            after
                .split("in the guest, ")
                .nth(1)
                .and_then(|r| r.split(' ').next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
        );
        method = out
            .lines()
            .nth(1)
            .and_then(|l| l.rsplit(" (").next())
            .and_then(|r| r.split(',').next())
            .unwrap_or_default()
            .to_string();
        let _ = std::fs::remove_dir_all(&snaps);
    }
    let _ = run.stop();
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

fn main() {
    require_root_and_busybox();
    let rounds = rounds();
    let dir = temp_dir("snapbench");
    let state = dir.join("state");
    let writer = image(dir.path(), "writer", WRITER, "always");

    let plain = dir.join("plain");
    std::fs::create_dir(&plain).unwrap();
    let (mut g, mut h, m) = measure(&plain, &state, &writer, rounds);
    println!(
        "64 MiB disk on the host's {}: {m}: frozen (guest) {}; seen by the host {}",
        fs_type(&plain),
        stats(&mut g),
        stats(&mut h)
    );

    let xfs_file = dir.join("xfs.img");
    std::fs::File::create(&xfs_file)
        .unwrap()
        .set_len(1 << 30)
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
    let (mut g, mut h, m) = measure(&mnt, &state, &writer, rounds);
    let _ = Command::new("umount").arg(&mnt).status();
    drop(lo);
    println!(
        "64 MiB disk on XFS (reflink=1): {m}: frozen (guest) {}; seen by the host {}",
        stats(&mut g),
        stats(&mut h)
    );
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
