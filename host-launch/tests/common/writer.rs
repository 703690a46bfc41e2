//! The snapshot and backup tests' and the snapshot benchmark's appliances: a service that
//! appends numbered lines to its data disk without pause, and one that checks a copy of such a
//! disk (booted on it by [`lines_in_vm`]).

use e2e::RootFs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The writer: line N is N, appended for ever (a shell loop of busybox's sh).
pub const WRITER: &str = "i=0; while :; do i=$((i+1)); echo $i >> /data/n; done";

/// The checker: every line of the copy is its own number (a prefix, nothing torn).
pub const CHECKER: &str =
    "busybox awk '$0 != NR {bad=1} END {print (bad ? \"TORN\" : \"PREFIX\"), NR}' /data/n";

/// An image whose service is `sh -c SCRIPT` as root, with a data disk on /data.
pub fn image(dir: &Path, name: &str, script: &str, restart: &str) -> PathBuf {
    image_with(
        dir,
        name,
        1,
        serde_json::json!({"argv": ["/bin/busybox", "sh", "-c", script], "uid": 0, "gid": 0,
                           "restart": {"policy": restart}, "stop_timeout_ms": 2000}),
    )
}

/// An image with busybox and a data disk on /data whose manifest declares `contract_version`
/// and `service`.
pub fn image_with(
    dir: &Path,
    name: &str,
    contract_version: u32,
    service: serde_json::Value,
) -> PathBuf {
    let image = dir.join(format!("{name}.img"));
    RootFs::new()
        .file("/bin/busybox", "/bin/busybox", 0o755)
        .dir("/data", 0o755)
        .build(&image)
        .expect("root image");
    std::fs::set_permissions(&image, std::fs::Permissions::from_mode(0o644)).unwrap();
    let manifest = serde_json::json!({
        "contract_version": contract_version, "name": name, "service": service,
        "disks": [{"mount_point": "/data"}],
    });
    std::fs::write(
        dir.join(format!("{name}.img.manifest.json")),
        manifest.to_string(),
    )
    .unwrap();
    image
}

pub fn spec(dir: &Path, name: &str, image: &Path, disk: &Path) -> PathBuf {
    let path = dir.join(format!("{name}.json"));
    let text = serde_json::json!({
        "name": name, "image": image, "memory_mib": 48, "disks": [{"file": disk}],
    });
    std::fs::write(&path, text.to_string()).unwrap();
    path
}

/// Boots a checker appliance `name` on `disk`: how many numbered lines it holds (a prefix,
/// nothing torn, at least one).
pub fn lines_in_vm(dir: &Path, state: &Path, checker: &Path, disk: &Path, name: &str) -> u64 {
    let console = checker_console(dir, state, checker, disk, name);
    prefix_in(&console)
}

/// Runs a checker appliance `name` (restart `never`) on `disk` to its end: its console.
pub fn checker_console(
    dir: &Path,
    state: &Path,
    checker: &Path,
    disk: &Path,
    name: &str,
) -> String {
    let c = spec(dir, name, checker, disk);
    let (code, out) = e2e::host::output_text(super::host_launch(state, &["run", "-q"]).arg(&c));
    let (_, console) = e2e::host::output_text(&mut super::host_launch(state, &["logs", name]));
    assert_eq!(code, 0, "{out}\n{console}");
    console
}

/// The checker's `PREFIX N` in its console: N, asserted a prefix of at least one line.
pub fn prefix_in(console: &str) -> u64 {
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
    assert!(lines > 0, "the disk holds no line: {line}");
    lines
}

/// `e2fsck -fn` of a copy, run as `uid` (the copy chowned to it meanwhile), never as root on
/// the host: the guest wrote every byte. Asserts it is clean (nothing to replay or fix).
pub fn assert_fsck_clean_as(copy: &Path, uid: u32) {
    std::os::unix::fs::chown(copy, Some(uid), Some(uid)).unwrap();
    let (code, fsck) = e2e::host::output_text(e2e::host::as_uid(
        std::process::Command::new("e2fsck").arg("-fn").arg(copy),
        uid,
    ));
    std::os::unix::fs::chown(copy, Some(0), Some(0)).unwrap();
    assert_eq!(code, 0, "e2fsck -fn of {}: {fsck}", copy.display());
}
