//! Values worked out from files (a kernel's version, an image's digest), kept under the
//! files' identity in a small JSON file of the state base (root's, on /run's tmpfs, so gone
//! at reboot), so that each is worked out once per file rather than once per start.
//!
//! Why the identity is enough: it is the device, inode, size, mtime and **ctime** of the file
//! a path leads to (symlinks followed, as exec and open follow them). A file put in place by
//! a rename or a copy is another inode or a new ctime; one written in place changes its mtime
//! and ctime; and no program can set a ctime (utimensat sets mtime only, the kernel then sets
//! ctime to now), so `touch -d` cannot make a changed file look unchanged. An inode number
//! used again after a delete comes with the new file's ctime. A value is stored only when
//! the files' identities are the same after it was worked out as before, and only for files
//! whose last change is [`SETTLED`] old: timestamps come from a coarse clock (a tick of a few
//! milliseconds), so a file changed again within the tick of its caching would keep its
//! identity (git's "racily clean" entries). Only root writes the state base; a cache that
//! does not parse, or is too large, is ignored.

use serde::{Deserialize, Serialize};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// A cache file larger than this is not ours: read as empty.
const MAX_CACHE_BYTES: u64 = 64 * 1024;

/// Entries kept; the oldest go first.
const MAX_ENTRIES: usize = 16;

/// How long ago a file must have changed for its value to be stored: far more than a tick of
/// the clock file timestamps are taken from.
pub const SETTLED: std::time::Duration = std::time::Duration::from_secs(1);

/// What identifies the bytes of a file (see the module's docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
    ctime: i64,
    ctime_nsec: i64,
}

impl Identity {
    /// Whether the file last changed `settled` or longer ago.
    fn settled(&self, settled: std::time::Duration) -> bool {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let ctime = self.ctime as f64 + self.ctime_nsec as f64 * 1e-9;
        now - ctime >= settled.as_secs_f64()
    }

    pub fn of(path: &Path) -> Option<Identity> {
        let m = std::fs::metadata(path).ok()?;
        Some(Identity {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: m.mtime(),
            mtime_nsec: m.mtime_nsec(),
            ctime: m.ctime(),
            ctime_nsec: m.ctime_nsec(),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    ids: Vec<Identity>,
    value: String,
}

fn identities(files: &[&Path]) -> Option<Vec<Identity>> {
    files.iter().map(|f| Identity::of(f)).collect()
}

/// The value for `files` from `cache` when they are the files it was worked out from, else
/// `work()`'s (stored when the files did not change meanwhile). `None` when `work` gives none.
pub fn cached(
    cache: &Path,
    files: &[&Path],
    work: impl FnOnce() -> Option<String>,
) -> Option<String> {
    cached_after(cache, files, SETTLED, work)
}

/// [`cached`], storing values only for files that changed `settled` or longer ago.
pub fn cached_after(
    cache: &Path,
    files: &[&Path],
    settled: std::time::Duration,
    work: impl FnOnce() -> Option<String>,
) -> Option<String> {
    let Some(ids) = identities(files) else {
        return work();
    };
    let mut entries = read(cache);
    if let Some(e) = entries.iter().find(|e| e.ids == ids) {
        return Some(e.value.clone());
    }
    let value = work()?;
    if identities(files).as_ref() == Some(&ids) && ids.iter().all(|i| i.settled(settled)) {
        entries.retain(|e| e.ids != ids);
        entries.push(Entry {
            ids,
            value: value.clone(),
        });
        let extra = entries.len().saturating_sub(MAX_ENTRIES);
        entries.drain(..extra);
        write(cache, &entries);
    }
    Some(value)
}

/// The entries, or none when the file is missing, too large or not ours.
fn read(cache: &Path) -> Vec<Entry> {
    match std::fs::metadata(cache) {
        Ok(m) if m.is_file() && m.len() <= MAX_CACHE_BYTES => {}
        _ => return Vec::new(),
    }
    std::fs::read(cache)
        .ok()
        .and_then(|b| serde_json::from_slice::<Vec<Entry>>(&b).ok())
        .unwrap_or_default()
}

/// Replaces the cache atomically (a temporary file of this process's, renamed): a reader
/// sees the old list or the new. A write that fails only costs the next start the work.
fn write(cache: &Path, entries: &[Entry]) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let Ok(text) = serde_json::to_vec(entries) else {
        return;
    };
    let mut tmp = cache.as_os_str().to_owned();
    tmp.push(format!(".tmp.{}", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o644)
        .open(&tmp)
        .and_then(|mut f| f.write_all(&text));
    if written.is_err() || std::fs::rename(&tmp, cache).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_changed_just_now_is_not_stored() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let f = d.join("file");
        std::fs::write(&f, b"x").unwrap();
        let cache = d.join("cache.json");
        let mut runs = 0;
        for _ in 0..2 {
            cached_after(&cache, &[&f], std::time::Duration::from_secs(60), || {
                runs += 1;
                Some("v".into())
            });
        }
        assert_eq!(
            runs, 2,
            "a value for a file changed a moment ago was stored"
        );
        assert!(!cache.exists());
    }
}
