//! A container's volumes as the appliance's data disks, so its data outlives the container.
//!
//! - A directory volume at a data path of the image (`podman -v DIR:/data`, a Kubernetes
//!   filesystem volume) holds the disk's image file, `DIR/`[`IMAGE_FILE`]: created sparse on
//!   first use (sized by [`ANNOTATION_DATA_SIZE`]), used as it is after, never resized or
//!   overwritten. host-launch's rule for its disk files: the host never runs mkfs; the guest
//!   formats a blank disk when the image's manifest says `format_if_blank`.
//! - A block device (`linux.devices`: `podman --device`, a Kubernetes volume of
//!   `volumeMode: Block`) is attached as it is, through a node of the container's own in its
//!   state directory (the host's `/dev` never reaches the jail).
//!
//! [`plan`] reads config.json (pure); [`attach`] makes them on the host and holds them: a
//! lock on each image file and an exclusive claim on each device, kept by the monitor for
//! the VM's life, so no second container, appliance or host mount takes them meanwhile.

use crate::bundle::{Config, Device};
use crate::error::{io, Error, Result};
use crate::service::{self, DataPath, MountUse};
use appliance::spec::DiskSpec;
use std::fs::File;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The disk image's name in a directory volume.
pub const IMAGE_FILE: &str = ".uml-data.img";
/// The size in MiB of a new disk image (`--annotation org.host-contract.data-size-mib=256`).
pub const ANNOTATION_DATA_SIZE: &str = "org.host-contract.data-size-mib";
/// A new disk image's size without the annotation: sparse, it takes on the host only what the
/// guest writes.
pub const DEFAULT_DATA_SIZE_MIB: u64 = 1024;

/// Where a data disk comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A directory volume: the image file in it.
    Directory(PathBuf),
    /// A block device by its numbers; `path` is its node in the container.
    Device {
        path: String,
        major: u64,
        minor: u64,
    },
}

/// One data disk of the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// Where config.json gives it (`mounts[2]`, `linux.devices[0]`), for messages.
    pub at: String,
    pub source: Source,
    /// The image's data path it provides.
    pub data: DataPath,
}

/// The data disks config.json gives: each directory volume at its data path, then each
/// block device at the next data path no volume took, in the manifest's order. `is_file`
/// as for [`service::mount_use`].
pub fn plan(
    c: &Config,
    data_paths: &[DataPath],
    is_file: impl Fn(&str) -> Option<bool>,
) -> Result<Vec<Planned>> {
    let mut out: Vec<Planned> = Vec::new();
    for (i, m) in c.mounts.iter().enumerate() {
        if service::mount_use(i, m, data_paths, &is_file)? != MountUse::Volume {
            continue;
        }
        let at = format!("mounts[{i}]");
        if m.options.iter().any(|o| o == "ro") {
            return Err(Error::new(format!(
                "config.json: {at}: the volume at {} is read-only (ro), but it holds the \
                 appliance's data disk, which its guest writes (and formats when blank); \
                 mount it read-write (drop :ro)",
                m.destination
            )));
        }
        let data = data_paths
            .iter()
            .find(|d| d.mount_point == m.destination)
            .cloned()
            .ok_or_else(|| Error::new(format!("config.json: {at}: not at a data path")))?;
        if let Some(other) = out.iter().find(|p| p.data == data) {
            return Err(Error::new(format!(
                "config.json: {at}: {} is given a volume twice (also {}); give it one",
                data.mount_point, other.at
            )));
        }
        let dir = PathBuf::from(m.source.as_deref().unwrap_or_default());
        out.push(Planned {
            at,
            source: Source::Directory(dir),
            data,
        });
    }
    let devices = c
        .linux
        .as_ref()
        .map(|l| l.devices.as_slice())
        .unwrap_or(&[]);
    for (j, d) in devices.iter().enumerate() {
        let at = format!("linux.devices[{j}]");
        let data = device_place(&at, d, data_paths, &out)?;
        if !writable(c, d) {
            return Err(Error::new(format!(
                "config.json: {at}: the block device {} may only be read (the device rules of \
                 linux.resources.devices allow no `w`), but it is the appliance's data disk, \
                 which its guest writes (and formats when blank); give it read-write (podman \
                 --device HOST:{}:rwm)",
                d.path, d.path
            )));
        }
        out.push(Planned {
            at,
            source: Source::Device {
                path: d.path.clone(),
                major: d.major,
                minor: d.minor,
            },
            data,
        });
    }
    Ok(out)
}

