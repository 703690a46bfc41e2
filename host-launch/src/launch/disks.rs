//! Data disks on the host: checked before anything is created, created sparse when absent,
//! never truncated, resized or overwritten when present.

use crate::error::{Error, IoContext, Result};
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
/// file; a missing one needs `size_mib` and a writable directory to be created in.
pub fn inspect(files: &[(String, PathBuf, Option<u64>)]) -> Result<Vec<DiskFile>> {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for (at, path, size_mib) in files {
        match std::fs::metadata(path) {
            Ok(m) if !m.is_file() => problems.push(format!(
                "{at}.file: {} exists but is not a regular file; a data disk must be a plain file",
                path.display()
            )),
            Ok(_) => match OpenOptions::new().read(true).write(true).open(path) {
                Ok(_) => out.push(DiskFile {
                    path: path.clone(),
                    action: Action::Use,
                    at: at.clone(),
                }),
                Err(e) => problems.push(format!(
                    "{at}.file: {} exists but cannot be opened for writing ({e}); fix its \
                     permissions",
                    path.display()
                )),
            },
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    || e.raw_os_error() == Some(libc::ENOTDIR) =>
            {
                let Some(size) = size_mib else {
                    problems.push(format!(
                        "{at}.size_mib: {} does not exist, and without size_mib host-launch \
                         cannot create it; give size_mib or the path of an existing disk",
                        path.display()
                    ));
                    continue;
                };
                let parent = path.parent().unwrap_or(Path::new("/"));
                match std::fs::metadata(parent) {
                    Ok(m) if m.is_dir() => {
                        if nix::unistd::access(parent, nix::unistd::AccessFlags::W_OK).is_err() {
                            problems.push(format!(
                                "{at}.file: cannot create {}: the directory {} is not writable",
                                path.display(),
                                parent.display()
                            ));
                            continue;
                        }
                        out.push(DiskFile {
                            path: path.clone(),
                            action: Action::Create(size.saturating_mul(1024 * 1024)),
                            at: at.clone(),
                        });
                    }
                    Ok(_) => problems.push(format!(
                        "{at}.file: cannot create {}: {} is not a directory; fix the path",
                        path.display(),
                        parent.display()
                    )),
                    Err(_) => problems.push(format!(
                        "{at}.file: cannot create {}: the directory {} does not exist; create \
                         it first or fix the path",
                        path.display(),
                        parent.display()
                    )),
                }
            }
            Err(e) => problems.push(format!("{at}.file: cannot use {} ({e})", path.display())),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(Error::invalid(problems.join("\n")))
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

/// (device, inode) of a file, to tell whether two paths are the same disk.
pub fn identity(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
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
        assert!(e.message.contains("not a regular file"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
