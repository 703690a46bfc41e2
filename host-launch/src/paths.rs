//! Paths a spec names: relative to the spec's directory, made absolute for records.

use std::path::{Path, PathBuf};

/// `path` relative to `base` unless absolute.
pub fn resolve(base: &Path, path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// Makes a path absolute against the current directory (without resolving symlinks).
pub fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}
