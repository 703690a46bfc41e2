//! What the launcher checks of its own privileges and of the files a VM gets. The launcher
//! runs as root (it builds the jail); the VM never does: it runs as its own uid (see
//! `vmm::ids`), so the files it shares with other VMs (the kernel, the image) must be
//! readable by any user.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The file itself when it exists but others may not read it (its mode lacks `o+r`).
pub fn not_world_readable(path: &Path) -> Option<PathBuf> {
    let meta = std::fs::metadata(path).ok()?;
    (meta.mode() & 0o004 == 0).then(|| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn world_readable() {
        assert_eq!(not_world_readable(Path::new("/etc/hostname")), None);
        assert_eq!(
            not_world_readable(Path::new("/etc/shadow")),
            Some(PathBuf::from("/etc/shadow"))
        );
        assert_eq!(not_world_readable(Path::new("/no/such")), None);
    }
}
