//! Consistent snapshots of a running appliance (issue 28, item 2), on real UML: a service
//! appends numbered lines to its data disk without pause while `host-launch snapshot` copies
//! the disk; each copy is then checked by a VM of its own (its service reads the copy: a
//! prefix of the numbers with no torn line) and by `e2fsck -fn` run as the VM's uid on the
//! copy it owns (clean: no journal to replay). A freeze whose host never thaws (what a killed
//! `host-launch snapshot` leaves) is thawed by the guest after the bound. An image's quiesce
//! command runs before the freeze (its marker is in the copy); its failure or timeout still
//! freezes, said so.
//!
//! Needs root; fails, rather than skips, without it.

mod common;

use common::writer::{image, lines_in_vm, spec, CHECKER, WRITER};
use common::{host_launch, launch, require_root_and_busybox, temp_dir};
use e2e::host::output_text;
use e2e::snapshot_output;
use e2e::RootFs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

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
        let ms =
            snapshot_output::frozen_ms(&out).unwrap_or_else(|| panic!("the frozen time in: {out}"));
        frozen.push(ms);
        let copy =
            snapshot_output::first_copy(&out).unwrap_or_else(|| panic!("the copy in: {out}"));
        assert_eq!(
            std::fs::metadata(&copy).unwrap().len(),
            std::fs::metadata(&data).unwrap().len()
        );
        // Checked by the VM's uid only, as the copy's owner; never by root on the host.
        common::writer::assert_fsck_clean_as(&copy, 1_610_600_000 + n);
        let lines = lines_in_vm(dir.path(), &state, &checker, &copy, &format!("chk{n}"));
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

/// The events of appliance `name` from byte `from` of its events file on.
fn events_from(state: &Path, name: &str, from: usize) -> Vec<serde_json::Value> {
    let text = std::fs::read(state.join(name).join("events.jsonl")).unwrap_or_default();
    String::from_utf8_lossy(text.get(from..).unwrap_or_default())
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn events_len(state: &Path, name: &str) -> usize {
    std::fs::metadata(state.join(name).join("events.jsonl"))
        .map(|m| m.len() as usize)
        .unwrap_or(0)
}

/// `host-launch snapshot` killed with SIGKILL while it copies (the disk is 256 MiB of
/// allocated blocks, so the copy takes a while): the guest thaws by itself at the bound.
#[test]
fn kill_9_of_snapshot_leaves_the_guest_thawed_within_the_bound() {
    require_root_and_busybox();
    let dir = temp_dir("snapkill");
    let state = dir.join("state");
    let writer = image(dir.path(), "writer", WRITER, "always");
    let data = dir.join("data.img");
    // Every block allocated (not zero), so a copy reads and writes all of it.
    std::fs::write(&data, vec![0xa5u8; 256 << 20]).unwrap();
    e2e::host::mkfs_ext4(&data, "256M");
    let s = spec(dir.path(), "snapkill", &writer, &data);
    let mut run = launch(&s, "snapkill", &state);
    run.wait_ready(Duration::from_secs(60)).unwrap();
    let from = events_len(&state, "snapkill");
    let mut snap = host_launch(&state, &["snapshot", "snapkill", "--bound", "2", "--to"])
        .arg(dir.join("snaps"))
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !events_from(&state, "snapkill", from)
        .iter()
        .any(|e| e["event"] == "frozen")
    {
        assert!(std::time::Instant::now() < deadline, "no frozen event");
        std::thread::sleep(Duration::from_millis(1));
    }
    snap.kill().unwrap();
    let status = snap.wait().unwrap();
    assert_eq!(
        status.code(),
        None,
        "snapshot ended before the kill: {status}"
    );
    std::thread::sleep(Duration::from_millis(3500));
    let events = events_from(&state, "snapkill", from);
    let thawed = events
        .iter()
        .find(|e| e["event"] == "thawed")
        .unwrap_or_else(|| panic!("not thawed 3.5 s after the kill: {events:?}"));
    assert_eq!(thawed["by"], "bound", "{thawed}");
    assert!(
        (2000..3000).contains(&thawed["frozen_ms"].as_u64().unwrap()),
        "{thawed}"
    );
    let (code, all) = run.stop();
    assert_eq!(code, Some(0), "{all}");
}

/// A copy that outlasts the guest's bound (2 GiB of allocated blocks copied sparse, about
/// 2 s here, under `--bound 1`): the guest thawed and wrote during it, so the output calls
/// the copy crash-consistent and says to give a larger bound.
#[test]
fn a_copy_that_outlasts_the_bound_is_said_crash_consistent() {
    require_root_and_busybox();
    let dir = temp_dir("snapbound");
    let state = dir.join("state");
    let writer = image(dir.path(), "writer", WRITER, "always");
    let data = dir.join("data.img");
    {
        // Every block allocated (not zero), so the copy reads and writes all of it.
        let mut f = std::fs::File::create(&data).unwrap();
        let block = vec![0xa5u8; 64 << 20];
        for _ in 0..32 {
            f.write_all(&block).unwrap();
        }
    }
    // nodiscard: mkfs would otherwise punch the blocks out of the file again.
    let (code, out) = output_text(
        Command::new("mkfs.ext4")
            .args(["-q", "-F", "-E", "nodiscard"])
            .arg(&data),
    );
    assert_eq!(code, 0, "{out}");
    let s = spec(dir.path(), "snapbound", &writer, &data);
    let mut run = launch(&s, "snapbound", &state);
    run.wait_ready(Duration::from_secs(60)).unwrap();
    let snaps = dir.join("snaps");
    let (code, out) = output_text(
        host_launch(&state, &["snapshot", "snapbound", "--bound", "1", "--to"]).arg(&snaps),
    );
    let _ = std::fs::remove_dir_all(&snaps);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("snapshot of 'snapbound': crash-consistent (frozen ")
            && out.contains(
                "the guest thawed by itself (bound) before the copy ended; the copy is what a \
                 power cut would leave; give a larger --bound"
            ),
        "{out}"
    );
    let (code, all) = run.stop();
    assert_eq!(code, Some(0), "{all}");
}

