//! Which UML kernel to boot: the one named (a spec's `kernel`, then `UML_KERNEL`), else the
//! project's own (`kernel/`: installed, or built in this checkout), else Debian's. A start
//! says which it used, so `host-launch check` and `status` can show it.

use std::path::{Path, PathBuf};

/// Debian's UML kernel (package user-mode-linux).
pub const DEBIAN_KERNEL: &str = "/usr/bin/linux.uml";

/// Where `kernel/build --install` puts the project's kernel.
pub const INSTALLED_KERNEL: &str = "/usr/local/lib/host-launch/linux";

/// The environment variable that names another kernel.
pub const KERNEL_ENV: &str = "UML_KERNEL";

/// The project's kernel as `kernel/build` leaves it in the checkout this was built from.
pub fn built_kernel() -> PathBuf {
    rootfs::workspace_root().join("build/kernel/linux")
}

/// The kernel to boot when the spec names none: `$UML_KERNEL`, else the project's kernel
/// when it is installed or built, else [`DEBIAN_KERNEL`].
pub fn default_kernel() -> PathBuf {
    if let Some(k) = std::env::var_os(KERNEL_ENV).filter(|k| !k.is_empty()) {
        return PathBuf::from(k);
    }
    [PathBuf::from(INSTALLED_KERNEL), built_kernel()]
        .into_iter()
        .find(|p| p.is_file())
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
    } else if same(Path::new(INSTALLED_KERNEL)) || same(&built_kernel()) {
        "the project's"
    } else {
        "named"
    }
}

/// The kernel's version as UML prints it (`linux --version`), for people.
pub fn version(kernel: &Path) -> Option<String> {
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
    fn whose_kernel() {
        assert_eq!(whose(Path::new("/bin/sh")), "named");
        if Path::new(DEBIAN_KERNEL).is_file() {
            assert_eq!(whose(Path::new(DEBIAN_KERNEL)), "Debian's");
        }
    }
}
