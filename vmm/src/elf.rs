//! The files a UML kernel binary needs in its jail: itself and, when it is dynamically
//! linked (Debian's is), its program interpreter and the libraries that loader maps.
//!
//! The libraries are found by the same ELF closure the image builder uses for guest programs
//! (`rootfs::closure`: `DT_NEEDED` recursively, `DT_RPATH`/`DT_RUNPATH`, then Debian's
//! multiarch directories), at the paths the loader looks them up, so the jail can hold each
//! one where the loader will ask for it, plus the `ptrace` wrapper it is started with
//! ([`crate::preload`]). Nothing is executed. A statically linked kernel (the project's own,
//! `kernel/`) needs nothing more.

use crate::jail::Access;
use rootfs::closure::{self, Root};
use rootfs::elf;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Why the kernel's files cannot be found.
#[derive(Debug, thiserror::Error)]
pub enum KernelFilesError {
    #[error("{0}: the kernel's path must be absolute")]
    NotAbsolute(String),
    #[error("reading {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Its shared libraries (each problem as the closure says it).
    #[error("{}", .0.join("; "))]
    Libraries(Vec<String>),
    #[error(transparent)]
    Preload(#[from] crate::preload::PreloadError),
}

/// Every file the kernel binary needs to start, itself first, with how the jail binds it.
pub fn runtime_files(kernel: &Path) -> Result<Vec<(PathBuf, Access)>, KernelFilesError> {
    let name = kernel.to_string_lossy().into_owned();
    if !kernel.is_absolute() {
        return Err(KernelFilesError::NotAbsolute(name));
    }
    if is_static(kernel)? {
        return Ok(vec![(kernel.to_path_buf(), Access::Exec)]);
    }
    let found = closure::resolve(&[(name.clone(), Root::Program)], Path::new("/"))
        .map_err(KernelFilesError::Libraries)?;
    let mut files = vec![(kernel.to_path_buf(), Access::Exec)];
    files.extend(
        found
            .into_keys()
            .filter(|path| *path != name)
            .map(|path| (PathBuf::from(path), Access::Exec)),
    );
    files.push((crate::preload::object()?, Access::Preload));
    Ok(files)
}

/// Whether the program headers (in the file's first 64 KiB) name no loader and no dynamic
/// section: then nothing else is needed, and the multi-MiB kernel is not read whole.
fn is_static(program: &Path) -> Result<bool, KernelFilesError> {
    let mut head = Vec::new();
    std::fs::File::open(program)
        .and_then(|f| f.take(64 * 1024).read_to_end(&mut head))
        .map_err(|source| KernelFilesError::Read {
            path: program.to_path_buf(),
            source,
        })?;
    // A dynamic file's section may lie past the head: parse errors there mean "not static".
    Ok(elf::parse(&head).is_ok_and(|d| d.is_static()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dynamic_program_needs_its_loader_libc_and_the_ptrace_wrapper() {
        let files = runtime_files(Path::new("/bin/sh")).unwrap();
        let exec = |p: &str| (PathBuf::from(p), Access::Exec);
        assert_eq!(files[0], exec("/bin/sh"));
        assert!(
            files.contains(&exec("/lib64/ld-linux-x86-64.so.2")),
            "{files:?}"
        );
        assert!(
            files.contains(&exec("/lib/x86_64-linux-gnu/libc.so.6")),
            "{files:?}"
        );
        assert!(
            files.contains(&(crate::preload::object().unwrap(), Access::Preload)),
            "{files:?}"
        );
    }

    #[test]
    fn a_static_program_needs_nothing_more() {
        // busybox-static, which scripts/setup installs.
        let files = runtime_files(Path::new("/bin/busybox")).unwrap();
        assert_eq!(files, [(PathBuf::from("/bin/busybox"), Access::Exec)]);
    }

    #[test]
    fn not_elf_is_an_error() {
        let e = runtime_files(Path::new("/etc/passwd")).unwrap_err();
        assert!(e.to_string().contains("/etc/passwd"), "{e}");
        assert!(runtime_files(Path::new("bin/sh")).is_err());
    }
}
