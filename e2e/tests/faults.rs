//! Faults around the data disks, under real User-Mode Linux (root for the tmpfs mount):
//!
//! - the host file system under a data disk fills up while the guest writes: the guest sees
//!   write errors, guest-init and the service keep going, the VM still stops cleanly, and what
//!   was acknowledged before is intact (a second boot, with room again, finds it; the disk is
//!   clean under `e2fsck -fn` after that clean stop);
//! - a missing or unreadable config device or data disk at boot: a clear fatal error, a clean
//!   power-off, and no byte of any disk changed (SHA-256 before and after);
//! - a service that ignores the stop signal is killed after its stop timeout, the data disk is
//!   unmounted before the power-off (`disks_unmounted`), and it is clean under `e2fsck -fn`
//!   with every acknowledged record on it.

mod writer;

use e2e::host::{assert_fsck_clean, mkfs_ext4, output_text};
use e2e::{RootFs, TempDir, Vm, VmOutcome};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use writer::numbers;

const BOOT: Duration = Duration::from_secs(30);

/// guest-init, busybox sh, the writer, /data, and e2fsck (so guest-init checks the disk).
fn image(dir: &TempDir) -> PathBuf {
    let image = dir.join("root.img");
    RootFs::new()
        .busybox(&["sh"])
        .file("/bin/fsync-writer", writer::exe(), 0o755)
        .dir("/data", 0o755)
        .program_with_libs("/sbin/e2fsck", "/sbin/e2fsck")
        .and_then(|r| r.build(&image))
        .unwrap_or_else(|e| panic!("root image: {e}"));
    image
}

fn contract(service: Value, format_if_blank: bool) -> contract::Contract {
    writer::contract("faults1", service, format_if_blank)
}

fn sha256(path: &Path) -> String {
    let (code, out) = output_text(Command::new("sha256sum").arg(path));
    assert_eq!(code, 0, "{out}");
    out.split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// The records file on a (stopped) disk: how many valid records it starts with.
fn records_on(disk: &Path) -> u64 {
    let out = Command::new("debugfs")
        .args(["-R", "cat /records"])
        .arg(disk)
        .output()
        .unwrap();
    let mut n = 0;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        match line
            .split_whitespace()
            .next()
            .and_then(|x| x.parse::<u64>().ok())
        {
            Some(x) if x == n + 1 && line.len() == 31 => n = x,
            _ => break,
        }
    }
    n
}

fn cad(vm: e2e::RunningVm, within: Duration) -> VmOutcome {
    vm.mconsole("cad")
        .unwrap_or_else(|e| panic!("mconsole cad: {e}\n{}", vm.console()));
    let outcome = vm.wait(within).unwrap();
    eprintln!("{}", outcome.report());
    outcome
}

