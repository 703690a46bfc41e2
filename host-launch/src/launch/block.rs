//! A block device as a data disk (an LVM logical volume, a partition, a loop device): what
//! the host checks before a VM may have it. The device must be free on the host (not
//! mounted, no holder such as device-mapper on top of it, not open exclusively by anyone)
//! and at least the spec's size. The host never writes, formats or mounts it; the jail
//! gives the VM's uid a node of its own for it (see `vmm::jail`).

use std::io::{Seek, SeekFrom};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Why a block device cannot be a data disk. Each message ends with the fix; the caller
/// puts the spec's field in front.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BlockError {
    #[error(
        "{} ({dev}) is mounted on the host at {mount_point}; a disk the guest writes must be \
         mounted nowhere else: unmount it (`umount {mount_point}`) or name another device",
        path.display()
    )]
    Mounted {
        path: PathBuf,
        dev: String,
        mount_point: String,
    },
    #[error(
        "{} ({dev}) is held by {holder} (see /sys/dev/block/{dev}/holders: e.g. it is an LVM \
         physical volume or a RAID member); name the device built on it (the logical \
         volume), or free it",
        path.display()
    )]
    Held {
        path: PathBuf,
        dev: String,
        holder: String,
    },
    #[error(
        "{} ({dev}) is open exclusively by another program (a mount in another namespace, \
         swap, a RAID or a VM); stop that use first or name another device",
        path.display()
    )]
    Exclusive { path: PathBuf, dev: String },
    #[error(
        "{} holds {have_mib} MiB, less than size_mib {want_mib}; give a larger device, or a \
         size_mib of at most {have_mib}",
        path.display()
    )]
    TooSmall {
        path: PathBuf,
        have_mib: u64,
        want_mib: u64,
    },
    #[error("{} cannot be opened ({reason}); check the path and that it is a block device", path.display())]
    Open { path: PathBuf, reason: String },
}

/// `major:minor` as the kernel writes it in mountinfo and sysfs.
pub fn dev_name(rdev: u64) -> String {
    format!("{}:{}", libc::major(rdev), libc::minor(rdev))
}

/// Checks the block device `path` (device number `rdev`) for a disk of `size_mib` (if
/// given): its size in bytes when the VM may have it.
pub fn inspect(path: &Path, rdev: u64, size_mib: Option<u64>) -> Result<u64, BlockError> {
    let dev = dev_name(rdev);
    let mountinfo = read_mountinfo();
    for d in std::iter::once(dev.clone()).chain(partitions(&dev)) {
        if let Some(mount_point) = mount_point_of(&d, &mountinfo) {
            return Err(BlockError::Mounted {
                path: path.into(),
                dev: d,
                mount_point,
            });
        }
        if let Some(holder) = holders(&d).into_iter().next() {
            return Err(BlockError::Held {
                path: path.into(),
                dev: d,
                holder,
            });
        }
    }
    let bytes = size_if_free(path, &dev)?;
    let have_mib = bytes >> 20;
    match size_mib {
        Some(want_mib) if have_mib < want_mib => Err(BlockError::TooSmall {
            path: path.into(),
            have_mib,
            want_mib,
        }),
        _ => Ok(bytes),
    }
}

/// The device's size, from an `O_EXCL` open: that fails with EBUSY while anyone (a mount in
/// any namespace, swap, md, device-mapper) holds it exclusively. Closed again at once.
fn size_if_free(path: &Path, dev: &str) -> Result<u64, BlockError> {
    let open = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_EXCL | libc::O_CLOEXEC)
        .open(path);
    let mut f = match open {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
            return Err(BlockError::Exclusive {
                path: path.into(),
                dev: dev.into(),
            })
        }
        Err(e) => {
            return Err(BlockError::Open {
                path: path.into(),
                reason: e.to_string(),
            })
        }
    };
    f.seek(SeekFrom::End(0)).map_err(|e| BlockError::Open {
        path: path.into(),
        reason: format!("reading its size: {e}"),
    })
}

/// The host's mount table as this process sees it (other namespaces are caught by the
/// `O_EXCL` open).
fn read_mountinfo() -> String {
    std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default()
}

/// Where `dev` (`major:minor`) is mounted, from mountinfo's text: field 3 is the device,
/// field 5 the mount point.
fn mount_point_of(dev: &str, mountinfo: &str) -> Option<String> {
    mountinfo.lines().find_map(|line| {
        let mut f = line.split(' ');
        let (_, _, d, _, mp) = (f.next()?, f.next()?, f.next()?, f.next()?, f.next()?);
        (d == dev).then(|| mp.to_string())
    })
}

/// What the kernel lists as holding `dev` (device-mapper, md, bcache on top of it).
fn holders(dev: &str) -> Vec<String> {
    let dir = Path::new("/sys/dev/block").join(dev).join("holders");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// The partitions of a whole disk `dev` (`major:minor` each): a disk whose partition is in
/// use is in use.
fn partitions(dev: &str) -> Vec<String> {
    let dir = Path::new("/sys/dev/block").join(dev);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.join("partition").is_file())
        .filter_map(|p| std::fs::read_to_string(p.join("dev")).ok())
        .map(|s| s.trim().to_string())
        .collect()
}

/// Whether `path` names a block device (following symbolic links, as /dev/VG/LV is one).
pub fn rdev_of(path: &Path) -> Option<u64> {
    use std::os::unix::fs::FileTypeExt;
    let m = std::fs::metadata(path).ok()?;
    m.file_type().is_block_device().then(|| m.rdev())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mount_point_of_a_device_is_read_from_mountinfo() {
        let text = "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n\
                    30 22 7:3 / /mnt/x rw shared:9 - ext4 /dev/loop3 rw\n";
        assert_eq!(mount_point_of("7:3", text).as_deref(), Some("/mnt/x"));
        assert_eq!(mount_point_of("254:0", text).as_deref(), Some("/"));
        assert_eq!(mount_point_of("7:30", text), None);
        assert_eq!(mount_point_of("7:3", "garbage\n\n1 2"), None);
    }

    #[test]
    fn device_numbers_read_as_the_kernel_writes_them() {
        assert_eq!(dev_name(libc::makedev(254, 3)), "254:3");
        assert_eq!(dev_name(libc::makedev(7, 300)), "7:300");
    }

    #[test]
    fn messages_name_the_fix() {
        let e = BlockError::TooSmall {
            path: "/dev/loop3".into(),
            have_mib: 16,
            want_mib: 64,
        };
        assert_eq!(
            e.to_string(),
            "/dev/loop3 holds 16 MiB, less than size_mib 64; give a larger device, or a \
             size_mib of at most 16"
        );
    }
}
