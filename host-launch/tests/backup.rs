//! Backup and restore (issue 28, item 4), on real UML: a service appends numbered lines to
//! its data disk while `host-launch backup` packs snapshots of it (three backups, the newest
//! two kept); the last archive's data disk is restored into a new file and a second
//! appliance booted on it reads what the first wrote (a prefix of the numbers, nothing torn).
//! The same disk restored onto a loop device holds the same bytes; a damaged archive, a
//! target that a running appliance uses and a device too small are refused.
//!
//! Needs root; fails, rather than skips, without it.

mod common;

use common::writer::{image, lines_in_vm, spec, CHECKER, WRITER};
use common::{host_launch, launch, require_root_and_busybox, temp_dir};
use e2e::host::output_text;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The backups of `name` in `dir`, oldest first.
fn archives(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let f = p.file_name().unwrap().to_string_lossy();
            f.starts_with(&format!("{name}-")) && f.ends_with(".tar.gz")
        })
        .collect();
    v.sort();
    v
}

#[test]
fn a_backup_restored_into_a_new_file_boots_and_holds_what_was_written() {
    require_root_and_busybox();
    let dir = temp_dir("backup");
    let state = dir.join("state");
    let writer = image(dir.path(), "writer", WRITER, "always");
    let checker = image(dir.path(), "checker", CHECKER, "never");
    let data = dir.join("data.img");
    e2e::host::mkfs_ext4(&data, "64M");
    let s = spec(dir.path(), "bk", &writer, &data);
    let mut run = launch(&s, "bk", &state);
    run.wait_ready(Duration::from_secs(60)).unwrap();
    std::thread::sleep(Duration::from_millis(500));

    // Three backups while it writes; --keep 2 leaves the newest two, each with its checksum.
    let backups = dir.join("backups");
    let mut made = Vec::new();
    for _ in 0..3 {
        let (code, out) = output_text(
            host_launch(&state, &["backup", "bk", "--keep", "2", "--to"]).arg(&backups),
        );
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("backup of 'bk': consistent (frozen "), "{out}");
        eprintln!("{out}");
        made.push(archives(&backups, "bk").last().cloned().unwrap());
        std::thread::sleep(Duration::from_millis(5));
    }
    let kept = archives(&backups, "bk");
    assert_eq!(kept, made[1..].to_vec(), "the newest two are kept");
    assert!(!made[0].with_extension("gz.sha256").exists());
    // Nothing else is left in the directory: the snapshot's copies were packed and removed.
    assert_eq!(std::fs::read_dir(&backups).unwrap().count(), 4);
    let last = kept.last().unwrap();
    let (code, out) = output_text(
        Command::new("sha256sum")
            .arg("-c")
            .arg(last.with_extension("gz.sha256"))
            .current_dir(&backups),
    );
    assert_eq!(code, 0, "sha256sum -c reads the checksum file: {out}");
    let (code, list) = output_text(Command::new("tar").arg("-tzf").arg(last));
    assert_eq!(code, 0, "{list}");
    assert_eq!(
        list.lines().collect::<Vec<_>>(),
        ["disk0.img", "spec.json", "image-digest"]
    );
    let (_, digest) = output_text(
        Command::new("tar")
            .arg("-xzOf")
            .arg(last)
            .arg("image-digest"),
    );
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{digest}"
    );

    // Restore onto the running appliance's disk: refused, naming it and the fix.
    let (code, out) = output_text(
        host_launch(&state, &["restore", "--disk"])
            .arg(&data)
            .arg(last),
    );
    assert_eq!(code, 121, "{out}");
    assert!(
        out.contains("is a disk of the running appliance 'bk'; stop it first"),
        "{out}"
    );

    // A damaged archive (one byte changed): refused before anything is written.
    let bad = dir.join("bad.tar.gz");
    let mut bytes = std::fs::read(last).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&bad, bytes).unwrap();
    std::fs::copy(
        last.with_extension("gz.sha256"),
        dir.join("bad.tar.gz.sha256"),
    )
    .unwrap();
    let never = dir.join("never.img");
    let (code, out) = output_text(
        host_launch(&state, &["restore", "--disk"])
            .arg(&never)
            .arg(&bad),
    );
    assert_eq!(code, 120, "{out}");
    assert!(out.contains("the checksum does not match"), "{out}");
    assert!(!never.exists(), "nothing written from a damaged archive");

    // The good one into a new file, booted by a second appliance while the first still runs.
    let restored = dir.join("restored.img");
    let (code, out) = output_text(
        host_launch(&state, &["restore", "--disk"])
            .arg(&restored)
            .arg(last),
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        std::fs::metadata(&restored).unwrap().len(),
        std::fs::metadata(&data).unwrap().len()
    );
    // Sparse: the disk's zero blocks stay holes in the restored file.
    let allocated =
        std::os::unix::fs::MetadataExt::blocks(&std::fs::metadata(&restored).unwrap()) * 512;
    assert!(
        allocated < (32 << 20),
        "{allocated} bytes allocated of 64 MiB"
    );
    // Onto a block device: one too small is refused; one large enough gets the same bytes
    // (compared before a VM mounts the file).
    let small_file = dir.join("small.img");
    std::fs::File::create(&small_file)
        .unwrap()
        .set_len(16 << 20)
        .unwrap();
    let small = e2e::blockdev::LoopDevice::attach(&small_file).expect("a loop device (root)");
    let (code, out) = output_text(
        host_launch(&state, &["restore", "--disk"])
            .arg(small.path())
            .arg(last),
    );
    assert_eq!(code, 122, "{out}");
    assert!(
        out.contains("--disk: the device holds 16777216 bytes"),
        "{out}"
    );
    let big_file = dir.join("big.img");
    std::fs::File::create(&big_file)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let big = e2e::blockdev::LoopDevice::attach(&big_file).expect("a loop device (root)");
    let (code, out) = output_text(
        host_launch(&state, &["restore", "--disk"])
            .arg(big.path())
            .arg(last),
    );
    assert_eq!(code, 0, "{out}");
    let (code, out) = output_text(Command::new("cmp").arg(big.path()).arg(&restored));
    assert_eq!(code, 0, "the device holds the restored disk's bytes: {out}");
    drop((small, big));

    let lines = lines_in_vm(dir.path(), &state, &checker, &restored, "chk");
    eprintln!("the restored disk holds lines 1..={lines}");
    let (code, all) = run.stop();
    assert_eq!(code, Some(0), "{all}");
}

