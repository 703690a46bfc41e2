//! Consistent snapshots of a running appliance (issue 28, item 2), on real UML: a service
//! appends numbered lines to its data disk without pause while `host-launch snapshot` copies
//! the disk; each copy is then checked by a VM of its own (its service reads the copy: a
//! prefix of the numbers with no torn line) and by `e2fsck -fn` run as the VM's uid on the
//! copy it owns (clean: no journal to replay). A freeze whose host never thaws (what a killed
//! `host-launch snapshot` leaves) is thawed by the guest after the bound.
//!
//! Needs root; fails, rather than skips, without it.

mod common;

use common::{host_launch, launch, require_root_and_busybox, temp_dir};
use e2e::host::output_text;
use e2e::RootFs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The writer: line N is N, appended for ever (a shell loop of busybox's sh).
const WRITER: &str = "i=0; while :; do i=$((i+1)); echo $i >> /data/n; done";

/// The checker: every line of the copy is its own number (a prefix, nothing torn).
const CHECKER: &str =
    "busybox awk '$0 != NR {bad=1} END {print (bad ? \"TORN\" : \"PREFIX\"), NR}' /data/n";

/// An image whose service is `sh -c SCRIPT` as root, with a data disk on /data.
fn image(dir: &Path, name: &str, script: &str, restart: &str) -> PathBuf {
    let image = dir.join(format!("{name}.img"));
    RootFs::new()
        .file("/bin/busybox", "/bin/busybox", 0o755)
        .dir("/data", 0o755)
        .build(&image)
        .expect("root image");
    std::fs::set_permissions(&image, std::fs::Permissions::from_mode(0o644)).unwrap();
    let manifest = serde_json::json!({
        "contract_version": 1, "name": name,
        "service": {"argv": ["/bin/busybox", "sh", "-c", script], "uid": 0, "gid": 0,
                    "restart": {"policy": restart}, "stop_timeout_ms": 2000},
        "disks": [{"mount_point": "/data"}],
    });
    std::fs::write(
        dir.join(format!("{name}.img.manifest.json")),
        manifest.to_string(),
    )
    .unwrap();
    image
}

fn spec(dir: &Path, name: &str, image: &Path, disk: &Path) -> PathBuf {
    let path = dir.join(format!("{name}.json"));
    let text = serde_json::json!({
        "name": name, "image": image, "memory_mib": 48, "disks": [{"file": disk}],
    });
    std::fs::write(&path, text.to_string()).unwrap();
    path
}

/// Runs the checker VM on `copy` (a copy of its own, given to the VM as a new appliance's
/// disk): what its service printed.
fn check_in_vm(dir: &Path, state: &Path, checker: &Path, copy: &Path, n: usize) -> String {
    let name = format!("chk{n}");
    let s = spec(dir, &name, checker, copy);
    let (code, out) = output_text(host_launch(state, &["run", "-q"]).arg(&s));
    let (_, console) = output_text(&mut host_launch(state, &["logs", &name]));
    assert_eq!(code, 0, "{out}\n{console}");
    console
}

#[test]
fn snapshots_of_a_writing_appliance_hold_a_prefix_and_thaw_after_the_bound() {
    require_root_and_busybox();
    let dir = temp_dir("snap");
    let state = dir.join("state");
    let writer = image(dir.path(), "writer", WRITER, "always");
    let checker = image(dir.path(), "checker", CHECKER, "never");
    let data = dir.join("data.img");
    e2e::host::mkfs_ext4(&data, "64M");
    let s = spec(dir.path(), "snap", &writer, &data);
    let mut run = launch(&s, "snap", &state);
    run.wait_ready(Duration::from_secs(60)).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let snaps = dir.join("snaps");
    let mut frozen = Vec::new();
    for n in 0..3 {
        let (code, out) =
            output_text(host_launch(&state, &["snapshot", "snap", "--to"]).arg(&snaps));
        assert_eq!(code, 0, "{out}");
        assert!(
            out.contains("snapshot of 'snap': consistent (frozen "),
            "{out}"
        );
        let ms: u64 = out
            .split("consistent (frozen ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("the frozen time in: {out}"));
        frozen.push(ms);
        let copy = out
            .lines()
            .find_map(|l| l.trim().split(" -> ").nth(1))
            .and_then(|r| r.split(" (").next())
            .map(PathBuf::from)
            .unwrap_or_else(|| panic!("the copy in: {out}"));
        assert_eq!(
            std::fs::metadata(&copy).unwrap().len(),
            std::fs::metadata(&data).unwrap().len()
        );
        // Checked by the VM's uid only, as the copy's owner; never by root on the host.
        let uid = 1_610_600_000 + n;
        std::os::unix::fs::chown(&copy, Some(uid), Some(uid)).unwrap();
        let (code, fsck) = output_text(e2e::host::as_uid(
            Command::new("e2fsck").arg("-fn").arg(&copy),
            uid,
        ));
        assert_eq!(code, 0, "e2fsck -fn of the copy: {fsck}");
        std::os::unix::fs::chown(&copy, Some(0), Some(0)).unwrap();
        let console = check_in_vm(dir.path(), &state, &checker, &copy, n as usize);
        let line = console
            .lines()
            .find(|l| l.contains("PREFIX") || l.contains("TORN"))
            .unwrap_or_else(|| panic!("the checker's answer in: {console}"));
        assert!(line.contains("PREFIX"), "{console}");
        let lines: u64 = line
            .rsplit(' ')
            .next()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        assert!(lines > 0, "the copy holds no line: {line}");
        eprintln!("snapshot {n}: frozen {ms} ms, the copy holds lines 1..={lines}");
        std::fs::remove_file(&copy).unwrap();
    }

    // A freeze no one thaws (the FIFO written as a killed `snapshot` leaves it): the guest
    // thaws by itself after the bound, and keeps writing.
    let events_before = run.events().len();
    let mut fifo = std::fs::OpenOptions::new()
        .write(true)
        .open(state.join("snap/requests"))
        .unwrap();
    fifo.write_all(b"freeze 1500\n").unwrap();
    drop(fifo);
    std::thread::sleep(Duration::from_millis(3000));
    let events = run.events();
    let new: Vec<_> = events.iter().skip(events_before).collect();
    let thawed = new
        .iter()
        .find(|e| e["event"] == "thawed")
        .unwrap_or_else(|| panic!("no thawed event after the bound: {new:?}"));
    assert_eq!(thawed["by"], "bound", "{thawed}");
    let f = thawed["frozen_ms"].as_u64().unwrap();
    assert!((1500..2500).contains(&f), "{thawed}");
    let (code, all) = run.stop();
    assert_eq!(code, Some(0), "{all}");
    eprintln!("frozen per snapshot (guest's count, ms): {frozen:?}");
}