/// A guest without the request channel (its init is a shell script, not guest-init) gets a
/// crash-consistent copy, and the output says so.
#[test]
fn a_guest_without_the_channel_gets_a_crash_consistent_copy_said_so() {
    require_root_and_busybox();
    let dir = temp_dir("snapnone");
    let state = dir.join("state");
    let init = dir.join("init.sh");
    std::fs::write(
        &init,
        "#!/bin/busybox sh\n\
         /bin/busybox mount -t devtmpfs dev /dev\n\
         /bin/busybox mount -t ext4 /dev/ubdb /data\n\
         while :; do echo x >> /data/n; /bin/busybox sleep 0.01; done\n",
    )
    .unwrap();
    std::fs::set_permissions(&init, std::fs::Permissions::from_mode(0o755)).unwrap();
    let image_path = dir.join("plain.img");
    RootFs::new()
        .init(&init)
        .file("/bin/busybox", "/bin/busybox", 0o755)
        .dir("/data", 0o755)
        .build(&image_path)
        .expect("root image");
    std::fs::set_permissions(&image_path, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(
        dir.join("plain.img.manifest.json"),
        r#"{"contract_version":1,"name":"plain","service":{"argv":["/bin/busybox","true"]},
            "disks":[{"mount_point":"/data"}]}"#,
    )
    .unwrap();
    let data = dir.join("data.img");
    e2e::host::mkfs_ext4(&data, "16M");
    let s = spec(dir.path(), "snapnone", &image_path, &data);
    let run = launch(&s, "snapnone", &state);
    // No status event ever comes: wait until the script writes to its disk.
    std::thread::sleep(Duration::from_secs(2));
    let (code, out) =
        output_text(host_launch(&state, &["snapshot", "snapnone", "--to"]).arg(dir.join("snaps")));
    drop(run); // the launcher killed, and its VM with it
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(
            "snapshot of 'snapnone': crash-consistent: the guest did not answer the freeze \
             request within 3 s"
        ),
        "{out}"
    );
    assert!(out.contains("disk0.img (sparse copy, 16 MiB)"), "{out}");
}

/// The quiesce command of a service that runs as uid 1000: its 1st run writes a marker (the
/// line count it saw) to the data disk and exits 0, its 2nd exits 3, its 3rd hangs past its
/// 1500 ms timeout. Each snapshot freezes all the same.
const QUIESCE: &str = "b=/bin/busybox; n=$($b cat /data/q.count 2>/dev/null || echo 0); \
     n=$((n+1)); echo $n > /data/q.count; \
     case $n in \
     1) echo \"quiesce $n: flushing\"; \
        echo \"uid=$($b id -u) line=$($b wc -l < /data/n)\" > /data/quiesced; $b sleep 0.3;; \
     2) echo \"quiesce $n: failing\" >&2; exit 3;; \
     *) $b sleep 30;; \
     esac";

/// Runs `snapshot NAME` into `to`: its output and the copy's path.
fn snapshot_into(state: &Path, name: &str, to: &Path) -> (String, PathBuf) {
    let (code, out) = output_text(host_launch(state, &["snapshot", name, "--to"]).arg(to));
    assert_eq!(code, 0, "{out}");
    let copy = snapshot_output::first_copy(&out).unwrap_or_else(|| panic!("the copy in: {out}"));
    (out, copy)
}

