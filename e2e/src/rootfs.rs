//! Root file system images: a staging folder turned into an ext4 image by `mkfs.ext4 -d`,
//! which needs no root privileges.

use ::rootfs::closure::Root;
use ::rootfs::ext4;
use ::rootfs::ext4::{Content, Entry};
use ::rootfs::layout::Layout;
use ::rootfs::DEFAULT_EPOCH;
use lab::error::{Context, Error, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The file system UUID of every image the harness builds (images are reproducible inputs).
pub const ROOT_UUID: &str = "6f1c2d3e-5a4b-4c3d-8e2f-0000000000e2";

/// A root file system to build, always with `/sbin/init` (guest-init unless replaced with
/// [`RootFs::init`]) and the directories `/dev /proc /sys /run /tmp /etc`.
///
/// Paths are absolute guest paths; missing parent directories are created with mode 0755.
/// Everything is owned by root unless [`RootFs::owner`] says otherwise. The image is written
/// by the image builder's [`::rootfs::ext4`], as appliance images are.
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
        self.entry(guest_path, Content::Host(host_path.into()), mode)
    }

    /// Writes `data` to `guest_path` with permissions `mode`.
    pub fn bytes(self, guest_path: &str, data: impl Into<Vec<u8>>, mode: u32) -> Self {
        self.entry(guest_path, Content::Bytes(data.into()), mode)
    }

    /// Creates a directory.
    pub fn dir(self, guest_path: &str, mode: u32) -> Self {
        self.entry(guest_path, Content::Dir, mode)
    }

    /// Creates a symbolic link `guest_path` → `target`.
    pub fn symlink(self, guest_path: &str, target: &str) -> Self {
        self.entry(guest_path, Content::Symlink(target.to_string()), 0o777)
    }

    /// Copies a dynamically linked host program to `guest_path` with everything it needs to
    /// run: its shared-library closure as the image builder finds it
    /// ([`::rootfs::closure`]: `DT_NEEDED` recursively, each library at its host path in
    /// the guest) and the dynamic loader. Errors if a library cannot be found.
    pub fn program_with_libs(self, host_path: impl AsRef<Path>, guest_path: &str) -> Result<Self> {
        let host_path = host_path.as_ref();
        let what = format!("finding the shared libraries of {}", host_path.display());
        let program = host_path
            .to_str()
            .ok_or_else(|| Error::new(what.clone(), "the path is not UTF-8"))?;
        let roots = [(program.to_string(), Root::Program)];
        let closure = ::rootfs::closure::resolve(&roots, Path::new("/"))
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
            e.uid = uid;
            e.gid = gid;
        }
        self
    }

    /// Free space to leave in the image beyond its content (default 4 MiB).
    pub fn free_space_mib(mut self, mib: u64) -> Self {
        self.free_mib = mib;
        self
    }

    fn entry(mut self, guest_path: &str, content: Content, mode: u32) -> Self {
        let entry = Entry {
            content,
            mode,
            uid: 0,
            gid: 0,
            origin: format!("the test's {guest_path}"),
        };
        self.entries.insert(normalize(guest_path), entry);
        self
    }

    /// Builds the ext4 image at `image` (replacing it), sized from the content with headroom.
    pub fn build(&self, image: &Path) -> Result<()> {
        let init = match &self.init {
            Some(p) => p.clone(),
            None => lab::guest_init()?,
        };
        let mut plan = Layout {
            entries: self.entries.clone(),
            ..Layout::default()
        };
        plan.entries.insert(
            "/sbin/init".into(),
            Entry {
                content: Content::Host(init),
                mode: 0o755,
                uid: 0,
                gid: 0,
                origin: "the test's init".into(),
            },
        );
        let mut problems = Vec::new();
        plan.add_parents(&mut problems);
        let fs = ext4::Filesystem {
            label: "root".into(),
            uuid: ROOT_UUID.into(),
            epoch: DEFAULT_EPOCH,
            spare_kib: self.free_mib * 1024,
        };
        let what = || format!("building the root image {}", image.display());
        if !problems.is_empty() {
            return Err(Error::new(what(), problems.join("\n")));
        }
        ext4::write(&plan.entries, image, &fs).map_err(|e| Error::new(what(), e.to_string()))?;
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
        .unwrap_or_else(|| PathBuf::from(::rootfs::UML_MODULES))
}

/// The IPv6 stack and its dependency, relative to the release directory: the image
/// builder's list.
pub use ::rootfs::IPV6_MODULES;

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

/// Finds an administration tool in `PATH`, then in /usr/sbin and /sbin (which a normal
/// user's `PATH` may lack).
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
