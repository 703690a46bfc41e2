//! Data disks on the host: checked before anything is created, created sparse when absent,
//! never truncated, resized or overwritten when present. A disk is a regular file or a block
//! device ([`block`]); the host formats neither (the guest formats a blank one if the
//! contract says `format_if_blank`).

use crate::error::{Error, IoContext, Result};
use crate::launch::block;
use std::fs::OpenOptions;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// What to do with one disk file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// It exists: use it as it is.
    Use,
    /// It does not exist: create it sparse with this many bytes.
    Create(u64),
    /// A block device of this many bytes, free on the host: the VM gets a node of its own
    /// for it (never the host's node, which is left as it is).
    Device(u64),
}

/// One disk file and what will be done with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskFile {
    pub path: PathBuf,
    pub action: Action,
    /// `disks[N]` in the spec, for messages.
    pub at: String,
}

/// Checks every disk before any is created: an existing one must be a regular, writable
/// file or a free block device ([`block::inspect`]); a missing one needs `size_mib` and a
/// writable directory to be created in.
pub fn inspect(files: &[(String, PathBuf, Option<u64>)]) -> Result<Vec<DiskFile>> {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for (at, path, size_mib) in files {
        match inspect_one(at, path, *size_mib) {
            Ok(action) => out.push(DiskFile {
                path: path.clone(),
                action,
                at: at.clone(),
            }),
            Err(p) => problems.push(p),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(Error::invalid(problems.join("\n")))
    }
}

/// One disk: what to do with it, or the problem (field first, then the fix).
fn inspect_one(
    at: &str,
    path: &Path,
    size_mib: Option<u64>,
) -> std::result::Result<Action, String> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::metadata(path) {
        Ok(m) if m.file_type().is_block_device() => block::inspect(path, m.rdev(), size_mib)
            .map(Action::Device)
            .map_err(|e| match e {
                block::BlockError::TooSmall { .. } => format!("{at}.size_mib: {e}"),
                _ => format!("{at}.file: {e}"),
            }),
        Ok(m) if m.file_type().is_char_device() => Err(format!(
            "{at}.file: {} is a character device; a data disk is a regular file or a block \
             device (an LVM logical volume, a partition, a loop device)",
            path.display()
        )),
        Ok(m) if !m.is_file() => Err(format!(
            "{at}.file: {} exists but is neither a regular file nor a block device; name a \
             disk image file or a block device",
            path.display()
        )),
        Ok(_) => match OpenOptions::new().read(true).write(true).open(path) {
            Ok(_) => Ok(Action::Use),
            Err(e) => Err(format!(
                "{at}.file: {} exists but cannot be opened for writing ({e}); fix its \
                 permissions",
                path.display()
            )),
        },
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                || e.raw_os_error() == Some(libc::ENOTDIR) =>
        {
            plan_creation(at, path, size_mib)
        }
        Err(e) => Err(format!("{at}.file: cannot use {} ({e})", path.display())),
    }
}

/// A disk file that does not exist yet: created with `size_mib` in a writable directory.
/// Never in a directory of /dev: a missing device is the operator's to make, not a file to
/// create there.
fn plan_creation(
    at: &str,
    path: &Path,
    size_mib: Option<u64>,
) -> std::result::Result<Action, String> {
    let Some(size) = size_mib else {
        return Err(format!(
            "{at}.size_mib: {} does not exist, and without size_mib host-launch cannot create \
             it; give size_mib or the path of an existing disk",
            path.display()
        ));
    };
    let parent = path.parent().unwrap_or(Path::new("/"));
    match std::fs::metadata(parent) {
        Ok(m) if m.is_dir() && path.starts_with("/dev") => Err(format!(
            "{at}.file: the block device {} does not exist; host-launch creates disk files, \
             not devices: make it first (e.g. `lvcreate`, `losetup`) or fix the path",
            path.display()
        )),
        Ok(m) if m.is_dir() => {
            if nix::unistd::access(parent, nix::unistd::AccessFlags::W_OK).is_err() {
                return Err(format!(
                    "{at}.file: cannot create {}: the directory {} is not writable",
                    path.display(),
                    parent.display()
                ));
            }
            Ok(Action::Create(size.saturating_mul(1024 * 1024)))
        }
        Ok(_) => Err(format!(
            "{at}.file: cannot create {}: {} is not a directory; fix the path",
            path.display(),
            parent.display()
        )),
        Err(_) => Err(format!(
            "{at}.file: cannot create {}: the directory {} does not exist; create it first or \
             fix the path",
            path.display(),
            parent.display()
        )),
    }
}