/// The number after `key` in `text` (e.g. `quiesce ` in `(quiesce 312 ms, ...`).
fn number_after(text: &str, key: &str) -> u64 {
    snapshot_output::number_after(text, key)
        .unwrap_or_else(|| panic!("a number after {key:?} in: {text}"))
}

/// The manifest's quiesce command (contract version 4) runs as the service's uid before the
/// freeze: its marker is in the copy, its output in the appliance's log, its time in the
/// output; a quiesce that fails or times out still freezes, said crash-consistent for the
/// service, and the guest goes on writing.
#[test]
fn the_quiesce_command_runs_before_the_freeze_and_its_failure_still_freezes() {
    require_root_and_busybox();
    let dir = temp_dir("snapq");
    let state = dir.join("state");
    let writer = common::writer::image_with(
        dir.path(),
        "qwriter",
        4,
        serde_json::json!({
            "argv": ["/bin/busybox", "sh", "-c", WRITER], "uid": 1000, "gid": 1000,
            "restart": {"policy": "always"}, "stop_timeout_ms": 2000,
            "quiesce": {"argv": ["/bin/busybox", "sh", "-c", QUIESCE], "timeout_ms": 1500},
        }),
    );
    let checker = image(
        dir.path(),
        "qchecker",
        &format!("{CHECKER}; echo MARKER $(busybox cat /data/quiesced)"),
        "never",
    );
    let data = dir.join("data.img");
    let (code, out) = output_text(
        Command::new("mkfs.ext4")
            .args(["-q", "-F", "-E", "root_owner=1000:1000"])
            .arg(&data)
            .arg("64M"),
    );
    assert_eq!(code, 0, "{out}");
    let s = spec(dir.path(), "snapq", &writer, &data);
    let mut run = launch(&s, "snapq", &state);
    run.wait_ready(Duration::from_secs(60)).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let snaps = dir.join("snaps");

    // 1: quiesced, then frozen; the marker the command wrote is in the copy.
    let (out, copy) = snapshot_into(&state, "snapq", &snaps);
    assert!(
        out.contains("snapshot of 'snapq': consistent (quiesce "),
        "{out}"
    );
    let quiesce_ms = number_after(&out, "(quiesce ");
    assert!((300..1500).contains(&quiesce_ms), "{out}");
    common::writer::assert_fsck_clean_as(&copy, 1_610_700_000);
    let console = common::writer::checker_console(dir.path(), &state, &checker, &copy, "qchk");
    let lines = common::writer::prefix_in(&console);
    let marker = console
        .lines()
        .find(|l| l.contains("MARKER"))
        .unwrap_or_else(|| panic!("no marker in the copy: {console}"));
    assert!(marker.contains("MARKER uid=1000 line="), "{marker}");
    let at = number_after(marker, "line=");
    assert!(
        at <= lines,
        "the quiesce saw line {at}, the copy holds {lines}"
    );
    eprintln!("quiesce {quiesce_ms} ms; marker at line {at}; the copy holds 1..={lines}");
    let (_, logs) = output_text(&mut host_launch(&state, &["logs", "snapq"]));
    assert!(logs.contains("quiesce 1: flushing"), "{logs}");

    // 2: the command fails; the freeze still happens, said so.
    let (out, _) = snapshot_into(&state, "snapq", &snaps);
    assert!(
        out.contains("snapshot of 'snapq': crash-consistent (quiesce ")
            && out.contains(
                "the image's quiesce command failed (exited with code 3); the file systems were \
                 frozen anyway"
            ),
        "{out}"
    );
    assert!(out.contains("ms in the guest"), "{out}");

    // 3: the command hangs: killed at its timeout, then the freeze.
    let from = events_len(&state, "snapq");
    let (out, _) = snapshot_into(&state, "snapq", &snaps);
    assert!(
        out.contains("the image's quiesce command failed (timed out after 1500 ms (killed))"),
        "{out}"
    );
    let q = number_after(&out, "(quiesce ");
    assert!((1500..3000).contains(&q), "{out}");
    let events = events_from(&state, "snapq", from);
    let names: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    let at = |n: &str| names.iter().position(|e| *e == n);
    assert!(
        at("quiescing") < at("frozen") && at("frozen") < at("thawed") && at("quiescing").is_some(),
        "{names:?}"
    );
    let (_, logs) = output_text(&mut host_launch(&state, &["logs", "snapq"]));
    assert!(logs.contains("quiesce 2: failing"), "{logs}");
    let (code, all) = run.stop();
    assert_eq!(code, Some(0), "{all}");
}
