//! Which UML kernel to boot: the one named (a spec's `kernel`, `UML_KERNEL`), else Debian's.
//! A start says which it used, so `host-launch check` and `status` can show it.

use std::path::{Path, PathBuf};

/// Debian's UML kernel (package user-mode-linux).
pub const DEBIAN_KERNEL: &str = "/usr/bin/linux.uml";

/// The environment variable that names another kernel.
pub const KERNEL_ENV: &str = "UML_KERNEL";

/// The kernel to boot when nothing names one: `$UML_KERNEL`, else [`DEBIAN_KERNEL`].
pub fn default_kernel() -> PathBuf {
    std::env::var_os(KERNEL_ENV)
        .filter(|k| !k.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEBIAN_KERNEL))
}

/// The kernel's version as UML prints it (`linux.uml --version`), for people.
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
