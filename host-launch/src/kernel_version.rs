//! The UML kernel's version (`linux --version`) for `state.json` and `check`, run once per
//! kernel file rather than once per start: cached in the state directory's base
//! (`.kernel-versions.json`, root's, on /run's tmpfs, so gone at reboot) under the file's
//! identity ([`crate::identity_cache`], which says why that is safe).

use std::path::Path;
use std::time::Duration;

/// The cache file in the state base directory (not a directory: `state::list` skips it).
pub const CACHE_FILE: &str = ".kernel-versions.json";

/// A version line longer than this is not kept (UML prints about 20 bytes).
const MAX_VERSION_BYTES: usize = 200;

/// The kernel's version: from the cache in `cache_dir` when the file is the one it was, else
/// by running it (and stored, when `cache_dir` is writable).
pub fn version(kernel: &Path, cache_dir: &Path) -> Option<String> {
    version_after(kernel, cache_dir, crate::identity_cache::SETTLED)
}

/// [`version`], stored only for a kernel file that changed `settled` or longer ago.
fn version_after(kernel: &Path, cache_dir: &Path, settled: Duration) -> Option<String> {
    let mut ran = None;
    let cache = cache_dir.join(CACHE_FILE);
    let cached = crate::identity_cache::cached_after(&cache, &[kernel], settled, || {
        let v = vmm::kernel::version(kernel);
        ran = v.clone();
        v.filter(|v| v.len() <= MAX_VERSION_BYTES)
    });
    cached.or(ran)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;
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

    /// Longer than a tick of the clock file timestamps come from, so a change after it has
    /// a later ctime.
    fn pause() {
        std::thread::sleep(Duration::from_millis(30));
    }

    /// The version as a start finds it (stored whatever the file's age).
    fn seen(k: &Path, d: &Path) -> String {
        version_after(k, d, Duration::ZERO).unwrap_or_default()
    }

    fn runs(dir: &Path) -> usize {
        std::fs::read_to_string(dir.join("runs"))
            .unwrap_or_default()
            .lines()
            .count()
    }

    #[test]
    fn runs_the_kernel_once_for_the_same_file() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let k = fake_kernel(d, "linux", "6.1.1-a");
        assert_eq!(seen(&k, d), "6.1.1-a");
        assert_eq!(seen(&k, d), "6.1.1-a");
        assert_eq!(runs(d), 1, "the second start ran the kernel again");
    }

    #[test]
    fn a_kernel_written_in_place_is_run_again() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let k = fake_kernel(d, "linux", "6.1.1-a");
        assert_eq!(seen(&k, d), "6.1.1-a");
        let ino = std::fs::metadata(&k).unwrap().ino();
        pause();
        // Same inode, same size (the version strings are as long), new bytes.
        let text = std::fs::read_to_string(&k).unwrap().replace("1-a", "1-b");
        std::fs::write(&k, text).unwrap();
        assert_eq!(std::fs::metadata(&k).unwrap().ino(), ino);
        assert_eq!(seen(&k, d), "6.1.1-b");
        assert_eq!(runs(d), 2);
    }

    #[test]
    fn a_kernel_replaced_by_a_rename_is_run_again() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let k = fake_kernel(d, "linux", "6.1.1-a");
        assert_eq!(seen(&k, d), "6.1.1-a");
        pause();
        let new = fake_kernel(d, "linux.new", "6.1.2-c");
        std::fs::rename(&new, &k).unwrap();
        assert_eq!(seen(&k, d), "6.1.2-c");
        assert_eq!(runs(d), 2);
    }

    #[test]
    fn a_touched_back_kernel_is_run_again() {
        // mtime set back to what it was: the ctime still moved.
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let k = fake_kernel(d, "linux", "6.1.1-a");
        assert_eq!(seen(&k, d), "6.1.1-a");
        let m = std::fs::metadata(&k).unwrap();
        pause();
        let text = std::fs::read_to_string(&k).unwrap().replace("1-a", "1-z");
        std::fs::write(&k, text).unwrap();
        let f = std::fs::File::options().write(true).open(&k).unwrap();
        f.set_modified(m.modified().unwrap()).unwrap();
        drop(f);
        assert_eq!(seen(&k, d), "6.1.1-z");
    }

    #[test]
    fn a_cache_that_is_not_ours_is_ignored() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        std::fs::write(d.join(CACHE_FILE), b"{\"not\": \"a list\"").unwrap();
        let k = fake_kernel(d, "linux", "6.1.1-a");
        assert_eq!(seen(&k, d), "6.1.1-a");
        assert_eq!(seen(&k, d), "6.1.1-a");
        assert_eq!(runs(d), 1, "the garbage was not replaced by a good cache");
    }
}
