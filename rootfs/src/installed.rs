//! Where the programs find the project's own files without configuration: the Debian
//! package's `/usr/lib/host-launch` (the UML kernel `linux`, the static `guest-init`, the
//! conformance kit's `conformance-probe`), an administrator's `/usr/local/lib/host-launch`
//! before it, and, for a development build only, the checkout it was built in.
//!
//! A development build is one that runs from inside the checkout it was compiled in (its
//! cargo target directory: `cargo run`, the tests). A binary copied elsewhere, and every
//! packaged binary, never looks there: the package is built with `--cfg packaged`, which
//! leaves the checkout's path out of the binary altogether (no build paths in a package).

use std::path::PathBuf;

/// The package's directory (Debian policy: architecture-dependent files under /usr/lib).
pub const LIB_DIR: &str = "/usr/lib/host-launch";
/// The administrator's own copies (`kernel/build --install`), which win over the package's.
pub const LOCAL_LIB_DIR: &str = "/usr/local/lib/host-launch";

/// `NAME` in [`LOCAL_LIB_DIR`], else in [`LIB_DIR`]: the first that is a file.
pub fn lib_file(name: &str) -> Option<PathBuf> {
    [LOCAL_LIB_DIR, LIB_DIR]
        .iter()
        .map(|d| PathBuf::from(d).join(name))
        .find(|p| p.is_file())
}

/// The checkout this program was built in, when it runs from there (a development build);
/// `None` for a packaged or copied binary.
#[cfg(not(packaged))]
pub fn dev_checkout() -> Option<PathBuf> {
    let root = crate::guest_init::workspace_root();
    let exe = std::env::current_exe().ok()?;
    let inside = |dir: PathBuf| {
        std::fs::canonicalize(dir)
            .ok()
            .is_some_and(|d| exe.starts_with(d))
    };
    (inside(root.clone()) || inside(crate::guest_init::target_dir())).then_some(root)
}

/// A packaged build knows no checkout.
#[cfg(packaged)]
pub fn dev_checkout() -> Option<PathBuf> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_binary_is_a_development_build() {
        // The test runs from the workspace's target directory.
        assert_eq!(
            dev_checkout(),
            Some(crate::guest_init::workspace_root()),
            "{:?}",
            std::env::current_exe()
        );
    }

    #[test]
    fn lib_files_are_looked_up_in_the_two_dirs_only() {
        assert_eq!(lib_file("no-such-file-of-host-launch"), None);
        if let Some(p) = lib_file("linux") {
            assert!(
                p.starts_with(LOCAL_LIB_DIR) || p.starts_with(LIB_DIR),
                "{p:?}"
            );
        }
    }
}
