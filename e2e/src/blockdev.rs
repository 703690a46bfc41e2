//! Block devices a test makes for itself: a loop device over a file (with partitions added
//! to it), detached again on drop, also when the test fails.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A loop device attached by this test (`losetup --find`: the kernel picks a free one, so
/// concurrent tests never share one).
#[derive(Debug)]
pub struct LoopDevice {
    path: PathBuf,
    /// Partitions added with [`LoopDevice::add_partition`]: the kernel keeps them past the
    /// detach of a loop device without partition scanning, so they are deleted first.
    partitions: Vec<u32>,
}

impl LoopDevice {
    /// Attaches `file` (with partition scanning, so that its detach drops the partitions
    /// added to it even if deleting them failed).
    pub fn attach(file: &Path) -> Result<LoopDevice, String> {
        let out = Command::new("losetup")
            .args(["--find", "--show", "--partscan"])
            .arg(file)
            .output()
            .map_err(|e| format!("losetup (package mount): {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "losetup --find --show {}: {}",
                file.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        Ok(LoopDevice {
            path,
            partitions: Vec::new(),
        })
    }

    /// `/dev/loopN`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Adds partition `n` of `sectors` from sector `start` (`addpart`, BLKPG: no partition
    /// table parser needed in the host's kernel) and returns a node for it: `/dev/loopNpM`
    /// where udev made it, else one made in `dir` from the number sysfs gives.
    pub fn add_partition(
        &mut self,
        n: u32,
        start: u64,
        sectors: u64,
        dir: &Path,
    ) -> Result<PathBuf, String> {
        let added = Command::new("addpart")
            .arg(&self.path)
            .args([n.to_string(), start.to_string(), sectors.to_string()])
            .output()
            .map_err(|e| format!("addpart (package util-linux): {e}"))?;
        if !added.status.success() {
            return Err(format!(
                "addpart {} {n}: {}",
                self.path.display(),
                String::from_utf8_lossy(&added.stderr).trim()
            ));
        }
        self.partitions.push(n);
        let base = self
            .path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = format!("{base}p{n}");
        let sys = Path::new("/sys/class/block").join(&name).join("dev");
        for _ in 0..50 {
            let dev = Path::new("/dev").join(&name);
            if dev.exists() {
                return Ok(dev);
            }
            if let Ok(text) = std::fs::read_to_string(&sys) {
                let node = dir.join(&name);
                let (major, minor) = text
                    .trim()
                    .split_once(':')
                    .ok_or_else(|| format!("{}: {text:?}", sys.display()))?;
                let made = Command::new("mknod")
                    .arg(&node)
                    .args(["b", major, minor])
                    .status()
                    .map_err(|e| format!("mknod: {e}"))?;
                if !made.success() {
                    return Err(format!("mknod {} b {major} {minor} failed", node.display()));
                }
                return Ok(node);
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Err(format!("{} has no partition {n}", self.path.display()))
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        for n in &self.partitions {
            // A partition just unmounted may be busy for a moment.
            for _ in 0..20 {
                let deleted = Command::new("delpart")
                    .arg(&self.path)
                    .arg(n.to_string())
                    .output();
                if deleted.is_ok_and(|o| o.status.success()) {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
        let _ = Command::new("losetup").arg("-d").arg(&self.path).status();
    }
}

/// The first `len` bytes of a device or file are all zero.
pub fn all_zero(path: &Path, len: usize) -> std::io::Result<bool> {
    use std::io::Read;
    let mut buf = vec![0u8; len];
    std::fs::File::open(path)?.read_exact(&mut buf)?;
    Ok(buf.iter().all(|b| *b == 0))
}
