//! `restore ARCHIVE --disk FILE|DEVICE [--name DISKNAME]`: writes one disk of a
//! [`backup`](super::backup) archive to a file (made 0600 if missing; all-zero blocks left as
//! holes) or a block device, after the archive's checksum matched. A target that a running
//! appliance uses, or a device mounted or held on the host, is refused.

use crate::backup_archive;
use crate::error::{Error, IoContext, Result};
use crate::launch::{block, disks};
use crate::state;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// `restore`: prints what was written where.
pub fn restore(archive: &Path, target: &Path, name: Option<&str>) -> Result<i32> {
    refuse_in_use(target)?;
    backup_archive::verify(archive).map_err(|e| Error::invalid(e.to_string()))?;
    let disk = choose(archive, name)?;
    let (mut f, is_file) = open_target(target)?;
    let bytes = backup_archive::extract_disk(archive, &disk, &mut f, is_file)
        .map_err(|e| Error::host(e.to_string()))?;
    println!(
        "restored {disk} of {} to {} ({} MiB)",
        archive.display(),
        target.display(),
        bytes >> 20
    );
    Ok(0)
}

/// Refuses a target attached to a running appliance, by its identity (any name of it).
fn refuse_in_use(target: &Path) -> Result<()> {
    let Some(id) = disks::identity(target) else {
        return Ok(());
    };
    for e in state::list(&state::base_dir()) {
        let Some(st) = e.state.as_ref().filter(|_| e.running) else {
            continue;
        };
        if st
            .disks
            .iter()
            .any(|d| disks::identity(Path::new(d)).as_ref() == Some(&id))
        {
            return Err(Error::busy(format!(
                "--disk: {} is a disk of the running appliance '{}'; stop it first \
                 (`host-launch stop {}`) or restore into another file and point its spec there",
                target.display(),
                e.name,
                e.name
            )));
        }
    }
    Ok(())
}

/// The archive's disk to restore: `--name` (`diskN` or `diskN.img`), else its only disk.
fn choose(archive: &Path, name: Option<&str>) -> Result<String> {
    if let Some(n) = name {
        let n = if n.ends_with(".img") {
            n.to_string()
        } else {
            format!("{n}.img")
        };
        if !backup_archive::is_disk_name(&n) {
            return Err(Error::usage(format!(
                "--name: '{n}' is not a disk name; give diskN as the archive lists it (disk0, disk1, ...)"
            )));
        }
        return Ok(n);
    }
    let held = backup_archive::disk_names(archive).map_err(|e| Error::invalid(e.to_string()))?;
    match held.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(Error::invalid(format!(
            "{}: the archive holds no disk; it is not a host-launch backup",
            archive.display()
        ))),
        many => Err(Error::usage(format!(
            "--name: the archive holds {}; say which one to restore",
            many.join(", ")
        ))),
    }
}

/// Opens the target for writing: a block device exclusively (after the mount and holder
/// checks), a file created 0600 when missing; whether it is a regular file.
fn open_target(target: &Path) -> Result<(std::fs::File, bool)> {
    let meta = std::fs::metadata(target).ok();
    let is_block = meta
        .as_ref()
        .is_some_and(|m| m.file_type().is_block_device());
    if let Some(m) = &meta {
        if !is_block && !m.is_file() {
            return Err(Error::invalid(format!(
                "--disk: {} is neither a file nor a block device; name a disk file or a block device",
                target.display()
            )));
        }
    }
    if is_block {
        if let Some(rdev) = block::rdev_of(target) {
            block::inspect(target, rdev, None).map_err(|e| Error::busy(format!("--disk: {e}")))?;
        }
    }
    let mut o = std::fs::OpenOptions::new();
    o.write(true);
    if is_block {
        o.custom_flags(libc::O_EXCL);
    } else {
        o.create(true).mode(0o600);
    }
    let f = o
        .open(target)
        .io_context(|| format!("--disk: opening {} for writing", target.display()))?;
    Ok((f, !is_block))
}
