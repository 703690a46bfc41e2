//! Data that survives `kill -9` of UML, under real User-Mode Linux (about a minute): a
//! service appends numbered records to its data disk, fsyncs each one and only then prints
//! `synced N` (`src/bin/fsync-writer.rs`); the test kills every UML process (SIGKILL to its
//! process group) at a varying moment while it writes, 20 times in a row on the same disk.
//!
//! After each kill:
//! - a copy of the disk, after the host's journal recovery (`e2fsck -p`), is clean under
//!   `e2fsck -fn`;
//! - the next boot mounts the disk itself (the guest kernel replays the journal; the image has
//!   no e2fsck) and the service finds every record up to at least the last `synced N` the
//!   console showed before the kill, each intact and in order.
//!
//! At the end the VM is stopped cleanly and the original disk, recovered only by the guest,
//! is clean under `e2fsck -fn`.

mod writer;

use e2e::host::output_text;
use e2e::{RootFs, TempDir};
use serde_json::json;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use writer::numbers;

const ITERATIONS: u64 = 20;
const BOOT: Duration = Duration::from_secs(30);

/// The host's journal recovery on a copy, then a full read-only check of the copy.
fn recovered_copy_is_clean(disk: &Path, dir: &TempDir) -> Result<(), String> {
    let copy = dir.join("check.img");
    let (code, out) = output_text(
        Command::new("cp")
            .arg("--sparse=always")
            .arg(disk)
            .arg(&copy),
    );
    if code != 0 {
        return Err(format!("cp: {out}"));
    }
    let (code, p) = output_text(Command::new("e2fsck").arg("-p").arg(&copy));
    if code > 1 {
        return Err(format!("e2fsck -p exit {code}: {p}"));
    }
    let (code, n) = output_text(Command::new("e2fsck").arg("-fn").arg(&copy));
    if code != 0 {
        return Err(format!(
            "e2fsck -fn after -p: exit {code}: {n}\n(-p said: {p})"
        ));
    }
    Ok(())
}

#[test]
fn every_fsynced_record_survives_kill_9_of_uml_20_times() {
    let dir = TempDir::new("kill9").unwrap();
    let image = dir.join("root.img");
    RootFs::new()
        .file("/bin/fsync-writer", writer::exe(), 0o755)
        .dir("/data", 0o755)
        .build(&image)
        .unwrap_or_else(|e| panic!("root image: {e}"));
    let disk = dir.join("data.img");
    e2e::host::mkfs_ext4(&disk, "32M");
    let c = writer::contract(
        "writer1",
        json!({"name": "writer", "argv": ["/bin/fsync-writer", "/data/records"]}),
        false,
    );
    let vm = || writer::vm(&image, &disk, &c);

    let started = Instant::now();
    let mut acknowledged = 0u64; // the last `synced N` seen before a kill
    let mut torn = 0; // boots that found (and cut off) an unacknowledged partial tail
    let mut beyond = 0u64; // records found beyond the last acknowledged one, summed
    for i in 0..ITERATIONS {
        let running = vm().spawn().unwrap_or_else(|e| panic!("boot {i}: {e}"));
        running
            .wait_for_console("writer: verified ", BOOT)
            .unwrap_or_else(|e| panic!("iteration {i}: {e}"));
        // Let it write for 0.3 to 1.5 s, varying with the iteration.
        let wait = 300 + (i * 7919 % 13) * 100;
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(wait) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let pid = running.pid().expect("UML pid") as libc::pid_t;
        // SAFETY: kill(2) on the process group of the UML this test started (process_group(0)).
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
        let outcome = running.wait(Duration::from_secs(10)).unwrap();
        let console = &outcome.console;
        let verified = *numbers(console, "verified").first().expect("verified");
        assert!(
            verified >= acknowledged,
            "iteration {i}: the service found {verified} records, but {acknowledged} had been \
             reported fsynced before the last kill:\n{console}"
        );
        assert!(
            !console.contains("writer: CORRUPT"),
            "iteration {i}:\n{console}"
        );
        if console.contains("writer: discarded ") {
            torn += 1;
        }
        beyond += verified - acknowledged;
        let synced = numbers(console, "synced");
        let last = synced.last().copied().unwrap_or(verified);
        assert!(
            last > verified,
            "iteration {i}: nothing was written before the kill:\n{console}"
        );
        acknowledged = last;
        recovered_copy_is_clean(&disk, &dir).unwrap_or_else(|e| panic!("iteration {i}: {e}"));
        eprintln!(
            "iteration {}: found {verified} records, wrote up to {last}, killed after {wait} ms",
            i + 1
        );
    }

    // A last boot: everything acknowledged is there; then a clean stop.
    let running = vm().spawn().unwrap();
    running
        .wait_for_console("writer: synced ", BOOT)
        .unwrap_or_else(|e| panic!("last boot: {e}"));
    running.mconsole("cad").unwrap();
    let outcome = running.wait(Duration::from_secs(30)).unwrap();
    outcome.assert_clean_poweroff();
    let verified = *numbers(&outcome.console, "verified").first().unwrap();
    assert!(verified >= acknowledged, "{}", outcome.console);
    let (code, out) = output_text(Command::new("e2fsck").arg("-fn").arg(&disk));
    assert_eq!(
        code, 0,
        "e2fsck -fn after the guest's own recoveries: {out}"
    );
    let (_, records) = output_text(
        Command::new("debugfs")
            .args(["-R", "stat /records"])
            .arg(&disk),
    );
    assert!(records.contains("Size: "), "{records}");
    println!(
        "kill -9 loop: {ITERATIONS} kills in {:.0} s, {acknowledged} records acknowledged, \
         all found after each kill; {torn} boots cut off an unacknowledged partial tail; \
         {beyond} records written but not yet acknowledged were found too",
        started.elapsed().as_secs_f64()
    );
}
