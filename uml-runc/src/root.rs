//! The VM's read-only root, made from the bundle's root directory (podman's overlay mount of
//! the image) without touching it: `mkfs.ext4 -d` copies the directory as it is (owners,
//! modes, links, device nodes), then one `debugfs` script adds guest-init at [`INIT_PATH`]
//! (booted with `init=`, so the image's own `/sbin/init`, if any, stays as it is), the
//! symlinks of bind-mounted files and the mount points the guest needs. Not rootfs's
//! reproducible writer: that one sets every owner and time with debugfs, 18 s for a Debian
//! base of 8,000 entries here against 3 s, and a container's root need not be reproducible.

use crate::error::{io, Error, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where guest-init is in the generated root; the kernel gets `init=` this.
pub const INIT_PATH: &str = "/.uml-runc/init";

/// A root directory may not hold more entries than this (a Debian base has about 10,000).
pub const MAX_ENTRIES: usize = 500_000;

/// Directories guest-init mounts on; an image made for a container may lack some.
const SYSTEM_DIRS: &[&str] = &["/proc", "/sys", "/dev", "/run", "/tmp"];

/// What the generated root adds to the image's directory.
#[derive(Debug, Clone)]
pub struct Extras<'a> {
    pub guest_init: &'a Path,
    /// Symlinks: (path, target).
    pub symlinks: &'a [(String, String)],
    /// Directories the guest mounts on (tmpfs mount points).
    pub dirs: &'a [String],
}

/// What is at a path of the image's directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Missing,
    Dir,
    Other,
}

/// Writes the root image of directory `root` plus `x` to `out`.
pub fn build(root: &Path, x: &Extras, out: &Path) -> Result<()> {
    let (count, kib) = measure(root, 0)?;
    let init_kib = std::fs::metadata(x.guest_init)
        .map_err(io(format!("reading {}", x.guest_init.display())))?
        .len()
        .div_ceil(1024);
    let inodes = (count + 256).div_ceil(64) * 64;
    // Room for the inode tables, bitmaps and directories' growth.
    let size_kib = (kib + init_kib) * 23 / 20 + inodes / 4 + 16384;
    let kind = |p: &str| kind_in(root, p);
    let script = debugfs_script(x, &kind);
    let mkfs = tool("mkfs.ext4")?;
    let out_s = out.to_string_lossy().into_owned();
    run(Command::new(mkfs)
        .args([
            "-q", "-F", "-t", "ext4", "-b", "4096", "-I", "256", "-m", "0",
        ])
        .args([
            "-N",
            &inodes.to_string(),
            "-O",
            "^has_journal",
            "-E",
            "nodiscard",
        ])
        .arg("-d")
        .arg(root)
        .arg(&out_s)
        .arg(format!("{size_kib}k")))?;
    let script_path = out.with_extension("debugfs");
    std::fs::write(&script_path, script)
        .map_err(io(format!("writing {}", script_path.display())))?;
    let r = run(Command::new(tool("debugfs")?)
        .arg("-w")
        .arg("-f")
        .arg(&script_path)
        .arg(&out_s));
    let _ = std::fs::remove_file(&script_path);
    let stderr = String::from_utf8_lossy(&r?.stderr).into_owned();
    // debugfs exits 0 when a command fails; its only expected stderr line is its banner.
    let bad: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with("debugfs ") && !l.trim().is_empty())
        .collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(Error::new(format!(
            "writing the VM's root: debugfs: {}",
            bad.join("; ")
        )))
    }
}

/// The number of entries under `dir` and the KiB their data takes in 4 KiB blocks; bounded.
fn measure(dir: &Path, mut count: u64) -> Result<(u64, u64)> {
    let mut kib = 4;
    let rd = std::fs::read_dir(dir).map_err(io(format!("reading {}", dir.display())))?;
    for item in rd {
        let item = item.map_err(io(format!("reading {}", dir.display())))?;
        let meta = std::fs::symlink_metadata(item.path()).map_err(io(item.path().display()))?;
        count += 1;
        if count > MAX_ENTRIES as u64 {
            return Err(Error::new(format!(
                "the container's root has more than {MAX_ENTRIES} entries; make the image smaller"
            )));
        }
        if meta.is_dir() {
            let (c, k) = measure(&item.path(), count)?;
            count = c;
            kib += k;
        } else {
            kib += meta.len().div_ceil(4096) * 4;
        }
    }
    Ok((count, kib))
}

