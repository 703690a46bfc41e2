//! One rollout at a time: `update` holds `<state base>/update.lock` for its whole run, so a
//! second one refuses at once instead of upgrading the same appliances twice.

use crate::error::{Error, IoContext, Result};
use std::fs::File;
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
    match crate::state::try_flock(&path)? {
        Some(file) => Ok(RolloutLock { _file: file }),
        None => Err(Error::busy(format!(
            "another rollout is running (it holds {}); wait for it to finish",
            path.display()
        ))),
    }
}
