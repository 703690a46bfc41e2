//! The VM's read-only root, made from the bundle's root directory (podman's overlay mount of
//! the image) without touching it: its entries, plus guest-init at [`INIT_PATH`] (booted with
//! `init=`, so the image's own `/sbin/init`, if any, stays as it is), the symlinks of
//! bind-mounted files and the mount points the guest needs, written by rootfs's ext4 writer.

use crate::error::{io, Error, Result};
use rootfs::ext4::{Content, Entry};
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Where guest-init is in the generated root; the kernel gets `init=` this.
pub const INIT_PATH: &str = "/.uml-runc/init";

/// A root directory may not hold more entries than this (a Debian base has about 10,000).
pub const MAX_ENTRIES: usize = 500_000;

/// Directories guest-init mounts on; an image made for a container may lack some.
const SYSTEM_DIRS: &[&str] = &["/proc", "/sys", "/dev", "/run", "/tmp"];

/// The entries of directory `root` by image path, every parent listed; device nodes,
/// sockets and fifos are left out (the guest's /dev is its own).
pub fn entries(root: &Path) -> Result<BTreeMap<String, Entry>> {
    let mut out = BTreeMap::new();
    let meta =
        std::fs::symlink_metadata(root).map_err(io(format!("reading {}", root.display())))?;
    out.insert("/".to_string(), entry(Content::Dir, &meta, root));
    walk(root, "", &mut out)?;
    Ok(out)
}

fn entry(content: Content, meta: &std::fs::Metadata, origin: &Path) -> Entry {
    Entry {
        content,
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        origin: origin.display().to_string(),
    }
}

fn walk(dir: &Path, prefix: &str, out: &mut BTreeMap<String, Entry>) -> Result<()> {
    let rd = std::fs::read_dir(dir).map_err(io(format!("reading {}", dir.display())))?;
    for item in rd {
        let item = item.map_err(io(format!("reading {}", dir.display())))?;
        let host = item.path();
        let name = item.file_name();
        let Some(name) = name.to_str() else {
            return Err(Error::new(format!(
                "{}: the name is not UTF-8, which the ext4 writer cannot take",
                host.display()
            )));
        };
        let path = format!("{prefix}/{name}");
        let meta = std::fs::symlink_metadata(&host).map_err(io(host.display()))?;
        let ft = meta.file_type();
        let content = if ft.is_dir() {
            Content::Dir
        } else if ft.is_symlink() {
            let target = std::fs::read_link(&host).map_err(io(host.display()))?;
            Content::Symlink(target.to_string_lossy().into_owned())
        } else if ft.is_file() {
            Content::Host(host.clone())
        } else {
            continue;
        };
        let is_dir = content == Content::Dir;
        out.insert(path.clone(), entry(content, &meta, &host));
        if out.len() > MAX_ENTRIES {
            return Err(Error::new(format!(
                "the container's root has more than {MAX_ENTRIES} entries; make the image smaller"
            )));
        }
        if is_dir {
            walk(&host, &path, out)?;
        }
    }
    Ok(())
}

/// Adds what the VM needs: guest-init, the symlinks, the directories (and their parents).
pub fn add_runtime_entries(
    entries: &mut BTreeMap<String, Entry>,
    guest_init: &Path,
    symlinks: &[(String, String)],
    dirs: &[String],
) {
    let dir = |origin: &str| Entry {
        content: Content::Dir,
        mode: 0o755,
        uid: 0,
        gid: 0,
        origin: origin.to_string(),
    };
    for d in SYSTEM_DIRS
        .iter()
        .map(|s| s.to_string())
        .chain(dirs.iter().cloned())
    {
        add_parents(entries, &d);
        entries.entry(d).or_insert_with(|| dir("uml-runc"));
    }
    add_parents(entries, INIT_PATH);
    entries.insert(
        INIT_PATH.to_string(),
        Entry {
            content: Content::Host(guest_init.to_path_buf()),
            mode: 0o755,
            uid: 0,
            gid: 0,
            origin: "uml-runc: guest-init".into(),
        },
    );
    for (path, target) in symlinks {
        add_parents(entries, path);
        entries.insert(
            path.clone(),
            Entry {
                content: Content::Symlink(target.clone()),
                mode: 0o777,
                uid: 0,
                gid: 0,
                origin: "uml-runc: a bind-mounted file".into(),
            },
        );
    }
}

/// Every missing parent directory of `path`; a parent that is not a directory (e.g. a
/// symlink `/etc` of an odd image) is replaced, in the generated root only.
fn add_parents(entries: &mut BTreeMap<String, Entry>, path: &str) {
    let mut p = String::new();
    let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    for part in parts.iter().take(parts.len().saturating_sub(1)) {
        p.push('/');
        p.push_str(part);
        let is_dir = entries.get(&p).is_some_and(|e| e.content == Content::Dir);
        if !is_dir {
            entries.insert(
                p.clone(),
                Entry {
                    content: Content::Dir,
                    mode: 0o755,
                    uid: 0,
                    gid: 0,
                    origin: "uml-runc".into(),
                },
            );
        }
    }
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

/// Writes the root image of `entries` to `out`.
pub fn write(entries: &BTreeMap<String, Entry>, out: &Path, id: &str) -> Result<()> {
    let fs = rootfs::ext4::Filesystem {
        label: format!("c-{}", crate::service::short_id(id)),
        uuid: uuid_of(id),
        epoch: rootfs::DEFAULT_EPOCH,
        spare_kib: 0,
    };
    rootfs::ext4::write(entries, out, &fs)
        .map(|_| ())
        .map_err(|e| Error::new(format!("writing the VM's root: {}", e.0.join("; "))))
}

/// A UUID from the container's id (hex digits kept, padded), so a root names its container.
fn uuid_of(id: &str) -> String {
    let mut hex: String = id
        .chars()
        .filter(|c| c.is_ascii_hexdigit())
        .take(32)
        .collect();
    while hex.len() < 32 {
        hex.push('0');
    }
    let hex = hex.to_ascii_lowercase();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// guest-init for the VMs: `$UML_RUNC_GUEST_INIT`, else `guest-init` beside this program,
/// else [`INSTALLED_GUEST_INIT`].
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
        .ok_or_else(|| {
            Error::new(format!(
                "no guest-init: put the static guest-init beside uml-runc, at \
                 {INSTALLED_GUEST_INIT}, or name it in ${GUEST_INIT_ENV} \
                 (cargo build --release --target x86_64-unknown-linux-musl -p guest-init)"
            ))
        })
}

pub const GUEST_INIT_ENV: &str = "UML_RUNC_GUEST_INIT";
pub const INSTALLED_GUEST_INIT: &str = "/usr/local/lib/uml-runc/guest-init";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_entries_have_their_parents() {
        let mut e = BTreeMap::new();
        add_runtime_entries(
            &mut e,
            Path::new("/x/guest-init"),
            &[("/etc/hosts".into(), "/run/uml-runc/files/etc/hosts".into())],
            &["/var/cache/app".into()],
        );
        for p in [
            "/.uml-runc",
            "/etc",
            "/var",
            "/var/cache",
            "/var/cache/app",
            "/proc",
            "/run",
        ] {
            assert_eq!(e.get(p).map(|x| &x.content), Some(&Content::Dir), "{p}");
        }
        assert_eq!(
            e.get(INIT_PATH).map(|x| &x.content),
            Some(&Content::Host("/x/guest-init".into()))
        );
        assert_eq!(uuid_of("ab"), "ab000000-0000-0000-0000-000000000000");
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