/// The data path block device `d` provides: the first one nothing else took.
fn device_place(
    at: &str,
    d: &Device,
    data_paths: &[DataPath],
    taken: &[Planned],
) -> Result<DataPath> {
    if d.kind != "b" {
        return Err(Error::new(format!(
            "config.json: {at}: {} is not a block device (type {:?}): the guest has its own \
             devices and no host device but a disk reaches a VM; drop it (podman --device)",
            d.path, d.kind
        )));
    }
    data_paths
        .iter()
        .find(|p| !taken.iter().any(|t| &t.data == *p))
        .cloned()
        .ok_or_else(|| {
            let paths: Vec<&str> = data_paths.iter().map(|p| p.mount_point.as_str()).collect();
            Error::new(format!(
                "config.json: {at}: the block device {} ({}:{}) has no data path left to \
                 serve: the image declares {} ({}); drop the device or the volume that took \
                 that path",
                d.path,
                d.major,
                d.minor,
                paths.len(),
                if paths.is_empty() {
                    "no data disk".to_string()
                } else {
                    paths.join(", ")
                }
            ))
        })
}

/// Whether the device cgroup's rules let the container write to `d` (the last rule that
/// matches it and names `w` decides; no rules: it may).
fn writable(c: &Config, d: &Device) -> bool {
    let rules = c
        .linux
        .as_ref()
        .and_then(|l| l.resources.as_ref())
        .map(|r| r.devices.as_slice())
        .unwrap_or(&[]);
    let matches = |r: &&crate::bundle::DeviceRule| {
        matches!(r.kind.as_deref(), None | Some("a") | Some("b"))
            && r.major
                .is_none_or(|m| u64::try_from(m).ok() == Some(d.major))
            && r.minor
                .is_none_or(|m| u64::try_from(m).ok() == Some(d.minor))
            && r.access.as_deref().is_none_or(|a| a.contains('w'))
    };
    rules.iter().rev().find(matches).is_none_or(|r| r.allow)
}

/// The size of a new disk image: the annotation's, else [`DEFAULT_DATA_SIZE_MIB`].
pub fn new_size_mib(c: &Config) -> Result<u64> {
    let Some(v) = c.annotations.get(ANNOTATION_DATA_SIZE) else {
        return Ok(DEFAULT_DATA_SIZE_MIB);
    };
    match v.trim().parse::<u64>() {
        Ok(n) if (1..=1 << 30).contains(&n) => Ok(n),
        _ => Err(Error::new(format!(
            "config.json: annotations.{ANNOTATION_DATA_SIZE}: {v:?} is not a size in MiB from 1 \
             to 2^30 (e.g. --annotation {ANNOTATION_DATA_SIZE}=256)"
        ))),
    }
}

/// The data disks on the host, ready for the VM's uid.
#[derive(Debug, Default)]
pub struct Attached {
    /// The spec's disks they amount to.
    pub disks: Vec<DiskSpec>,
    /// Image files this create made: removed if it fails (they hold nothing yet).
    pub created: Vec<PathBuf>,
    /// The lock on each image file and the exclusive claim on each device, which the
    /// monitor keeps open while the VM runs (close-on-exec: UML does not inherit them).
    pub held: Vec<File>,
}

/// Makes each planned disk usable by `uid`: image files created or checked, devices
/// claimed (the jail gives the VM a node of its own for each: `vmm::jail`). On failure
/// nothing it created is left.
pub fn attach(planned: &[Planned], new_mib: u64, uid: u32) -> Result<Attached> {
    let mut a = Attached::default();
    for p in planned {
        let done = match &p.source {
            Source::Directory(dir) => image_file(p, dir, new_mib, uid, &mut a.created),
            Source::Device { path, major, minor } => claim_device(p, path, (*major, *minor)),
        };
        match done {
            Ok((disk, held)) => {
                a.disks.push(disk);
                a.held.push(held);
            }
            Err(e) => {
                remove_created(&a.created);
                return Err(e);
            }
        }
    }
    Ok(a)
}

