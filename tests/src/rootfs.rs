//! Root file system images: a staging folder turned into an ext4 image by `mkfs.ext4 -d`,
//! which needs no root privileges.

use crate::error::{run_command, Context, Error, Result};
use crate::tempdir::TempDir;
use image_builder::closure::Root;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The file system UUID of every image the harness builds (images are reproducible inputs).
pub const ROOT_UUID: &str = "6f1c2d3e-5a4b-4c3d-8e2f-0000000000e2";

#[derive(Debug, Clone)]
enum Content {
    Host(PathBuf),
    Bytes(Vec<u8>),
}

#[derive(Debug, Clone)]
enum Kind {
    File { content: Content, mode: u32 },
    Dir { mode: u32 },
    Symlink { target: String },
}

#[derive(Debug, Clone)]
struct Entry {
    kind: Kind,
    owner: (u32, u32),
}

/// A root file system to build, always with `/sbin/init` (guest-init unless replaced with
/// [`RootFs::init`]) and the directories `/dev /proc /sys /run /tmp /etc`.
///
/// Paths are absolute guest paths; missing parent directories are created with mode 0755.
/// Everything is owned by root unless [`RootFs::owner`] says otherwise.
#[derive(Debug, Clone)]
pub struct RootFs {
    entries: BTreeMap<String, Entry>,
    init: Option<PathBuf>,
    free_mib: u64,
}

impl Default for RootFs {
    fn default() -> Self {
        RootFs::new()
    }
}

impl RootFs {
    pub fn new() -> RootFs {
        let rootfs = RootFs {
            entries: BTreeMap::new(),
            init: None,
            free_mib: 4,
        };
        ["/dev", "/proc", "/sys", "/run", "/etc", "/sbin"]
            .into_iter()
            .fold(rootfs, |r, d| r.dir(d, 0o755))
            .dir("/tmp", 0o1777)
    }

    /// Uses this host executable as `/sbin/init` instead of the static guest-init.
    pub fn init(mut self, host_path: impl Into<PathBuf>) -> Self {
        self.init = Some(host_path.into());
        self
    }

    /// Copies a host file to `guest_path` with permissions `mode`.
    pub fn file(self, guest_path: &str, host_path: impl Into<PathBuf>, mode: u32) -> Self {
        let content = Content::Host(host_path.into());
        self.entry(guest_path, Kind::File { content, mode })
    }

    /// Writes `data` to `guest_path` with permissions `mode`.
    pub fn bytes(self, guest_path: &str, data: impl Into<Vec<u8>>, mode: u32) -> Self {
        let content = Content::Bytes(data.into());
        self.entry(guest_path, Kind::File { content, mode })
    }

    /// Creates a directory.
    pub fn dir(self, guest_path: &str, mode: u32) -> Self {
        self.entry(guest_path, Kind::Dir { mode })
    }

    /// Creates a symbolic link `guest_path` → `target`.
    pub fn symlink(self, guest_path: &str, target: &str) -> Self {
        let target = target.to_string();
        self.entry(guest_path, Kind::Symlink { target })
    }

    /// Copies a dynamically linked host program to `guest_path` with everything it needs to
    /// run: its shared-library closure as the image builder finds it
    /// ([`image_builder::closure`]: `DT_NEEDED` recursively, each library at its host path in
    /// the guest) and the dynamic loader. Errors if a library cannot be found.
    pub fn program_with_libs(self, host_path: impl AsRef<Path>, guest_path: &str) -> Result<Self> {
        let host_path = host_path.as_ref();
        let what = format!("finding the shared libraries of {}", host_path.display());
        let program = host_path
            .to_str()
            .ok_or_else(|| Error::new(what.clone(), "the path is not UTF-8"))?;
        let roots = [(program.to_string(), Root::Program)];
        let closure = image_builder::closure::resolve(&roots, Path::new("/"))
            .map_err(|problems| Error::new(what, problems.join("\n")))?;
        let mut r = self.file(guest_path, host_path, 0o755);
        for (guest, object) in closure.into_iter().filter(|(p, _)| p != program) {
            r = r.file(&guest, object.source, 0o755);
        }
        Ok(r)
    }

    /// The host's static busybox ([`BUSYBOX`]) as `/bin/busybox`, with `/bin/APPLET` links
    /// for each of `applets` (e.g. `sh`).
    pub fn busybox(self, applets: &[&str]) -> Self {
        let r = self.file("/bin/busybox", BUSYBOX, 0o755);
        applets
            .iter()
            .fold(r, |r, a| r.symlink(&format!("/bin/{a}"), "busybox"))
    }

