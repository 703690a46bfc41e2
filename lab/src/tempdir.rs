//! Per-test temporary directories, removed on drop unless `E2E_KEEP=1`.

use crate::error::{Context, Result};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A fresh directory under [`std::env::temp_dir`], unique across processes and threads.
///
/// Names are short on purpose: UML puts its mconsole socket inside, and a Unix socket path is
/// limited to 108 bytes.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `$TMPDIR/e2e-LABEL-PID-N`.
    pub fn new(label: &str) -> Result<TempDir> {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("e2e-{label}-{}-{n}", std::process::id()));
        if path.exists() {
            std::fs::remove_dir_all(&path)
                .context(|| format!("removing stale {}", path.display()))?;
        }
        std::fs::create_dir_all(&path).context(|| format!("creating {}", path.display()))?;
        Ok(TempDir { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `self.path().join(name)`.
    pub fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.path.join(name)
    }
}

/// Whether `E2E_KEEP=1` asks to keep temporary directories for inspection.
pub(crate) fn keep() -> bool {
    std::env::var_os("E2E_KEEP").is_some_and(|v| v == "1")
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if keep() {
            eprintln!("e2e: keeping {} (E2E_KEEP=1)", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_and_removed() {
        let a = TempDir::new("t").unwrap();
        let b = TempDir::new("t").unwrap();
        assert_ne!(a.path(), b.path());
        std::fs::write(a.join("f"), b"x").unwrap();
        let p = a.path().to_path_buf();
        drop(a);
        if !keep() {
            assert!(!p.exists());
        }
    }
}
