//! One rollout at a time: `update` holds `<state base>/update.lock` for its whole run, so a
//! second one refuses at once instead of upgrading the same appliances twice.

use crate::error::{Error, IoContext, Result};
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The held rollout lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct RolloutLock {
    _file: File,
}

/// Takes the rollout lock of the state base directory without waiting.
pub fn take(base: &Path) -> Result<RolloutLock> {
    std::fs::create_dir_all(base).io_context(|| format!("creating {}", base.display()))?;
    let path = base.join("update.lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .io_context(|| format!("opening {}", path.display()))?;
    // SAFETY: flock on a descriptor this function owns.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(RolloutLock { _file: file });
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        return Err(Error::busy(format!(
            "another rollout is running (it holds {}); wait for it to finish",
            path.display()
        )));
    }
    Err(Error::host(format!("locking {}: {e}", path.display())))
}
