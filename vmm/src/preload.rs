//! The `ptrace` wrapper preloaded into a dynamically linked UML kernel, so that Debian's
//! `linux.uml` 6.1 runs on a CPU whose XSAVE area is larger than the 2696 bytes it writes back
//! (AMX: 11008). Without it the host refuses every write of a process's floating-point state
//! and no guest process runs; the project's statically linked kernel carries the same fix as
//! `kernel/patches/0005` and needs no wrapper (nothing can be preloaded into it anyway). The
//! source and why it is safe: `vmm/preload/xstate.c`. On a host whose XSAVE area fits, every
//! call passes through unchanged.
//!
//! The shared object is built with the crate and written once per boot of the host to
//! [`DIR`], owned by root and read-only to everyone else. The jail binds it in, read-only, at
//! [`JAIL_PATH`] (the jail's own name, so that no host directory shows in the jail) and the
//! kernel starts with `LD_PRELOAD` naming it.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The wrapper, built by `build.rs`.
const OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/uml-xstate-preload.so"));

/// Where the wrapper is written: a tmpfs on Debian, so a stale copy cannot outlive a reboot.
pub const DIR: &str = "/run/uml-vmm";

/// The wrapper's file name in [`DIR`].
const FILE_NAME: &str = "uml-xstate-preload.so";

/// The wrapper could not be written.
#[derive(Debug, thiserror::Error)]
#[error(
    "{what} {} (the ptrace wrapper a dynamically linked UML kernel is started with): {source}",
    path.display()
)]
pub struct PreloadError {
    what: &'static str,
    path: PathBuf,
    source: std::io::Error,
}

/// The wrapper's host path, written there unless a file with the same bytes already is.
pub fn object() -> Result<PathBuf, PreloadError> {
    object_in(Path::new(DIR))
}

fn object_in(dir: &Path) -> Result<PathBuf, PreloadError> {
    let path = dir.join(FILE_NAME);
    if std::fs::read(&path).is_ok_and(|b| b == OBJECT) {
        return Ok(path);
    }
    let fail = |what: &'static str, source: std::io::Error| PreloadError {
        what,
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(|e| fail("creating the directory of", e))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| fail("making world-readable the directory of", e))?;
    // Each writer its own temporary file, renamed over: launchers start at once.
    let tmp = dir.join(format!(".{FILE_NAME}.{}", std::process::id()));
    let written = std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(OBJECT))
        .and_then(|()| std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o444)))
        .and_then(|()| std::fs::rename(&tmp, &path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail("writing", e));
    }
    Ok(path)
}

/// Where the jail holds the wrapper.
pub const JAIL_PATH: &str = "/.uml-xstate-preload.so";

/// The kernel's environment entry that preloads the wrapper in its jail.
pub fn env_entry() -> String {
    format!("LD_PRELOAD={JAIL_PATH}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_object_is_written_once_and_rewritten_when_it_differs() {
        let dir = std::env::temp_dir().join(format!("vmm-preload-{}", std::process::id()));
        let p = object_in(&dir).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), OBJECT);
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o444);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::write(&p, b"stale").unwrap();
        assert_eq!(std::fs::read(object_in(&dir).unwrap()).unwrap(), OBJECT);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
