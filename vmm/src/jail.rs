//! What a VM's jail holds and the limits it runs under, and the set-up [`crate::spawn`] follows
//! to build it.
//!
//! The jail is Firecracker's jailer's idea without its need for KVM or a root VMM: the
//! launcher, root, prepares; UML starts as the VM's own unprivileged uid in new mount, PID,
//! IPC and UTS namespaces, and sees only this:
//!
//! | path in the jail | what | how |
//! | --- | --- | --- |
//! | the kernel's host path (and its loader and libraries, if dynamic) | UML | read-only bind |
//! | the root image's host path | the image | read-only bind, noexec |
//! | each data disk's host path | the VM's disks | read-write bind, noexec |
//! | a data disk that is a block device, at the path the operator named | that device only | a device node of its own (same major:minor), mode 0600, owned by the VM's uid; never the host's `/dev` |
//! | the config device's host path | the contract | read-only bind, noexec |
//! | `/.vmm` | UML's memory file and runtime directory (mconsole socket) | its own tmpfs, sized to the VM, owned by the VM's uid, mode 0700 |
//! | `/.uml-xstate-preload.so`, for a dynamically linked kernel | the `ptrace` wrapper ([`crate::preload`]) | read-only bind |
//! | `/dev/null`, `/dev/random` (UML's hwrng reads it), `/dev/urandom`, `/dev/net/tun` | devices | nodes made in the jail, the tun node owned by the VM's uid |
//!
//! Everything else is an empty, read-only tmpfs: after `pivot_root` the host's root is
//! detached, so no path — hostfs included, which resolves host paths in UML's own mount
//! namespace — reaches anything of the host. Files keep their host paths inside so that
//! UML's messages name the files the operator knows.

use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// How UML may use a file bound into its jail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The kernel binary and its libraries: read-only, executable.
    Exec,
    /// The root image and the config device.
    ReadOnly,
    /// The data disks.
    ReadWrite,
    /// The `ptrace` wrapper ([`crate::preload`]): bound read-only at the jail's own
    /// [`crate::preload::JAIL_PATH`], and the kernel starts with `LD_PRELOAD` naming it.
    Preload,
}

/// Resource limits of the VM's host processes (all of them share its uid).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// RLIMIT_NOFILE.
    pub open_files: u64,
    /// RLIMIT_NPROC: UML runs one host process per guest address space, so this bounds what
    /// a guest fork bomb costs the host.
    pub processes: u64,
    /// RLIMIT_FSIZE: at least the largest disk and the memory file.
    pub file_size: u64,
}

/// The default limits: ample for UML (measured: under 40 descriptors, a few dozen processes),
/// small next to the host's.
pub const DEFAULT_OPEN_FILES: u64 = 512;
pub const DEFAULT_PROCESSES: u64 = 1024;

/// Room above the guest's memory in the private tmpfs: UML's memory file is exactly the
/// guest's memory; the runtime directory holds a pid file and a socket.
pub const TMP_SLACK_BYTES: u64 = 4 << 20;

/// A VM's jail.
#[derive(Debug, Clone)]
pub struct Jail {
    /// An empty host directory the jail's root is mounted on (in the jail's own mount
    /// namespace only; the host sees it stay empty).
    pub dir: PathBuf,
    pub uid: u32,
    pub gid: u32,
    /// The network namespace to run in (`/run/netns/NAME`); the host's when `None`.
    pub netns: Option<PathBuf>,
    /// Persistent TAP devices (in that namespace) handed to the VM's uid before UML opens them.
    pub taps: Vec<String>,
    /// The host core to pin the VM to.
    pub cpu: Option<usize>,
    /// Size of the private [`crate::cmdline::JAIL_TMP`].
    pub tmp_bytes: u64,
    pub limits: Limits,
    /// Files bound in at their host paths.
    pub files: Vec<(PathBuf, Access)>,
    /// A FIFO (the launcher's, root's) whose read end UML gets as
    /// [`crate::cmdline::REQUESTS_FD`]: the host's requests to the guest (see
    /// [`crate::cmdline::REQUESTS_CONSOLE`]). Opened read-write, so it never reads an end
    /// of file when a writer goes.
    pub requests: Option<PathBuf>,
}