    /// Kernel modules of the UML kernel, copied from [`uml_modules_dir`]`/RELEASE/PATH` to
    /// `/lib/modules/RELEASE/PATH` (e.g. `kernel/net/ipv6/ipv6.ko`).
    pub fn uml_modules(self, paths: &[&str]) -> Result<Self> {
        let (release, dir) = uml_modules_release()?;
        let mut r = self;
        for p in paths {
            let host = dir.join(p);
            if !host.is_file() {
                return Err(Error::new(
                    "adding UML kernel modules",
                    format!("{} does not exist", host.display()),
                ));
            }
            r = r.file(&format!("/lib/modules/{release}/{p}"), host, 0o644);
        }
        Ok(r)
    }

    /// What IPv6 needs under Debian's UML kernel: `ipv6.ko` and its dependency `crc-ccitt.ko`.
    pub fn ipv6_modules(self) -> Result<Self> {
        self.uml_modules(IPV6_MODULES)
    }

    /// `/etc/resolv.conf` → `/run/resolv.conf` and `/etc/hosts` → `/run/hosts`, the files
    /// guest-init writes from the contract.
    pub fn resolver_links(self) -> Self {
        self.symlink("/etc/resolv.conf", "/run/resolv.conf")
            .symlink("/etc/hosts", "/run/hosts")
    }

    /// Sets the owner of an entry added before (ignored for unknown paths).
    pub fn owner(mut self, guest_path: &str, uid: u32, gid: u32) -> Self {
        if let Some(e) = self.entries.get_mut(&normalize(guest_path)) {
            e.owner = (uid, gid);
        }
        self
    }

    /// Free space to leave in the image beyond its content (default 4 MiB).
    pub fn free_space_mib(mut self, mib: u64) -> Self {
        self.free_mib = mib;
        self
    }

    fn entry(mut self, guest_path: &str, kind: Kind) -> Self {
        let entry = Entry {
            kind,
            owner: (0, 0),
        };
        self.entries.insert(normalize(guest_path), entry);
        self
    }

    /// Builds the ext4 image at `image` (replacing it), sized from the content with headroom.
    pub fn build(&self, image: &Path) -> Result<()> {
        let init = match &self.init {
            Some(p) => p.clone(),
            None => crate::builds::guest_init()?,
        };
        let mut entries = self.entries.clone();
        entries.insert(
            "/sbin/init".into(),
            Entry {
                kind: Kind::File {
                    content: Content::Host(init),
                    mode: 0o755,
                },
                owner: (0, 0),
            },
        );
        let staging_dir = TempDir::new("rootfs")?;
        let staging = staging_dir.join("root");
        std::fs::create_dir(&staging).context(|| format!("creating {}", staging.display()))?;
        stage(&staging, &entries)?;
        let size_kib = image_size_kib(&staging, self.free_mib)?;
        if image.exists() {
            std::fs::remove_file(image).context(|| format!("removing {}", image.display()))?;
        }
        let mut mkfs = Command::new(find_tool("mkfs.ext4")?);
        mkfs.arg("-q")
            .arg("-F")
            .arg("-d")
            .arg(&staging)
            .args(["-L", "root", "-U", ROOT_UUID, "-E", "root_owner=0:0"])
            .arg(image)
            .arg(format!("{size_kib}k"));
        run_command(&mut mkfs)?;
        if !is_root() {
            fix_owners(image, &staging, &entries)?;
        }
        Ok(())
    }
}

/// The static busybox of Debian's busybox-static package.
pub const BUSYBOX: &str = "/bin/busybox";

/// Where Debian's user-mode-linux package keeps the kernel's modules, one directory per
/// release (override with `UML_MODULES`).
pub fn uml_modules_dir() -> PathBuf {
    std::env::var_os("UML_MODULES")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(image_builder::build::UML_MODULES))
}

/// The IPv6 stack and its dependency, relative to the release directory: the image
/// builder's list.
pub use image_builder::build::IPV6_MODULES;

/// The one release under [`uml_modules_dir`] and its directory.
fn uml_modules_release() -> Result<(String, PathBuf)> {
    let base = uml_modules_dir();
    let mut releases: Vec<String> = std::fs::read_dir(&base)
        .context(|| format!("reading {}; {}", base.display(), crate::SETUP_HINT))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    releases.sort();
    match releases.as_slice() {
        [one] => Ok((one.clone(), base.join(one))),
        other => Err(Error::new(
            format!("finding the UML kernel's modules in {}", base.display()),
            format!("expected one release directory, found {other:?}; set UML_MODULES"),
        )),
    }
}