/// Removes image files a failed create made.
pub fn remove_created(created: &[PathBuf]) {
    for p in created {
        let _ = std::fs::remove_file(p);
    }
}

/// `dir`'s image file, created sparse with `new_mib` MiB if absent, locked, given to `uid`.
fn image_file(
    p: &Planned,
    dir: &Path,
    new_mib: u64,
    uid: u32,
    created: &mut Vec<PathBuf>,
) -> Result<(DiskSpec, File)> {
    let path = dir.join(IMAGE_FILE);
    let at = format!("config.json: {}", p.at);
    let f = match open_image(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let f = create_image(&path, new_mib).map_err(io(format!(
                "{at}: creating the data disk {}",
                path.display()
            )))?;
            created.push(path.clone());
            f
        }
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(Error::new(format!(
                "{at}: {} is a symbolic link; the data disk must be a regular file there: \
                 remove the link",
                path.display()
            )))
        }
        Err(e) => return Err(Error::new(format!("{at}: opening {}: {e}", path.display()))),
    };
    let meta = f
        .metadata()
        .map_err(io(format!("{at}: {}", path.display())))?;
    if !meta.is_file() {
        return Err(Error::new(format!(
            "{at}: {} is not a regular file; the data disk must be one: remove it",
            path.display()
        )));
    }
    lock(&f).map_err(|e| {
        Error::new(format!(
            "{at}: the data disk {} is in use by another container ({e}); stop that one, or \
             give this one another directory",
            path.display()
        ))
    })?;
    give(&f, uid).map_err(io(format!(
        "{at}: giving {} to the VM's uid",
        path.display()
    )))?;
    let mib = meta.len() >> 20;
    check_size(p, &path, mib)?;
    Ok((disk(&path, mib, &p.data), f))
}

/// Opens an existing image file for the check: never through a symbolic link.
fn open_image(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// A new, sparse image file (`set_len`, as host-launch creates its data disks).
fn create_image(path: &Path, mib: u64) -> std::io::Result<File> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    f.set_len(mib << 20)?;
    f.sync_all()?;
    Ok(f)
}

/// An exclusive, non-blocking flock: another container's monitor holds it while its VM runs
/// (UML's own lock is an fcntl lock, which flock does not meet).
fn lock(f: &File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock(2) on a descriptor this function borrows.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The file to `uid` alone, mode 0600, through the descriptor (no path to swap).
fn give(f: &File, uid: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::os::unix::fs::fchown(f, Some(uid), Some(uid))?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
}

/// A disk smaller than the image's least is refused, naming what to change.
fn check_size(p: &Planned, what: &Path, mib: u64) -> Result<()> {
    match p.data.min_size_mib {
        Some(min) if mib < min => Err(Error::new(format!(
            "config.json: {}: {} has {mib} MiB, less than the {min} MiB the image needs at {}; \
             give a larger one (a new directory takes annotations.{ANNOTATION_DATA_SIZE})",
            p.at,
            what.display(),
            p.data.mount_point
        ))),
        _ => Ok(()),
    }
}

fn disk(path: &Path, mib: u64, data: &DataPath) -> DiskSpec {
    DiskSpec {
        file: path.to_string_lossy().into_owned(),
        size_mib: Some(mib),
        mount_point: Some(data.mount_point.clone()),
        fs_type: None,
        options: None,
        format_if_blank: None,
    }
}

/// The block device `major:minor` claimed exclusively (so it is mounted nowhere and used by
/// no other appliance) by its host node, which the disk names: the jail makes the VM a node
/// of its own for it and never binds the host's.
fn claim_device(p: &Planned, path: &str, (major, minor): (u64, u64)) -> Result<(DiskSpec, File)> {
    let at = format!("config.json: {}", p.at);
    let host = host_node(major, minor).map_err(|e| {
        Error::new(format!(
            "{at}: {path} ({major}:{minor}): {e}; give a block device of this host"
        ))
    })?;
    let claim = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_EXCL | libc::O_CLOEXEC)
        .open(&host)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::EBUSY) {
                Error::new(format!(
                    "{at}: {path} is {} ({major}:{minor}), which is in use on the host: mounted, \
                     held by device mapper or RAID, or another appliance's disk; unmount it or \
                     give another device",
                    host.display()
                ))
            } else {
                Error::new(format!("{at}: opening {}: {e}", host.display()))
            }
        })?;
    let bytes =
        device_bytes(&claim).map_err(io(format!("{at}: the size of {}", host.display())))?;
    check_size(p, &host, bytes >> 20)?;
    Ok((disk(&host, bytes >> 20, &p.data), claim))
}