/// A tmpfs mounted for one test, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: PathBuf, size: &str) -> Tmpfs {
        std::fs::create_dir_all(&dir).unwrap();
        let (code, out) = output_text(
            Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
                .arg(&dir),
        );
        assert_eq!(code, 0, "mount -t tmpfs (this test needs root): {out}");
        Tmpfs(dir)
    }

    fn resize(&self, size: &str) {
        let (code, out) = output_text(
            Command::new("mount")
                .args(["-o", &format!("remount,size={size}")])
                .arg(&self.0),
        );
        assert_eq!(code, 0, "remount: {out}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_host_disk_gives_write_errors_not_hangs_and_keeps_what_was_written() {
    let dir = TempDir::new("diskfull").unwrap();
    let image = image(&dir);
    let small = Tmpfs::mount(dir.join("small"), "64m");
    let disk = small.0.join("data.img");
    mkfs_ext4(&disk, "128M");
    // Room for what mkfs wrote plus 3 MiB: the guest's 128 MiB file system does not fit.
    let (_, du) = output_text(Command::new("du").args(["-k"]).arg(&disk));
    let used_kib: u64 = du.split_whitespace().next().unwrap().parse().unwrap();
    small.resize(&format!("{}k", used_kib + 3 * 1024));
    let c = contract(
        json!({"name": "writer", "argv": ["/bin/fsync-writer", "/data/records",
                                          "--filler", "/data/filler", "--filler-kib", "256"],
               "stop_timeout_ms": 2000}),
        false,
    );
    let vm = writer::vm(&image, &disk, &c).spawn().unwrap();
    vm.wait_for_console("writer: error", Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("no write error: {e}"));
    // The service goes on (it reports each failure and retries): more lines come.
    let lines = vm.console().lines().count();
    std::thread::sleep(Duration::from_secs(1));
    let console = vm.console();
    assert!(
        console.lines().count() > lines,
        "nothing happened for a second after the first error:\n{console}"
    );
    let asked = Instant::now();
    let outcome = cad(vm, Duration::from_secs(40));
    let stop_took = asked.elapsed();
    outcome.assert_clean_poweroff();
    let off = outcome.expect_event("power_off");
    assert_eq!(off.str("reason"), Some("requested"), "{:?}", off.json);
    let unmounted = outcome.expect_event("disks_unmounted");
    let acknowledged = numbers(&outcome.console, "synced")
        .last()
        .copied()
        .unwrap_or(0);
    let errors: Vec<&str> = outcome
        .console
        .lines()
        .filter(|l| l.starts_with("writer: error"))
        .collect();
    assert!(acknowledged > 0, "{}", outcome.console);

    // Room again: the records acknowledged before the disk filled are all there.
    small.resize("512m");
    let c2 = contract(
        json!({"name": "writer", "argv": ["/bin/fsync-writer", "/data/records"]}),
        false,
    );
    let vm = writer::vm(&image, &disk, &c2).spawn().unwrap();
    vm.wait_for_console("writer: synced", BOOT)
        .unwrap_or_else(|e| panic!("second boot: {e}"));
    let second = cad(vm, Duration::from_secs(30));
    second.assert_clean_poweroff();
    let verified = numbers(&second.console, "verified")[0];
    assert!(
        verified >= acknowledged,
        "{acknowledged} acknowledged before the disk filled, {verified} found:\n{}",
        second.console
    );
    assert!(!second.console.contains("CORRUPT"), "{}", second.console);
    assert_fsck_clean(&disk);
    assert!(records_on(&disk) >= verified);
    println!(
        "disk full: first error after {acknowledged} records; {} error lines (e.g. {:?}); \
         stop took {:.1} s ({:?}); second boot found {verified} records; fsck clean",
        errors.len(),
        errors.first().copied().unwrap_or_default(),
        stop_took.as_secs_f64(),
        unmounted.field("disks")
    );
}

/// Boots, expects a fatal error naming `field` and a clean power-off, and checks that no disk
/// changed.
fn fatal_and_untouched(vm: Vm, disks: &[&Path], field: &str, message: &str) {
    let before: Vec<String> = disks.iter().map(|d| sha256(d)).collect();
    let outcome = vm.timeout(Duration::from_secs(30)).run().unwrap();
    eprintln!("{}", outcome.report());
    outcome.assert_clean_poweroff();
    let fatal = outcome.expect_event("fatal");
    assert_eq!(fatal.str("field"), Some(field), "{:?}", fatal.json);
    assert!(
        outcome.console.contains(message),
        "{message:?} not on the console:\n{}",
        outcome.console
    );
    let off = outcome.expect_event("power_off");
    assert_eq!(off.str("reason"), Some("fatal"), "{:?}", off.json);
    assert!(outcome.event("service_started").is_none());
    let after: Vec<String> = disks.iter().map(|d| sha256(d)).collect();
    assert_eq!(before, after, "a disk changed: {disks:?}");
}

#[test]
fn a_missing_or_unreadable_config_device_or_data_disk_is_fatal_and_changes_no_disk() {
    let dir = TempDir::new("bootfaults").unwrap();
    let image = image(&dir);
    let disk = dir.join("data.img");
    mkfs_ext4(&disk, "16M");
    let c = contract(
        json!({"argv": ["/bin/fsync-writer", "/data/records"]}),
        true,
    );

    // The config device named on the command line is not attached.
    fatal_and_untouched(
        Vm::new(&image)
            .disk(&disk, false)
            .cmdline_token("hostcontract_dev=/dev/ubdc"),
        &[&image, &disk],
        "contract",
        "/dev/ubdc",
    );
    // The config device holds garbage.
    fatal_and_untouched(
        Vm::new(&image)
            .disk(&disk, false)
            .config_device_bytes(vec![0x5a; contract::blockdev::MIN_DEVICE_BYTES]),
        &[&image, &disk],
        "contract",
        "magic",
    );
    // The data disk is not attached.
    fatal_and_untouched(
        Vm::new(&image).contract_cmdline(&c),
        &[&image],
        "mounts.disks[0].device",
        "/dev/ubdb does not exist",
    );
    // The data disk holds no file system guest-init can read; it is not blank, so it is not
    // formatted either (format_if_blank), and not repaired.
    let junk = dir.join("junk.img");
    let mut bytes = vec![0u8; 8 << 20];
    for (i, b) in bytes.iter_mut().enumerate().take(2 << 20) {
        *b = (i.wrapping_mul(2654435761) >> 13) as u8;
    }
    std::fs::write(&junk, bytes).unwrap();
    fatal_and_untouched(
        Vm::new(&image).disk(&junk, false).contract_cmdline(&c),
        &[&image, &junk],
        "mounts.disks[0]",
        "fatal",
    );
}

#[test]
fn a_service_ignoring_stop_is_killed_in_time_and_the_disk_is_unmounted_clean() {
    let dir = TempDir::new("stubborn").unwrap();
    let image = image(&dir);
    let disk = dir.join("data.img");
    mkfs_ext4(&disk, "16M");
    let c = contract(
        json!({"name": "writer",
               "argv": ["/bin/sh", "-c",
                        "trap '' TERM INT HUP; exec /bin/fsync-writer /data/records --interval-ms 5"],
               "stop_timeout_ms": 1500}),
        false,
    );
    let vm = writer::vm(&image, &disk, &c).spawn().unwrap();
    vm.wait_for_console("writer: synced 20", BOOT)
        .unwrap_or_else(|e| panic!("{e}"));
    let asked = Instant::now();
    let outcome = cad(vm, Duration::from_secs(30));
    let took = asked.elapsed();
    outcome.assert_clean_poweroff();
    outcome.assert_events_in_order(&[
        "shutting_down",
        "stop_timeout",
        "exited",
        "disks_unmounted",
        "power_off",
    ]);
    let down = outcome.expect_event("shutting_down");
    let off = outcome.expect_event("power_off");
    let guest_ms = (off.boot_us - down.boot_us) / 1000;
    assert!(
        (1500..4500).contains(&guest_ms),
        "powered off {guest_ms} ms after the stop request; stop_timeout_ms is 1500"
    );
    assert_eq!(outcome.expect_event("exited").i64("signal"), Some(9));
    let unmounted = outcome.expect_event("disks_unmounted");
    assert_eq!(
        unmounted.field("disks"),
        &json!([{"mount_point": "/data", "result": "unmounted"}]),
        "{:?}",
        unmounted.json
    );
    assert_fsck_clean(&disk);
    let acknowledged = numbers(&outcome.console, "synced").last().copied().unwrap();
    let found = records_on(&disk);
    assert!(
        found >= acknowledged,
        "{acknowledged} acknowledged, {found} on the disk"
    );
    println!(
        "ignored stop: killed after the 1.5 s stop timeout, powered off {guest_ms} ms after \
         the request ({:.1} s on the host), {found} records on the clean disk",
        took.as_secs_f64()
    );
}