fn normalize(guest_path: &str) -> String {
    let trimmed = guest_path.trim_matches('/');
    format!("/{trimmed}")
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn host_path(staging: &Path, guest_path: &str) -> PathBuf {
    staging.join(guest_path.trim_start_matches('/'))
}

fn stage(staging: &Path, entries: &BTreeMap<String, Entry>) -> Result<()> {
    for (guest, entry) in entries {
        let path = host_path(staging, guest);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).context(|| format!("creating {}", parent.display()))?;
        }
        match &entry.kind {
            Kind::Dir { .. } => {
                std::fs::create_dir_all(&path).context(|| format!("creating {}", path.display()))?
            }
            Kind::File { content, mode } => {
                match content {
                    Content::Host(src) => std::fs::copy(src, &path)
                        .map(|_| ())
                        .context(|| format!("copying {} to {guest}", src.display()))?,
                    Content::Bytes(b) => {
                        std::fs::write(&path, b).context(|| format!("writing {guest}"))?
                    }
                }
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*mode))
                    .context(|| format!("chmod {guest}"))?;
            }
            Kind::Symlink { target } => std::os::unix::fs::symlink(target, &path)
                .context(|| format!("symlink {guest} -> {target}"))?,
        }
    }
    // Directory modes last (deepest first), so that a read-only directory can still be filled.
    for (guest, entry) in entries.iter().rev() {
        let path = host_path(staging, guest);
        if let Kind::Dir { mode } = entry.kind {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                .context(|| format!("chmod {guest}"))?;
        }
        if is_root() {
            std::os::unix::fs::lchown(&path, Some(entry.owner.0), Some(entry.owner.1))
                .context(|| format!("chown {guest}"))?;
        }
    }
    Ok(())
}

/// Content size rounded to 4 KiB blocks plus one block per inode, a quarter more for ext4's
/// own structures, then the requested free space; at least 8 MiB.
fn image_size_kib(staging: &Path, free_mib: u64) -> Result<u64> {
    let mut bytes = 0u64;
    let mut stack = vec![staging.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for item in std::fs::read_dir(&dir).context(|| format!("reading {}", dir.display()))? {
            let item = item.context(|| format!("reading {}", dir.display()))?;
            let meta = std::fs::symlink_metadata(item.path())
                .context(|| format!("stat {}", item.path().display()))?;
            bytes += meta.len().div_ceil(4096) * 4096 + 4096;
            if meta.is_dir() {
                stack.push(item.path());
            }
        }
    }
    let kib = bytes / 1024 * 5 / 4 + free_mib * 1024;
    Ok(kib.max(8 * 1024))
}

/// Finds an administration tool in `PATH`, then in /usr/sbin and /sbin (which a normal
/// user's `PATH` may lack).
pub(crate) fn find_tool(name: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Error::new(
                format!("looking for {name}"),
                format!(
                    "not found in PATH, /usr/sbin or /sbin; {}",
                    crate::SETUP_HINT
                ),
            )
        })
}

/// As a normal user, `mkfs.ext4 -d` records the user's own uid and gid: set every staged
/// path's owner in the image with debugfs instead.
fn fix_owners(image: &Path, staging: &Path, entries: &BTreeMap<String, Entry>) -> Result<()> {
    let mut script = String::new();
    let mut stack = vec![staging.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let items = std::fs::read_dir(&dir).context(|| format!("reading {}", dir.display()))?;
        for item in items {
            let item = item.context(|| format!("reading {}", dir.display()))?;
            let path = item.path();
            let rel = path.strip_prefix(staging).unwrap_or(&path);
            let guest = format!("/{}", rel.display());
            let (uid, gid) = entries.get(&guest).map(|e| e.owner).unwrap_or((0, 0));
            let quoted = guest.replace('\\', "\\\\").replace('"', "\\\"");
            script.push_str(&format!(
                "sif \"{quoted}\" uid {uid}\nsif \"{quoted}\" gid {gid}\n"
            ));
            if item.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(path);
            }
        }
    }
    let script_file = image.with_extension("debugfs");
    std::fs::write(&script_file, script)
        .context(|| format!("writing {}", script_file.display()))?;
    let mut debugfs = Command::new(find_tool("debugfs")?);
    debugfs.arg("-w").arg("-f").arg(&script_file).arg(image);
    let out = run_command(&mut debugfs);
    let _ = std::fs::remove_file(&script_file);
    let out = out?;
    // debugfs exits 0 even when a command fails; its only expected stderr line is its banner.
    let stderr = String::from_utf8_lossy(&out.stderr);
    let problems: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with("debugfs ") && !l.trim().is_empty())
        .collect();
    if !problems.is_empty() {
        return Err(Error::new(
            format!("setting owners in {} with debugfs", image.display()),
            problems.join("\n"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalized() {
        assert_eq!(normalize("etc/motd"), "/etc/motd");
        assert_eq!(normalize("/etc/"), "/etc");
    }

    #[test]
    fn default_entries() {
        let r = RootFs::new();
        for d in ["/dev", "/proc", "/sys", "/run", "/tmp", "/etc", "/sbin"] {
            assert!(r.entries.contains_key(d), "{d}");
        }
    }
}