/// What `path` (absolute, of the image) is in `root`, the last component not followed.
fn kind_in(root: &Path, path: &str) -> Kind {
    match std::fs::symlink_metadata(root.join(path.trim_start_matches('/'))) {
        Err(_) => Kind::Missing,
        Ok(m) if m.is_dir() => Kind::Dir,
        Ok(_) => Kind::Other,
    }
}

/// A path as one debugfs argument: quoted, a quote doubled (debugfs takes a backslash
/// literally).
fn quoted(p: &str) -> String {
    format!("\"{}\"", p.replace('"', "\"\""))
}

/// The debugfs commands that add `x` to an image whose paths are as `kind` says.
pub fn debugfs_script(x: &Extras, kind: &dyn Fn(&str) -> Kind) -> String {
    let mut made: Vec<String> = Vec::new();
    let mut s = String::new();
    let mut dir = |s: &mut String, d: &str| {
        let mut p = String::new();
        for part in d.split('/').filter(|c| !c.is_empty()) {
            p.push('/');
            p.push_str(part);
            if made.contains(&p) {
                continue;
            }
            match kind(&p) {
                Kind::Dir => {}
                Kind::Other => s.push_str(&format!("rm {q}\nmkdir {q}\n", q = quoted(&p))),
                Kind::Missing => s.push_str(&format!("mkdir {}\n", quoted(&p))),
            }
            made.push(p.clone());
        }
    };
    let parent = |p: &str| {
        p.rsplit_once('/')
            .map(|(a, _)| a.to_string())
            .unwrap_or_default()
    };
    for d in SYSTEM_DIRS
        .iter()
        .map(|d| d.to_string())
        .chain(x.dirs.iter().cloned())
    {
        dir(&mut s, &d);
    }
    dir(&mut s, &parent(INIT_PATH));
    let init = quoted(INIT_PATH);
    s.push_str(&format!(
        "write {} {init}\nsif {init} mode 0100755\nsif {init} uid 0\nsif {init} gid 0\n",
        quoted(&x.guest_init.to_string_lossy())
    ));
    for (path, target) in x.symlinks {
        dir(&mut s, &parent(path));
        if kind(path) == Kind::Other {
            s.push_str(&format!("rm {}\n", quoted(path)));
        }
        s.push_str(&format!("symlink {} {}\n", quoted(path), quoted(target)));
    }
    s
}

fn tool(name: &str) -> Result<PathBuf> {
    rootfs::ext4::find_tool(name).ok_or_else(|| {
        Error::new(format!(
            "{name} not found in PATH, /usr/sbin or /sbin; install e2fsprogs"
        ))
    })
}

fn run(cmd: &mut Command) -> Result<std::process::Output> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| Error::new(format!("running {shown}: {e}")))?;
    if !out.status.success() {
        return Err(Error::new(format!(
            "writing the VM's root: {shown} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(out)
}

/// `name` as an absolute path in the image: itself if absolute, else the first `PATH`
/// directory (the container's, else the usual) holding it, as execvp would find it.
pub fn resolve_argv0(root: &Path, name: &str, path_env: Option<&str>) -> Result<String> {
    if name.starts_with('/') {
        return Ok(name.to_string());
    }
    if name.contains('/') || name.is_empty() {
        return Err(Error::new(format!(
            "config.json: process.args[0]: {name:?} is neither absolute nor a program name"
        )));
    }
    let path = path_env.unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for dir in path.split(':').filter(|d| d.starts_with('/')) {
        let candidate = format!("{}/{name}", dir.trim_end_matches('/'));
        if in_image(root, &candidate) {
            return Ok(candidate);
        }
    }
    Err(Error::new(format!(
        "config.json: process.args[0]: {name:?} is not in the image's PATH ({path})"
    )))
}

/// Whether `path` names a file in the image, every symlink on the way followed inside the
/// image (an absolute target from the image's root, `..` never above it), as the guest sees it.
fn in_image(root: &Path, path: &str) -> bool {
    let mut todo: Vec<String> = path
        .split('/')
        .filter(|c| !c.is_empty())
        .map(String::from)
        .rev()
        .collect();
    let mut at: Vec<String> = Vec::new();
    let mut hops = 0;
    while let Some(c) = todo.pop() {
        match c.as_str() {
            "." => continue,
            ".." => {
                at.pop();
                continue;
            }
            _ => {}
        }
        let host = at
            .iter()
            .fold(root.to_path_buf(), |p, c| p.join(c))
            .join(&c);
        let Ok(meta) = std::fs::symlink_metadata(&host) else {
            return false;
        };
        if !meta.file_type().is_symlink() {
            if todo.is_empty() {
                return meta.is_file();
            }
            if !meta.is_dir() {
                return false;
            }
            at.push(c);
            continue;
        }
        hops += 1;
        let Ok(target) = std::fs::read_link(&host) else {
            return false;
        };
        if hops > 40 {
            return false;
        }
        let t = target.to_string_lossy().into_owned();
        if t.starts_with('/') {
            at.clear();
        }
        todo.extend(
            t.split('/')
                .filter(|c| !c.is_empty())
                .map(String::from)
                .rev(),
        );
    }
    false
}

/// guest-init for the VMs: `$UML_RUNC_GUEST_INIT`, else `guest-init` beside this program,
/// else [`INSTALLED_GUEST_INIT`], else the project's installed one (`/usr/local/lib/host-launch`,
/// then the package's `/usr/lib/host-launch`).
pub fn guest_init() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os(GUEST_INIT_ENV).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("guest-init")));
    beside
        .into_iter()
        .chain([PathBuf::from(INSTALLED_GUEST_INIT)])
        .find(|p| p.is_file())
        .or_else(|| rootfs::installed::lib_file(rootfs::guest_init::GUEST_INIT_FILE))
        .ok_or_else(|| {
            Error::new(format!(
                "no guest-init: install the package host-launch ({}/guest-init), put the \
                 static guest-init beside uml-runc or at {INSTALLED_GUEST_INIT}, or name it \
                 in ${GUEST_INIT_ENV} \
                 (cargo build --release --target x86_64-unknown-linux-musl -p guest-init)",
                rootfs::installed::LIB_DIR
            ))
        })
}

