//! Which UML kernel to boot: the one named (a spec's `kernel`, then `UML_KERNEL`), else the
//! project's own (`kernel/`: installed in /usr/local/lib/host-launch or by the package in
//! /usr/lib/host-launch, or, for a development build only, built in its checkout), else
//! Debian's. A start says which it used, so `host-launch check` and `status` can show it.

use std::path::{Path, PathBuf};

/// Debian's UML kernel (package user-mode-linux).
pub const DEBIAN_KERNEL: &str = "/usr/bin/linux.uml";

/// The project's kernel's file name in the installed directories (`rootfs::installed`).
pub const KERNEL_FILE: &str = "linux";

/// The environment variable that names another kernel.
pub const KERNEL_ENV: &str = "UML_KERNEL";

/// The project's kernel as `kernel/build` leaves it in the checkout a development build runs
/// from; `None` for an installed binary, which never looks into a build tree.
pub fn built_kernel() -> Option<PathBuf> {
    rootfs::installed::dev_checkout().map(|c| c.join("build/kernel/linux"))
}

/// The project's kernel where it is installed (`/usr/local/lib/host-launch/linux`, then the
/// package's `/usr/lib/host-launch/linux`).
pub fn installed_kernel() -> Option<PathBuf> {
    rootfs::installed::lib_file(KERNEL_FILE)
}

/// The kernel to boot when the spec names none: `$UML_KERNEL`, else the project's kernel
/// when it is installed (or built, for a development build), else [`DEBIAN_KERNEL`].
pub fn default_kernel() -> PathBuf {
    if let Some(k) = std::env::var_os(KERNEL_ENV).filter(|k| !k.is_empty()) {
        return PathBuf::from(k);
    }
    installed_kernel()
        .or_else(|| built_kernel().filter(|p| p.is_file()))
        .unwrap_or_else(|| PathBuf::from(DEBIAN_KERNEL))
}

/// Whose kernel this is, for people.
pub fn whose(kernel: &Path) -> &'static str {
    let same = |other: &Path| {
        std::fs::canonicalize(kernel)
            .ok()
            .zip(std::fs::canonicalize(other).ok())
            .is_some_and(|(a, b)| a == b)
    };
    if same(Path::new(DEBIAN_KERNEL)) {
        "Debian's"
    } else if installed_kernel()
        .into_iter()
        .chain(built_kernel())
        .any(|p| same(&p))
    {
        "the project's"
    } else {
        "named"
    }
}

/// The kernel's version as UML prints it (`linux --version`), for people: read from the
/// banner in the binary when it has one ([`release_in_banner`]), else by running it. Every
/// start records it, and running a UML kernel for it cost 2 ms on a quiet host and 10–50 ms
/// on a loaded one, before the VM could boot.
pub fn version(kernel: &Path) -> Option<String> {
    if let Some(v) = std::fs::read(kernel)
        .ok()
        .and_then(|bytes| release_in_banner(&bytes))
    {
        return Some(v);
    }
    version_by_running(kernel)
}

/// The banner every Linux binary carries (`linux_banner`): `Linux version RELEASE (BUILDER)`.
const BANNER: &[u8] = b"Linux version ";

/// The release of the first banner in a kernel binary whose release looks like one (what
/// `uname -r` and UML's `--version` print: `6.1.192-8a6812d4e79c`); `None` without one.
pub fn release_in_banner(bytes: &[u8]) -> Option<String> {
    memchr::memmem::find_iter(bytes, BANNER).find_map(|at| {
        let rest = bytes.get(at + BANNER.len()..)?;
        let end = rest.iter().take(65).position(|&b| b == b' ')?;
        let release = rest.get(..end)?;
        let plausible = release.first().is_some_and(u8::is_ascii_digit)
            && release
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b".+_-~".contains(&b))
            && rest.get(end + 1) == Some(&b'(');
        plausible.then(|| String::from_utf8_lossy(release).into_owned())
    })
}

/// `linux --version`'s first line.
fn version_by_running(kernel: &Path) -> Option<String> {
    let out = std::process::Command::new(kernel)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().next().map(|l| l.trim().to_string())
}

/// The kernel, whose it is and its version, e.g. `/usr/bin/linux.uml (Debian's, 6.1.0)`: what
/// host-launch's `check` and `status` and the conformance kit show.
pub fn describe(kernel: &Path) -> String {
    let which = whose(kernel);
    match version(kernel) {
        Some(v) => format!("{} ({which}, {v})", kernel.display()),
        None => format!("{} ({which})", kernel.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_release_comes_from_the_banner() {
        let bin = b"\0Linux version %s (%s)\0xLinux version 6.1.192-8a6812d4e79c (appliance@kernel-build) (gcc) #1\0";
        assert_eq!(
            release_in_banner(bin).as_deref(),
            Some("6.1.192-8a6812d4e79c")
        );
        assert_eq!(release_in_banner(b"Linux version 6.1.176"), None);
        assert_eq!(release_in_banner(b"no banner here"), None);
        let long = format!("Linux version 6{} (x)", "1".repeat(80));
        assert_eq!(release_in_banner(long.as_bytes()), None);
    }

    #[test]
    fn the_banner_says_what_running_the_kernel_says() {
        let kernels = [Some(PathBuf::from(DEBIAN_KERNEL)), built_kernel()];
        let mut compared = 0;
        for k in kernels.into_iter().flatten().filter(|k| k.is_file()) {
            let bytes = std::fs::read(&k).unwrap();
            assert_eq!(
                release_in_banner(&bytes),
                version_by_running(&k),
                "{}",
                k.display()
            );
            compared += 1;
        }
        assert!(
            compared > 0,
            "no UML kernel to compare: run scripts/setup (Debian's) or kernel/build"
        );
    }

    #[test]
    fn whose_kernel() {
        assert_eq!(whose(Path::new("/bin/sh")), "named");
        if Path::new(DEBIAN_KERNEL).is_file() {
            assert_eq!(whose(Path::new(DEBIAN_KERNEL)), "Debian's");
        }
    }
}
