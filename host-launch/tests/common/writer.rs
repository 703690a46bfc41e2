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
    let c = spec(dir, name, checker, disk);
    let (code, out) = e2e::host::output_text(super::host_launch(state, &["run", "-q"]).arg(&c));
    let (_, console) = e2e::host::output_text(&mut super::host_launch(state, &["logs", name]));
    assert_eq!(code, 0, "{out}\n{console}");
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
