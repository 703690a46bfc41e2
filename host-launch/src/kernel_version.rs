//! The UML kernel's version (`linux --version`) for `state.json` and `check`, run once per
//! kernel file rather than once per start: cached in the state directory's base
//! (`.kernel-versions.json`, root's, on /run's tmpfs, so gone at reboot) under the file's
//! identity.
//!
//! Why the identity is enough: it is the device, inode, size, mtime and **ctime** of the file
//! the path leads to (symlinks followed, as exec follows them). A new kernel put in place by a
//! rename or a copy is another inode or a new ctime; one written in place changes its mtime
//! and ctime; and no program can set a ctime (utimensat sets mtime only, the kernel then sets
//! ctime to now), so `touch -d` cannot make a changed file look unchanged. An inode number
//! used again after a delete comes with the new file's ctime. A version is stored only when
//! the file's identity is the same after the run as before it.

use serde::{Deserialize, Serialize};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The cache file in the state base directory (not a directory: `state::list` skips it).
pub const CACHE_FILE: &str = ".kernel-versions.json";

/// A cache file larger than this is not ours: read as empty.
const MAX_CACHE_BYTES: u64 = 64 * 1024;

/// Kernels remembered; the oldest go first.
const MAX_ENTRIES: usize = 16;

/// A version line longer than this is not kept (UML prints about 20 bytes).
const MAX_VERSION_BYTES: usize = 200;

/// What identifies the bytes of a kernel file (see the module's docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Identity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
    ctime: i64,
    ctime_nsec: i64,
}

impl Identity {
    fn of(kernel: &Path) -> Option<Identity> {
        let m = std::fs::metadata(kernel).ok()?;
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
    id: Identity,
    version: String,
}

/// The kernel's version: from the cache in `cache_dir` when the file is the one it was, else
/// by running it (and stored, when `cache_dir` is writable).
pub fn version(kernel: &Path, cache_dir: &Path) -> Option<String> {
    let Some(id) = Identity::of(kernel) else {
        return vmm::kernel::version(kernel);
    };
    let cache = cache_dir.join(CACHE_FILE);
    let mut entries = read(&cache);
    if let Some(e) = entries.iter().find(|e| e.id == id) {
        return Some(e.version.clone());
    }
    let v = vmm::kernel::version(kernel)?;
    if v.len() <= MAX_VERSION_BYTES && Identity::of(kernel).as_ref() == Some(&id) {
        entries.retain(|e| e.id != id);
        entries.push(Entry {
            id,
            version: v.clone(),
        });
        let extra = entries.len().saturating_sub(MAX_ENTRIES);
        entries.drain(..extra);
        write(&cache, &entries);
    }
    Some(v)
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
        .map(|mut v| {
            v.retain(|e| e.version.len() <= MAX_VERSION_BYTES);
            v
        })
        .unwrap_or_default()
}

/// Replaces the cache atomically (a temporary file of this process's, renamed): a reader
/// sees the old list or the new. A write that fails only costs the next start a run.
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
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    /// A "kernel" that prints `version` and counts its runs in `runs` beside it.
    fn fake_kernel(dir: &Path, name: &str, version: &str) -> PathBuf {
        let k = dir.join(name);
        let runs = dir.join("runs");
        std::fs::write(
            &k,
            format!("#!/bin/sh\necho x >> {}\necho {version}\n", runs.display()),
        )
        .unwrap();
        std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o755)).unwrap();
        k
    }

    fn runs(dir: &Path) -> usize {
        std::fs::read_to_string(dir.join("runs"))
            .unwrap_or_default()
            .lines()
            .count()
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "host-launch-kver-{tag}-{}-{}",
            std::process::id(),
            crate::state::now_ms()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn runs_the_kernel_once_for_the_same_file() {
        let d = temp_dir("once");
        let k = fake_kernel(&d, "linux", "6.1.1-a");
        assert_eq!(version(&k, &d).as_deref(), Some("6.1.1-a"));
        assert_eq!(version(&k, &d).as_deref(), Some("6.1.1-a"));
        assert_eq!(runs(&d), 1, "the second start ran the kernel again");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_kernel_written_in_place_is_run_again() {
        let d = temp_dir("inplace");
        let k = fake_kernel(&d, "linux", "6.1.1-a");
        assert_eq!(version(&k, &d).as_deref(), Some("6.1.1-a"));
        let ino = std::fs::metadata(&k).unwrap().ino();
        // Same inode, same size (the version strings are as long), new bytes.
        let text = std::fs::read_to_string(&k).unwrap().replace("1-a", "1-b");
        std::fs::write(&k, text).unwrap();
        assert_eq!(std::fs::metadata(&k).unwrap().ino(), ino);
        assert_eq!(version(&k, &d).as_deref(), Some("6.1.1-b"));
        assert_eq!(runs(&d), 2);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_kernel_replaced_by_a_rename_is_run_again() {
        let d = temp_dir("rename");
        let k = fake_kernel(&d, "linux", "6.1.1-a");
        assert_eq!(version(&k, &d).as_deref(), Some("6.1.1-a"));
        let new = fake_kernel(&d, "linux.new", "6.1.2-c");
        std::fs::rename(&new, &k).unwrap();
        assert_eq!(version(&k, &d).as_deref(), Some("6.1.2-c"));
        assert_eq!(runs(&d), 2);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_touched_back_kernel_is_run_again() {
        // mtime set back to what it was: the ctime still moved.
        let d = temp_dir("touch");
        let k = fake_kernel(&d, "linux", "6.1.1-a");
        assert_eq!(version(&k, &d).as_deref(), Some("6.1.1-a"));
        let m = std::fs::metadata(&k).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let text = std::fs::read_to_string(&k).unwrap().replace("1-a", "1-z");
        std::fs::write(&k, text).unwrap();
        let f = std::fs::File::options().write(true).open(&k).unwrap();
        f.set_modified(m.modified().unwrap()).unwrap();
        drop(f);
        assert_eq!(version(&k, &d).as_deref(), Some("6.1.1-z"));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_cache_that_is_not_ours_is_ignored() {
        let d = temp_dir("garbage");
        std::fs::write(d.join(CACHE_FILE), b"{\"not\": \"a list\"").unwrap();
        let k = fake_kernel(&d, "linux", "6.1.1-a");
        assert_eq!(version(&k, &d).as_deref(), Some("6.1.1-a"));
        assert_eq!(version(&k, &d).as_deref(), Some("6.1.1-a"));
        assert_eq!(runs(&d), 1, "the garbage was not replaced by a good cache");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