/// Creates the inspected disks that do not exist yet (sparse: `set_len` on a new file) and
/// gives them to `owner`. Returns the files it created, so a failed launch can remove them.
/// A file that appeared in the meantime is left alone (create_new refuses it).
pub fn create(disks: &[DiskFile], owner: Option<(u32, u32)>) -> Result<Vec<PathBuf>> {
    let mut created = Vec::new();
    for p in disks {
        let Action::Create(len) = p.action else {
            continue;
        };
        let result = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&p.path)
            .and_then(|f| {
                created.push(p.path.clone());
                f.set_len(len)?;
                f.sync_all()
            })
            .io_context(|| format!("{}.file: creating {}", p.at, p.path.display()));
        if let Err(e) = result {
            remove_created(&created);
            return Err(e);
        }
        if let Some((uid, gid)) = owner {
            if let Err(e) = std::os::unix::fs::chown(&p.path, Some(uid), Some(gid)) {
                remove_created(&created);
                return Err(Error::host(format!(
                    "{}.file: giving {} to uid {uid}: {e}",
                    p.at,
                    p.path.display()
                )));
            }
        }
    }
    Ok(created)
}

/// Removes disks this launch created (they hold nothing yet the guest could have written
/// only if the VM never started; callers use this only on a failed launch).
pub fn remove_created(created: &[PathBuf]) {
    for p in created {
        let _ = std::fs::remove_file(p);
    }
}

/// What makes two paths the same disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskId {
    /// A file: its file system's device and its inode.
    File { dev: u64, ino: u64 },
    /// A block device: its number, whichever node names it (/dev/VG/LV, /dev/dm-N).
    Block { rdev: u64 },
}

/// The identity of a disk path, to tell whether two paths are the same disk.
pub fn identity(path: &Path) -> Option<DiskId> {
    use std::os::unix::fs::FileTypeExt;
    let m = std::fs::metadata(path).ok()?;
    Some(if m.file_type().is_block_device() {
        DiskId::Block { rdev: m.rdev() }
    } else {
        DiskId::File {
            dev: m.dev(),
            ino: m.ino(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_create_and_never_overwrite() {
        let dir = std::env::temp_dir().join(format!("hl-disks-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let new = dir.join("new.img");
        let old = dir.join("old.img");
        std::fs::write(&old, b"precious").unwrap();
        let files = vec![
            ("disks[0]".to_string(), new.clone(), Some(4)),
            ("disks[1]".to_string(), old.clone(), Some(4)),
        ];
        let p = inspect(&files).unwrap();
        assert_eq!(p[0].action, Action::Create(4 << 20));
        assert_eq!(p[1].action, Action::Use);
        let created = create(&p, None).unwrap();
        assert_eq!(created, std::slice::from_ref(&new));
        let m = std::fs::metadata(&new).unwrap();
        assert_eq!(m.len(), 4 << 20);
        assert!(m.blocks() * 512 < m.len(), "sparse");
        assert_eq!(std::fs::read(&old).unwrap(), b"precious");
        // Missing size, missing directory, a directory as disk.
        let e = inspect(&[("disks[0]".into(), dir.join("x.img"), None)]).unwrap_err();
        assert!(e.message.contains("size_mib"), "{e}");
        let e = inspect(&[("disks[0]".into(), dir.join("no/x.img"), Some(1))]).unwrap_err();
        assert!(e.message.contains("does not exist; create it first"), "{e}");
        let e = inspect(&[("disks[0]".into(), dir.clone(), Some(1))]).unwrap_err();
        assert!(
            e.message.contains("neither a regular file nor a block"),
            "{e}"
        );
        let e = inspect(&[("disks[0]".into(), "/dev/null".into(), Some(1))]).unwrap_err();
        assert!(
            e.message
                .starts_with("disks[0].file: /dev/null is a character device"),
            "{e}"
        );
        let e =
            inspect(&[("disks[0]".into(), "/dev/no-such-lv-here".into(), Some(1))]).unwrap_err();
        assert!(e.message.contains("make it first"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