pub const GUEST_INIT_ENV: &str = "UML_RUNC_GUEST_INIT";
pub const INSTALLED_GUEST_INIT: &str = "/usr/local/lib/uml-runc/guest-init";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_adds_init_dirs_and_symlinks() {
        let links = [(
            "/etc/hosts".to_string(),
            "/run/uml-runc/files/etc/hosts".to_string(),
        )];
        let dirs = ["/var/cache/app".to_string()];
        let x = Extras {
            guest_init: Path::new("/x/guest-init"),
            symlinks: &links,
            dirs: &dirs,
        };
        let kind = |p: &str| match p {
            "/proc" | "/sys" | "/dev" | "/etc" | "/var" => Kind::Dir,
            "/etc/hosts" | "/tmp" => Kind::Other,
            _ => Kind::Missing,
        };
        let s = debugfs_script(&x, &kind);
        for line in [
            "mkdir \"/run\"",
            "rm \"/tmp\"\nmkdir \"/tmp\"",
            "mkdir \"/var/cache\"\nmkdir \"/var/cache/app\"",
            "mkdir \"/.uml-runc\"",
            "write \"/x/guest-init\" \"/.uml-runc/init\"\nsif \"/.uml-runc/init\" mode 0100755",
            "rm \"/etc/hosts\"\nsymlink \"/etc/hosts\" \"/run/uml-runc/files/etc/hosts\"",
        ] {
            assert!(s.contains(line), "{line:?} not in:\n{s}");
        }
        assert!(
            !s.contains("mkdir \"/proc\"") && !s.contains("mkdir \"/etc\""),
            "{s}"
        );
        assert_eq!(quoted("/a\"b"), "\"/a\"\"b\"");
    }

    #[test]
    fn argv0_is_looked_up_in_the_image() {
        let dir = std::env::temp_dir().join(format!("uml-runc-argv0-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("usr/bin")).unwrap();
        std::fs::write(dir.join("usr/bin/busybox"), b"").unwrap();
        // Targets as the guest sees them: an absolute one from the image's root, and a
        // relative one that climbs above it stays at the root.
        std::os::unix::fs::symlink("/usr/bin", dir.join("bin")).unwrap();
        std::os::unix::fs::symlink("../../../usr/bin/busybox", dir.join("usr/bin/sh")).unwrap();
        assert_eq!(
            resolve_argv0(&dir, "sh", Some("/sbin:/bin")).unwrap(),
            "/bin/sh"
        );
        assert_eq!(resolve_argv0(&dir, "/x/y", None).unwrap(), "/x/y");
        let e = resolve_argv0(&dir, "nope", Some("/bin")).unwrap_err().0;
        assert!(e.contains("not in the image's PATH"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