impl Jail {
    /// A jail for a VM of `memory_mib` whose largest disk is `largest_disk` bytes.
    pub fn sized(dir: PathBuf, uid: u32, gid: u32, memory_mib: u32, largest_disk: u64) -> Jail {
        let tmp_bytes = (u64::from(memory_mib) << 20) + TMP_SLACK_BYTES;
        Jail {
            dir,
            uid,
            gid,
            netns: None,
            taps: Vec::new(),
            cpu: None,
            tmp_bytes,
            limits: Limits {
                open_files: DEFAULT_OPEN_FILES,
                processes: DEFAULT_PROCESSES,
                file_size: tmp_bytes.max(largest_disk),
            },
            files: Vec::new(),
            requests: None,
        }
    }
}

/// A file to bind: its real host path, its mount point relative to the jail's root, and the
/// remount flags. The source is a path, not a descriptor opened here: a bind mount's source
/// must be in the mount namespace of the caller, and the child has its own by then. The
/// paths are the operator's (kernel, image, disks), never a guest's.
pub(crate) struct Bind {
    pub(crate) source: CString,
    pub(crate) target: CString,
    pub(crate) flags: libc::c_ulong,
}

/// A block device given to the VM: a node of its own in the jail (the host's node is never
/// bound, nor chowned), owned by the VM's uid.
#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) target: CString,
    pub(crate) mode: libc::mode_t,
    pub(crate) rdev: libc::dev_t,
}

/// Everything the child needs, prepared before the clone: it may then only make system calls.
pub(crate) struct JailSetup {
    pub(crate) root: CString,
    pub(crate) root_options: CString,
    pub(crate) tmp: CString,
    pub(crate) tmp_options: CString,
    pub(crate) dirs: Vec<CString>,
    pub(crate) binds: Vec<Bind>,
    pub(crate) nodes: Vec<Node>,
    pub(crate) netns: Option<OwnedFd>,
    pub(crate) requests: Option<OwnedFd>,
    pub(crate) taps: Vec<[u8; libc::IFNAMSIZ]>,
}

/// Why a jail cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum JailError {
    #[error("{what} contains a NUL byte")]
    Nul { what: &'static str },
    #[error("{} is not an absolute path", .0.display())]
    NotAbsolute(PathBuf),
    #[error("opening {} for the VM's jail: {source}", path.display())]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{} is given to the VM twice (say, as its image and as a data disk); each disk needs a \
         file of its own",
        .0.display()
    )]
    Twice(PathBuf),
    #[error(
        "{} cannot be given to a VM: {} and /dev are the jail's own; move the file",
        .0.display(),
        crate::cmdline::JAIL_TMP
    )]
    JailsOwn(PathBuf),
    #[error("TAP device name {0:?} is not 1 to 15 bytes")]
    TapName(String),
    #[error(
        "{} is a character device; a VM's disk is a regular file or a block device",
        .0.display()
    )]
    CharDevice(PathBuf),
    #[error(
        "{} is a block device, which a VM may use only as a disk (not as its kernel or \
         libraries)",
        .0.display()
    )]
    BlockNotDisk(PathBuf),
}

/// A file could not be given to the VM's uid.
#[derive(Debug, thiserror::Error)]
#[error("giving {} to the VM's uid {uid}: {source}", path.display())]
pub struct HandOverError {
    pub path: PathBuf,
    pub uid: u32,
    pub source: std::io::Error,
}

pub(crate) fn cstring(s: impl AsRef<[u8]>, what: &'static str) -> Result<CString, JailError> {
    CString::new(s.as_ref().to_vec()).map_err(|_| JailError::Nul { what })
}

fn relative(p: &Path) -> Result<&Path, JailError> {
    p.strip_prefix("/")
        .map_err(|_| JailError::NotAbsolute(p.to_path_buf()))
}

/// Opens `p` for reading (and writing with `write`); `flags` beyond the access mode.
fn open_path(p: &Path, write: bool, flags: libc::c_int) -> Result<OwnedFd, JailError> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags(flags)
        .open(p)
        .map(OwnedFd::from)
        .map_err(|source| JailError::Open {
            path: p.to_path_buf(),
            source,
        })
}

fn flags_for(access: Access) -> libc::c_ulong {
    let base = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_NOSUID | libc::MS_NODEV;
    match access {
        Access::Exec | Access::Preload => base | libc::MS_RDONLY,
        Access::ReadOnly => base | libc::MS_RDONLY | libc::MS_NOEXEC,
        Access::ReadWrite => base | libc::MS_NOEXEC,
    }
}

