//! Host tools the tests run on disk images: `mkfs.ext4` for a data disk and `e2fsck -fn` after
//! the VM stopped, with their output in the test's failure message.

use std::path::Path;
use std::process::Command;

/// Runs a host tool to completion; returns its exit code (-1 when a signal ended it) and its
/// standard output followed by its standard error.
pub fn output_text(cmd: &mut Command) -> (i32, String) {
    let out = cmd.output().expect("running a host tool");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// `mkfs.ext4 -q -F DISK SIZE` (an empty file system the size of `size`, e.g. `16M`).
#[track_caller]
pub fn mkfs_ext4(disk: &Path, size: &str) {
    let (code, out) = output_text(
        Command::new("mkfs.ext4")
            .args(["-q", "-F"])
            .arg(disk)
            .arg(size),
    );
    assert_eq!(code, 0, "mkfs.ext4 {}: {out}", disk.display());
}

/// `e2fsck -fn DISK` passes: the file system is consistent (nothing to fix).
#[track_caller]
pub fn assert_fsck_clean(disk: &Path) {
    let (code, out) = output_text(Command::new("e2fsck").arg("-fn").arg(disk));
    assert_eq!(code, 0, "e2fsck -fn {}: {out}", disk.display());
}
