//! Writing an ext4 image from a list of entries: stage a directory tree, turn it into an
//! image with `mkfs.ext4 -d` (no root, no loop mounts), then set every owner and time with
//! `debugfs`, so the same entries give a byte-identical image whoever builds it. The image
//! builder (`build-image/src/build.rs`) and the test harness's root images (`e2e/src/rootfs.rs`)
//! both write their images here.

use crate::error::Error;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What the image holds at one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// A copy of a host file.
    Host(PathBuf),
    Bytes(Vec<u8>),
    Dir,
    Symlink(String),
}

/// One entry of the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub content: Content,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Where it comes from, for messages about conflicts.
    pub origin: String,
}

/// The file system's identity and time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filesystem {
    /// Volume label (at most 16 bytes are kept by mkfs).
    pub label: String,
    pub uuid: String,
    /// The time of every inode and of the superblock, in seconds since the epoch.
    pub epoch: u64,
    /// Free space to leave beyond the estimate, in KiB.
    pub spare_kib: u64,
}

/// Writes the image of `entries` (image path → entry; every parent directory listed) to
/// `output`, replacing it, through a temporary file beside it. Returns the bytes of file
/// content.
pub fn write(
    entries: &BTreeMap<String, Entry>,
    output: &Path,
    fs: &Filesystem,
) -> Result<u64, Error> {
    let mkfs = e2fsprogs_tool("mkfs.ext4")?;
    let debugfs = e2fsprogs_tool("debugfs")?;
    let uuid = &fs.uuid;
    let out_dir = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&out_dir)
        .map_err(|e| Error::one(format!("creating {}: {e}", out_dir.display())))?;
    let file_name = output
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .ok_or_else(|| Error::one(format!("{} is not a file path", output.display())))?;
    let pid = std::process::id();
    let staging = out_dir.join(format!(".{file_name}.staging.{pid}"));
    let partial = out_dir.join(format!(".{file_name}.partial.{pid}"));
    let script = out_dir.join(format!(".{file_name}.debugfs.{pid}"));
    let _cleanup = Cleanup(vec![staging.clone(), partial.clone(), script.clone()]);
    let content_bytes = stage(&staging, entries, fs.epoch)?;
    let (size_kib, inodes) = image_size(entries, fs.spare_kib);
    let epoch = fs.epoch.to_string();
    let mut cmd = Command::new(mkfs);
    cmd.env("E2FSPROGS_FAKE_TIME", &epoch)
        .env("MKE2FS_DEVICE_SECTSIZE", "512")
        .args([
            "-q", "-F", "-t", "ext4", "-b", "4096", "-I", "256", "-m", "0",
        ])
        .args(["-N", &inodes.to_string()])
        .args(["-O", "^has_journal"])
        .args(["-L", &fs.label, "-U", uuid])
        .arg("-E")
        .arg(format!("root_owner=0:0,hash_seed={uuid},nodiscard"))
        .arg("-d")
        .arg(&staging)
        .arg(&partial)
        .arg(format!("{size_kib}k"));
    run(&mut cmd)?;
    // Owners and every time stamp, set the same way whoever runs the builder (mkfs -d takes
    // them from the staged files, and ctime cannot be set there).
    let mut text = String::new();
    let all = ["/".to_string(), "/lost+found".to_string()];
    let owners = all
        .iter()
        .map(|p| (p, 0, 0))
        .chain(entries.iter().map(|(p, e)| (p, e.uid, e.gid)));
    for (path, uid, gid) in owners {
        // debugfs takes a backslash literally and a quote inside quotes doubled (systemd's
        // unit names have backslashes: `system-systemd\x2dcryptsetup.slice`).
        let quoted = path.replace('"', "\"\"");
        text.push_str(&format!(
            "sif \"{quoted}\" uid {uid}\nsif \"{quoted}\" gid {gid}\n"
        ));
        for field in ["atime", "mtime", "ctime", "crtime"] {
            text.push_str(&format!("sif \"{quoted}\" {field} @{epoch}\n"));
        }
    }
    std::fs::write(&script, text)
        .map_err(|e| Error::one(format!("writing {}: {e}", script.display())))?;
    let mut cmd = Command::new(debugfs);
    cmd.env("E2FSPROGS_FAKE_TIME", &epoch)
        .arg("-w")
        .arg("-f")
        .arg(&script)
        .arg(&partial);
    let out = run(&mut cmd)?;
    // debugfs exits 0 even when a command fails; its only expected stderr line is its banner.
    let stderr = String::from_utf8_lossy(&out.stderr);
    let bad: Vec<String> = stderr
        .lines()
        .filter(|l| !l.starts_with("debugfs ") && !l.trim().is_empty())
        .map(|l| format!("debugfs: {l}"))
        .collect();
    if !bad.is_empty() {
        return Err(Error(bad));
    }
    std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o644))
        .map_err(|e| Error::one(format!("chmod {}: {e}", partial.display())))?;
    std::fs::rename(&partial, output)
        .map_err(|e| Error::one(format!("renaming to {}: {e}", output.display())))?;
    Ok(content_bytes)
}

/// Removes temporary paths when dropped (also on errors).
struct Cleanup(Vec<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for p in &self.0 {
            if p.is_dir() {
                make_writable(p);
                let _ = std::fs::remove_dir_all(p);
            } else {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

/// Staged directories may be read-only (e.g. 0555); make them removable.
fn make_writable(dir: &Path) {
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755));
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                make_writable(&e.path());
            }
        }
    }
}

fn staged(staging: &Path, guest: &str) -> PathBuf {
    staging.join(guest.trim_start_matches('/'))
}