/// `fd` moved to a number above the descriptors the child `dup2`s onto (0 to 4), so none of
/// those overwrites it and its own `dup2` clears its close-on-exec flag.
fn above_stdio(path: &Path, fd: OwnedFd) -> Result<OwnedFd, JailError> {
    use std::os::fd::{AsRawFd, FromRawFd};
    // SAFETY: F_DUPFD_CLOEXEC returns a new descriptor that only the OwnedFd below owns.
    let n = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 10) };
    if n < 0 {
        return Err(JailError::Open {
            path: path.to_path_buf(),
            source: std::io::Error::last_os_error(),
        });
    }
    // SAFETY: as above.
    Ok(unsafe { OwnedFd::from_raw_fd(n) })
}

/// Every ancestor directory of `rel`, outermost first.
fn ancestors(rel: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = rel
        .ancestors()
        .skip(1)
        .filter(|a| !a.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .collect();
    out.reverse();
    out
}

/// The device nodes the jail makes itself (see `child::make_devices`): no disk may take
/// their place.
const OWN_NODES: [&str; 4] = ["dev/null", "dev/random", "dev/urandom", "dev/net/tun"];

/// The node of the block device `path` (device number `rdev`) at `rel` in the jail.
fn block_node(path: &Path, rel: &Path, access: Access, rdev: u64) -> Result<Node, JailError> {
    let mode = match access {
        Access::ReadWrite => 0o600,
        Access::ReadOnly => 0o400,
        Access::Exec | Access::Preload => return Err(JailError::BlockNotDisk(path.into())),
    };
    if OWN_NODES.iter().any(|n| rel == Path::new(n)) {
        return Err(JailError::JailsOwn(path.into()));
    }
    Ok(Node {
        target: cstring(rel.as_os_str().as_bytes(), "a path")?,
        mode,
        rdev,
    })
}

/// The set-up of `jail`: descriptors opened, every string made.
pub(crate) fn setup(jail: &Jail) -> Result<JailSetup, JailError> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let tmp = relative(Path::new(crate::cmdline::JAIL_TMP))?;
    let mut dirs: Vec<PathBuf> = vec![tmp.into(), "dev".into(), "dev/net".into()];
    let mut binds = Vec::new();
    let mut nodes: Vec<Node> = Vec::new();
    let files: Vec<(PathBuf, Access)> = jail
        .files
        .iter()
        .map(|(p, a)| (crate::cmdline::normalized(p), *a))
        .collect();
    for (path, access) in &files {
        // A symbolic link (e.g. /lib64/ld-linux-x86-64.so.2) is bound as the file it names.
        let real = std::fs::canonicalize(path).map_err(|source| JailError::Open {
            path: path.clone(),
            source,
        })?;
        // The ptrace wrapper has the jail's own name (no host directory shows in the jail).
        let rel = match access {
            Access::Preload => relative(Path::new(crate::preload::JAIL_PATH))?,
            _ => relative(path)?,
        };
        if files.iter().filter(|(p, _)| p == path).count() > 1 {
            return Err(JailError::Twice(path.clone()));
        }
        let meta = std::fs::metadata(&real).map_err(|source| JailError::Open {
            path: path.clone(),
            source,
        })?;
        let kind = meta.file_type();
        if kind.is_char_device() {
            return Err(JailError::CharDevice(path.clone()));
        }
        let block = kind.is_block_device();
        // A device node may sit under the jail's /dev (its host path, e.g. /dev/vg0/data);
        // a bound file may not.
        if rel.starts_with(tmp) || (!block && rel.starts_with("dev")) {
            return Err(JailError::JailsOwn(path.clone()));
        }
        for a in ancestors(rel) {
            if !dirs.contains(&a) {
                dirs.push(a);
            }
        }
        if block {
            // Two names of one device (/dev/loop5, /dev/disk/by-...) are one disk.
            if nodes.iter().any(|n| n.rdev == meta.rdev()) {
                return Err(JailError::Twice(path.clone()));
            }
            nodes.push(block_node(path, rel, *access, meta.rdev())?);
            continue;
        }
        let source = cstring(real.as_os_str().as_bytes(), "a path")?;
        binds.push(Bind {
            source,
            target: cstring(rel.as_os_str().as_bytes(), "a path")?,
            flags: flags_for(*access),
        });
    }
    let netns = match &jail.netns {
        Some(p) => Some(open_path(p, false, libc::O_CLOEXEC)?),
        None => None,
    };
    let requests = match &jail.requests {
        Some(p) => Some(above_stdio(
            p,
            // Read-write: UML's console takes a read of 0 (a FIFO without writers) for a
            // hang-up and closes the line for good.
            open_path(p, true, libc::O_NONBLOCK | libc::O_CLOEXEC)?,
        )?),
        None => None,
    };
    let mut taps = Vec::new();
    for name in &jail.taps {
        if name.is_empty() || name.len() >= libc::IFNAMSIZ {
            return Err(JailError::TapName(name.clone()));
        }
        let mut b = [0u8; libc::IFNAMSIZ];
        b[..name.len()].copy_from_slice(name.as_bytes());
        taps.push(b);
    }
    Ok(JailSetup {
        root: cstring(jail.dir.as_os_str().as_bytes(), "the jail directory")?,
        root_options: cstring("size=1m,nr_inodes=4096,mode=0755", "options")?,
        tmp: cstring(tmp.as_os_str().as_bytes(), "a path")?,
        tmp_options: cstring(
            format!(
                "size={},nr_inodes=1024,mode=0700,uid={},gid={}",
                jail.tmp_bytes, jail.uid, jail.gid
            ),
            "options",
        )?,
        dirs: dirs
            .iter()
            .map(|d| cstring(d.as_os_str().as_bytes(), "a path"))
            .collect::<Result<_, _>>()?,
        binds,
        nodes,
        netns,
        requests,
        taps,
    })
}