/// `--to-command`: the archive streamed to Debian's restic (a repository in the test's
/// directory, nothing leaves the machine), dumped back out of restic, checked against the
/// checksum `backup` printed, restored and booted.
#[test]
fn a_backup_streamed_to_restic_comes_back_and_boots() {
    require_root_and_busybox();
    let dir = temp_dir("restic");
    let state = dir.join("state");
    let writer = image(dir.path(), "writer", WRITER, "always");
    let checker = image(dir.path(), "checker", CHECKER, "never");
    let data = dir.join("data.img");
    e2e::host::mkfs_ext4(&data, "64M");
    let repo = dir.join("repo");
    let restic = |args: &[&str]| {
        let mut c = Command::new("restic");
        c.arg("--no-cache")
            .arg("-r")
            .arg(&repo)
            .args(args)
            .env("RESTIC_PASSWORD", "test-only");
        c
    };
    let (code, out) = output_text(&mut restic(&["init"]));
    assert_eq!(
        code, 0,
        "restic init (Debian's restic, scripts/setup): {out}"
    );
    let s = spec(dir.path(), "rs", &writer, &data);
    let mut run = launch(&s, "rs", &state);
    run.wait_ready(Duration::from_secs(60)).unwrap();
    std::thread::sleep(Duration::from_millis(300));

    let command = format!(
        "RESTIC_PASSWORD=test-only restic --no-cache -r {} backup --stdin --stdin-filename rs.tar.gz",
        repo.display()
    );
    let scratch = dir.join("scratch");
    let (code, out) = output_text(
        host_launch(&state, &["backup", "rs", "--to-command", &command, "--to"]).arg(&scratch),
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("backup of 'rs': consistent (frozen "), "{out}");
    assert!(
        out.contains("snapshot ") && out.contains(" saved"),
        "restic's report: {out}"
    );
    assert_eq!(
        std::fs::read_dir(&scratch).unwrap().count(),
        0,
        "the snapshot's copies are removed once streamed"
    );
    let hex = out
        .split(", sha256 ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("the checksum in: {out}"))
        .to_string();

    // A failing command is an error, not a stored backup.
    let (code, out) = output_text(
        host_launch(
            &state,
            &[
                "backup",
                "rs",
                "--to-command",
                "cat > /dev/null; exit 3",
                "--to",
            ],
        )
        .arg(&scratch),
    );
    assert_eq!(code, 122, "{out}");
    assert!(
        out.contains("exited with exit status: 3; the backup is not stored"),
        "{out}"
    );

    let back = dir.join("rs.tar.gz");
    let dumped = std::fs::File::create(&back).unwrap();
    let st = restic(&["dump", "latest", "rs.tar.gz"])
        .stdout(dumped)
        .status()
        .unwrap();
    assert!(st.success(), "restic dump");
    std::fs::write(dir.join("rs.tar.gz.sha256"), format!("{hex}  rs.tar.gz\n")).unwrap();
    let restored = dir.join("restored.img");
    let (code, out) = output_text(
        host_launch(&state, &["restore", "--disk"])
            .arg(&restored)
            .arg(&back),
    );
    assert_eq!(code, 0, "{out}");
    let lines = lines_in_vm(dir.path(), &state, &checker, &restored, "rchk");
    eprintln!("restored from restic: lines 1..={lines}");
    let (code, all) = run.stop();
    assert_eq!(code, Some(0), "{all}");
}
