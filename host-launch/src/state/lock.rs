//! The launcher's lock: held for its whole life, so a second launch of a running name fails
//! to take it, and a launcher that died loses it.

use super::Dir;
use crate::error::{Error, IoContext, Result};
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;

/// The running launcher's hold on an appliance name.
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

/// Takes the appliance's lock without waiting; `Ok(None)` when another launcher holds it.
pub fn try_lock(dir: &Dir) -> Result<Option<Lock>> {
    Ok(try_flock(&dir.lock())?.map(|file| Lock { _file: file }))
}

/// An exclusive flock on `path` (created, mode 0600) without waiting: the open file holds it;
/// `Ok(None)` when another process holds it.
pub fn try_flock(path: &std::path::Path) -> Result<Option<File>> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)
        .io_context(|| format!("opening {}", path.display()))?;
    // SAFETY: flock on a descriptor this function owns.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(Some(file));
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(None)
    } else {
        Err(Error::host(format!("locking {}: {e}", path.display())))
    }
}

/// Whether a launcher holds the appliance's lock now.
pub fn is_locked(dir: &Dir) -> bool {
    let Ok(file) = File::open(dir.lock()) else {
        return false;
    };
    // SAFETY: flock on a descriptor this function owns; a shared lock is dropped with it.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) };
    rc != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EWOULDBLOCK)
}