/// Gives a host file to the VM's uid with `mode` (its disks 0600, its config device 0400):
/// UML opens them as that uid, and no other VM's uid or host user can.
pub fn hand_over(path: &Path, uid: u32, gid: u32, mode: u32) -> Result<(), HandOverError> {
    use std::os::unix::fs::PermissionsExt;
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .and_then(|()| std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)))
        .map_err(|source| HandOverError {
            path: path.to_path_buf(),
            uid,
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ancestors_outermost_first() {
        assert_eq!(
            ancestors(Path::new("usr/lib/x/libc.so")),
            [
                PathBuf::from("usr"),
                PathBuf::from("usr/lib"),
                PathBuf::from("usr/lib/x")
            ]
        );
        assert!(ancestors(Path::new("file")).is_empty());
    }

    #[test]
    fn a_plan_refuses_what_the_jail_owns() {
        let mut j = Jail::sized("/nonexistent".into(), 7, 7, 32, 0);
        j.files.push(("/dev/null".into(), Access::ReadOnly));
        assert!(setup(&j)
            .err()
            .unwrap()
            .to_string()
            .contains("is a character device"));

        j.files = vec![("/no/such/file".into(), Access::ReadOnly)];
        assert!(setup(&j)
            .err()
            .unwrap()
            .to_string()
            .contains("/no/such/file"));
        j.files = vec![
            ("/bin/sh".into(), Access::Exec),
            ("/bin/sh".into(), Access::ReadWrite),
        ];
        assert!(setup(&j).err().unwrap().to_string().contains("twice"));
        j.files = vec![("/bin/sh".into(), Access::Exec)];
        j.taps = vec!["a-name-far-too-long".into()];
        assert!(setup(&j)
            .err()
            .unwrap()
            .to_string()
            .contains("1 to 15 bytes"));
    }

    #[test]
    fn a_block_device_gets_a_node_of_its_own_never_the_jails() {
        let p = Path::new("/dev/vg0/data");
        let n = block_node(p, Path::new("dev/vg0/data"), Access::ReadWrite, 7).unwrap();
        assert_eq!((n.mode, n.rdev), (0o600, 7));
        assert_eq!(n.target.as_bytes(), b"dev/vg0/data");
        let ro = block_node(p, Path::new("dev/vg0/data"), Access::ReadOnly, 7).unwrap();
        assert_eq!(ro.mode, 0o400);
        let e = block_node(p, Path::new("dev/net/tun"), Access::ReadWrite, 7).unwrap_err();
        assert!(e.to_string().contains("jail's own"), "{e}");
        let e = block_node(p, Path::new("dev/vg0/data"), Access::Exec, 7).unwrap_err();
        assert!(e.to_string().contains("only as a disk"), "{e}");
    }

    #[test]
    fn limits_cover_the_disks_and_memory() {
        let j = Jail::sized("/j".into(), 7, 7, 32, 1 << 30);
        assert_eq!(j.limits.file_size, 1 << 30);
        assert_eq!(j.tmp_bytes, (32 << 20) + TMP_SLACK_BYTES);
        let j = Jail::sized("/j".into(), 7, 7, 32, 0);
        assert_eq!(j.limits.file_size, j.tmp_bytes);
    }
}