/// Writes the entries into `staging` (created fresh) and returns the bytes of file content.
fn stage(staging: &Path, entries: &BTreeMap<String, Entry>, epoch: u64) -> Result<u64, Error> {
    let io = |what: String| move |e: std::io::Error| Error::one(format!("{what}: {e}"));
    if staging.exists() {
        make_writable(staging);
        std::fs::remove_dir_all(staging).map_err(io(format!("removing {}", staging.display())))?;
    }
    std::fs::create_dir(staging).map_err(io(format!("creating {}", staging.display())))?;
    let mut bytes = 0u64;
    // Sorted: a parent comes before its children.
    for (guest, e) in entries {
        let path = staged(staging, guest);
        match &e.content {
            Content::Dir => std::fs::create_dir_all(&path).map_err(io(format!("mkdir {guest}")))?,
            Content::Host(src) => {
                bytes += std::fs::copy(src, &path)
                    .map_err(io(format!("copying {} to {guest}", src.display())))?;
            }
            Content::Bytes(b) => {
                std::fs::write(&path, b).map_err(io(format!("writing {guest}")))?;
                bytes += b.len() as u64;
            }
            Content::Symlink(t) => std::os::unix::fs::symlink(t, &path)
                .map_err(io(format!("symlink {guest} -> {t}")))?,
        }
        if !matches!(e.content, Content::Symlink(_) | Content::Dir) {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(e.mode))
                .map_err(io(format!("chmod {guest}")))?;
        }
    }
    // Directory modes and all times last, deepest first, so that filling a directory or
    // making it read-only does not disturb what was set before.
    for (guest, e) in entries.iter().rev() {
        let path = staged(staging, guest);
        if e.content == Content::Dir {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(e.mode))
                .map_err(io(format!("chmod {guest}")))?;
        }
        set_times(&path, epoch).map_err(io(format!("setting the times of {guest}")))?;
    }
    set_times(staging, epoch).map_err(io("setting the times of /".into()))?;
    Ok(bytes)
}

/// Sets atime and mtime of `path` (not following a symlink).
fn set_times(path: &Path, epoch: u64) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    let t = libc::timespec {
        tv_sec: epoch as _,
        tv_nsec: 0,
    };
    let times = [t, t];
    // SAFETY: a valid NUL-terminated path and a two-element timespec array, as utimensat(2)
    // requires.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Image size in KiB and inode count: the content rounded to 4 KiB blocks plus a block per
/// entry, an eighth more for ext4's metadata, 1 MiB and `spare_kib` to spare; at least 4 MiB.
fn image_size(entries: &BTreeMap<String, Entry>, spare_kib: u64) -> (u64, u64) {
    let mut bytes = 0u64;
    for e in entries.values() {
        let len = match &e.content {
            Content::Host(p) => std::fs::metadata(p).map(|m| m.len()).unwrap_or(0),
            Content::Bytes(b) => b.len() as u64,
            Content::Symlink(t) => t.len() as u64,
            Content::Dir => 0,
        };
        // Extent tree blocks for big files: one per 128 MiB is plenty; a block each.
        bytes += len.div_ceil(4096) * 4096 + 4096;
    }
    let kib = bytes / 1024 + bytes / 1024 / 8 + 1024 + spare_kib;
    let kib = kib.div_ceil(1024) * 1024;
    let inodes = (entries.len() as u64 + 16).div_ceil(64) * 64;
    (kib.max(4096), inodes)
}

/// Finds an administration tool in `PATH`, then in /usr/sbin and /sbin (which a normal
/// user's `PATH` may lack).
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// [`find_tool`] for the e2fsprogs tools.
fn e2fsprogs_tool(name: &str) -> Result<PathBuf, Error> {
    find_tool(name).ok_or_else(|| {
        Error::one(format!(
            "{name} not found in PATH, /usr/sbin or /sbin; install e2fsprogs"
        ))
    })
}

fn run(cmd: &mut Command) -> Result<std::process::Output, Error> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .map_err(|e| Error::one(format!("running {shown}: {e}")))?;
    if !out.status.success() {
        return Err(Error::one(format!(
            "{shown} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names with a backslash (systemd's units) or a quote get their owners too.
    #[test]
    fn odd_names_get_their_owners() {
        let dir = std::env::temp_dir().join(format!("rootfs-odd-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let file = |uid| Entry {
            content: Content::Bytes(b"x".to_vec()),
            mode: 0o644,
            uid,
            gid: uid,
            origin: "test".into(),
        };
        let mut entries = BTreeMap::new();
        entries.insert(
            "/".to_string(),
            Entry {
                content: Content::Dir,
                mode: 0o755,
                uid: 0,
                gid: 0,
                origin: "test".into(),
            },
        );
        entries.insert("/a\\x2db.slice".to_string(), file(5));
        entries.insert("/q\"q".to_string(), file(6));
        let fs = Filesystem {
            label: "t".into(),
            uuid: "01234567-89ab-cdef-0123-456789abcdef".into(),
            epoch: crate::DEFAULT_EPOCH,
            spare_kib: 0,
        };
        write(&entries, &dir.join("img"), &fs).unwrap();
        let debugfs = e2fsprogs_tool("debugfs").unwrap();
        for (name, uid) in [("/a\\x2db.slice", "5"), ("/q\"\"q", "6")] {
            let out = Command::new(&debugfs)
                .arg("-R")
                .arg(format!("stat \"{name}\""))
                .arg(dir.join("img"))
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(text.contains(&format!("User:     {uid}")), "{name}: {text}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