/// The host's node of a block device, from sysfs's `DEVNAME`, checked to be that device.
fn host_node(major: u64, minor: u64) -> std::result::Result<PathBuf, String> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let uevent = format!("/sys/dev/block/{major}:{minor}/uevent");
    let text = crate::bundle::read_bounded(Path::new(&uevent), 64 * 1024)
        .map_err(|_| "no such block device on this host".to_string())?;
    let name = String::from_utf8_lossy(&text)
        .lines()
        .find_map(|l| l.strip_prefix("DEVNAME=").map(str::to_string))
        .filter(|n| !n.is_empty() && !n.contains(".."))
        .ok_or_else(|| format!("{uevent} names no device"))?;
    let host = Path::new("/dev").join(name);
    let m = std::fs::metadata(&host).map_err(|e| format!("{}: {e}", host.display()))?;
    let want = libc::makedev(
        u32::try_from(major).unwrap_or(u32::MAX),
        u32::try_from(minor).unwrap_or(u32::MAX),
    );
    if !m.file_type().is_block_device() || m.rdev() != want {
        return Err(format!("{} is not that block device", host.display()));
    }
    Ok(host)
}

/// A block device's size in bytes (its end, as lseek finds it).
fn device_bytes(f: &File) -> std::io::Result<u64> {
    use std::io::Seek;
    let mut f = f;
    f.seek(std::io::SeekFrom::End(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: serde_json::Value) -> Config {
        let mut v = serde_json::json!({
            "ociVersion": "1.0.2",
            "process": {"args": ["sh"], "cwd": "/"},
            "root": {"path": "rootfs"},
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/etc/hosts", "type": "bind", "source": "/x/hosts"}
            ]
        });
        if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            for (k, x) in e {
                o.insert(k.clone(), x.clone());
            }
        }
        serde_json::from_value(v).unwrap()
    }

    fn data(paths: &[&str]) -> Vec<DataPath> {
        paths
            .iter()
            .map(|p| DataPath {
                mount_point: p.to_string(),
                min_size_mib: Some(8),
            })
            .collect()
    }

    fn is_file(p: &str) -> Option<bool> {
        Some(p.starts_with("/x/"))
    }

    #[test]
    fn volumes_and_devices_take_the_data_paths_in_order() {
        let mut c = config(serde_json::json!({
            "linux": {"devices": [{"path": "/dev/xvdb", "type": "b", "major": 7, "minor": 3}]}
        }));
        c.mounts.push(crate::bundle::Mount {
            destination: "/logs".into(),
            kind: Some("bind".into()),
            source: Some("/srv/logs".into()),
            options: vec!["rbind".into()],
        });
        let p = plan(&c, &data(&["/data", "/logs"]), is_file).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].at, "mounts[2]");
        assert_eq!(p[0].source, Source::Directory("/srv/logs".into()));
        assert_eq!(p[0].data.mount_point, "/logs");
        assert_eq!(p[1].at, "linux.devices[0]");
        assert_eq!(p[1].data.mount_point, "/data", "the path no volume took");
        // One data path: the device finds none left.
        let e = plan(&c, &data(&["/logs"]), is_file).unwrap_err().0;
        assert!(
            e.starts_with("config.json: linux.devices[0]: the block device /dev/xvdb (7:3)")
                && e.contains("no data path left"),
            "{e}"
        );
    }

    #[test]
    fn what_cannot_be_a_data_disk_is_refused() {
        let c = config(serde_json::json!({
            "linux": {"devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]}
        }));
        let e = plan(&c, &data(&["/data"]), is_file).unwrap_err().0;
        assert!(
            e.starts_with("config.json: linux.devices[0]: /dev/fuse is not a block device"),
            "{e}"
        );
        let c = config(serde_json::json!({
            "linux": {"devices": [{"path": "/dev/xvdb", "type": "b", "major": 7, "minor": 3}]}
        }));
        let e = plan(&c, &[], is_file).unwrap_err().0;
        assert!(e.contains("declares 0 (no data disk)"), "{e}");
        let mut c = config(serde_json::json!({}));
        c.mounts.push(crate::bundle::Mount {
            destination: "/data".into(),
            kind: Some("bind".into()),
            source: Some("/srv/data".into()),
            options: vec!["rbind".into(), "ro".into()],
        });
        let e = plan(&c, &data(&["/data"]), is_file).unwrap_err().0;
        assert!(
            e.starts_with("config.json: mounts[2]: the volume at /data is read-only (ro)")
                && e.contains("drop :ro"),
            "{e}"
        );
        // podman --device HOST:/dev/xvdb:r: the cgroup rule allows reading only.
        let read_only = |access: &str| {
            config(serde_json::json!({"linux": {
                "devices": [{"path": "/dev/xvdb", "type": "b", "major": 7, "minor": 3}],
                "resources": {"devices": [
                    {"allow": false, "access": "rwm"},
                    {"allow": true, "type": "b", "major": 7, "minor": 3, "access": access}
                ]}
            }}))
        };
        let e = plan(&read_only("r"), &data(&["/data"]), is_file)
            .unwrap_err()
            .0;
        assert!(
            e.starts_with(
                "config.json: linux.devices[0]: the block device /dev/xvdb may only be read"
            ) && e.contains(":rwm"),
            "{e}"
        );
        assert!(plan(&read_only("rwm"), &data(&["/data"]), is_file).is_ok());
        let c = config(serde_json::json!({"annotations": {ANNOTATION_DATA_SIZE: "big"}}));
        let e = new_size_mib(&c).unwrap_err().0;
        assert!(
            e.contains("annotations.org.host-contract.data-size-mib"),
            "{e}"
        );
        let c = config(serde_json::json!({"annotations": {ANNOTATION_DATA_SIZE: "0"}}));
        assert!(new_size_mib(&c).is_err());
        let c = config(serde_json::json!({"annotations": {ANNOTATION_DATA_SIZE: "64"}}));
        assert_eq!(new_size_mib(&c).unwrap(), 64);
        assert_eq!(new_size_mib(&config(serde_json::json!({}))).unwrap(), 1024);
    }

    #[test]
    fn an_image_file_is_made_sparse_once_and_never_through_a_link() {
        use std::os::unix::fs::MetadataExt;
        let dir = std::env::temp_dir().join(format!("uml-runc-volume-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let planned = vec![Planned {
            at: "mounts[3]".into(),
            source: Source::Directory(dir.clone()),
            data: data(&["/data"])[0].clone(),
        }];
        let uid = nix::unistd::getuid().as_raw();
        let a = attach(&planned, 16, uid).unwrap();
        let img = dir.join(IMAGE_FILE);
        assert_eq!(a.created, std::slice::from_ref(&img));
        let m = std::fs::metadata(&img).unwrap();
        assert_eq!(m.len(), 16 << 20);
        assert!(m.blocks() * 512 < m.len(), "sparse");
        assert_eq!(m.mode() & 0o777, 0o600);
        assert_eq!(a.disks[0].size_mib, Some(16));
        assert_eq!(a.disks[0].mount_point.as_deref(), Some("/data"));
        // While it is held, a second container cannot take it.
        let e = attach(&planned, 16, uid).unwrap_err().0;
        assert!(e.contains("in use by another container"), "{e}");
        drop(a);
        // Used as it is after: the size of a new one does not apply, nothing is created.
        let again = attach(&planned, 64, uid).unwrap();
        assert!(again.created.is_empty());
        assert_eq!(again.disks[0].size_mib, Some(16));
        drop(again);
        // Too small for the image: refused, and the new file it made is removed.
        std::fs::remove_file(&img).unwrap();
        let e = attach(&planned, 4, uid).unwrap_err().0;
        assert!(e.contains("has 4 MiB, less than the 8 MiB"), "{e}");
        assert!(!img.exists(), "a refused new image file is removed");
        std::os::unix::fs::symlink("/etc/passwd", &img).unwrap();
        let e = attach(&planned, 16, uid).unwrap_err().0;
        assert!(e.contains("symbolic link"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
