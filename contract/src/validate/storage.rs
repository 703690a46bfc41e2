//! Mounts and files: data disks and tmpfs (devices, mount points, options) and the files
//! written under /run.

use super::{check_abs_path, parse_mode, Checker, ModeError, RESERVED_RUN_DIR};
use crate::types::*;
use std::collections::BTreeSet;

const SYSTEM_DIRS: &[&str] = &[
    "/",
    "/proc",
    "/sys",
    "/dev",
    "/run",
    "/tmp",
    RESERVED_RUN_DIR,
];

pub(super) fn check_mounts(ck: &mut Checker, m: &Mounts) {
    let mut points = BTreeSet::new();
    let mut devices = BTreeSet::new();
    for (i, d) in m.disks.iter().enumerate() {
        let at = format!("mounts.disks[{i}]");
        check_mount_point(
            ck,
            &format!("{at}.mount_point"),
            &d.mount_point,
            &mut points,
        );
        match check_abs_path(&d.device) {
            Err(m) => ck.push(format!("{at}.device"), m.to_string()),
            Ok(()) if !d.device.starts_with("/dev/") => ck.push(
                format!("{at}.device"),
                format!(
                    "'{}' must be a device under /dev/, e.g. '/dev/ubdb'",
                    d.device
                ),
            ),
            Ok(()) if !devices.insert(d.device.as_str()) => ck.push(
                format!("{at}.device"),
                format!("'{}' is used by two disks", d.device),
            ),
            Ok(()) => {}
        }
        if d.fs_type.is_empty() || !d.fs_type.chars().all(|c| c.is_ascii_alphanumeric()) {
            ck.push(
                format!("{at}.fs_type"),
                format!("'{}' is not a filesystem type; use e.g. 'ext4'", d.fs_type),
            );
        } else if d.format_if_blank && !matches!(d.fs_type.as_str(), "ext2" | "ext3" | "ext4") {
            ck.push(
                format!("{at}.format_if_blank"),
                format!(
                    "the guest can only create ext2, ext3 or ext4 filesystems, not '{}'",
                    d.fs_type
                ),
            );
        }
        if !d.format_if_blank && (d.owner_uid.is_some() || d.owner_gid.is_some()) {
            ck.push(
                format!("{at}.owner_uid"),
                "an owner applies only to a file system guest-init creates; set format_if_blank to true or remove the owner",
            );
        }
        for (j, o) in d.options.iter().enumerate() {
            if o.is_empty() || o.contains(',') || o.chars().any(|c| c.is_whitespace() || c == '\0')
            {
                ck.push(
                    format!("{at}.options[{j}]"),
                    format!("'{o}' is not one mount option; give each option as its own list item"),
                );
            }
        }
    }
    for (i, t) in m.tmpfs.iter().enumerate() {
        let at = format!("mounts.tmpfs[{i}]");
        check_mount_point(
            ck,
            &format!("{at}.mount_point"),
            &t.mount_point,
            &mut points,
        );
        if t.size_mib == Some(0) {
            ck.push(
                format!("{at}.size_mib"),
                "must be at least 1, or left out for the kernel default",
            );
        }
        if let Some(mode) = &t.mode {
            ck.check(&format!("{at}.mode"), parse_mode(mode).map(|_| ()));
        }
    }
}

fn check_mount_point<'a>(ck: &mut Checker, path: &str, p: &'a str, seen: &mut BTreeSet<&'a str>) {
    if let Err(m) = check_abs_path(p) {
        ck.push(path, m.to_string());
    } else if SYSTEM_DIRS.contains(&p)
        || p.starts_with("/proc/")
        || p.starts_with("/sys/")
        || p.starts_with("/dev/")
    {
        ck.push(path, format!("'{p}' is a system directory that guest-init mounts itself; choose another, e.g. '/data'"));
    } else if p.starts_with("/run/") || p.starts_with("/tmp/") {
        // Fresh tmpfs mounts at boot: no directory of the image is there to mount on.
        ck.push(path, format!("'{p}' is inside {}, which guest-init mounts empty at boot, so nothing can be mounted there; choose a directory of the image, e.g. '/data'", &p[..4]));
    } else if !seen.insert(p) {
        ck.push(path, format!("'{p}' is used by two mounts"));
    }
}

pub(super) fn check_files(ck: &mut Checker, files: &[File]) {
    let mut seen = BTreeSet::new();
    for (i, f) in files.iter().enumerate() {
        let at = format!("files[{i}]");
        match check_abs_path(&f.path) {
            Err(m) => ck.push(format!("{at}.path"), m.to_string()),
            Ok(()) if !f.path.starts_with("/run/") => ck.push(format!("{at}.path"), format!("'{}' is outside /run; the root is read-only, so files go under /run/ (link to them from the image)", f.path)),
            Ok(()) if f.path == RESERVED_RUN_DIR || f.path.starts_with(&format!("{RESERVED_RUN_DIR}/")) => {
                ck.push(format!("{at}.path"), format!("'{}' is inside {RESERVED_RUN_DIR}, which guest-init keeps for the contract itself", f.path))
            }
            Ok(()) if !seen.insert(f.path.as_str()) => ck.push(format!("{at}.path"), format!("'{}' is written twice", f.path)),
            Ok(()) => {}
        }
    }
    // A file cannot also be the directory of another one: guest-init would fail at boot.
    let index: std::collections::BTreeMap<&str, usize> = files
        .iter()
        .enumerate()
        .map(|(i, f)| (f.path.as_str(), i))
        .rev()
        .collect();
    for (i, f) in files.iter().enumerate() {
        let mut p = f.path.as_str();
        while let Some((parent, _)) = p.rsplit_once('/') {
            if parent.is_empty() {
                break;
            }
            if let Some(j) = index.get(parent) {
                ck.push(
                    format!("files[{i}].path"),
                    format!("'{}' is inside '{parent}', which files[{j}] writes as a file; a path cannot be both", f.path),
                );
                break;
            }
            p = parent;
        }
    }
    for (i, f) in files.iter().enumerate() {
        let at = format!("files[{i}]");
        ck.check(
            &format!("{at}.mode"),
            parse_mode(&f.mode)
                .map_err(FileModeError::from)
                .and_then(|m| check_file_mode(&f.mode, m)),
        );
        if f.encoding == FileEncoding::Base64 && crate::file_content(f).is_err() {
            ck.push(
                format!("{at}.content"),
                "is not valid base64 (standard alphabet, with padding)",
            );
        }
    }
}

/// Why a file's mode cannot be honoured under /run ([`check_file_mode`]).
#[derive(Debug, thiserror::Error)]
enum FileModeError {
    #[error(transparent)]
    Mode(#[from] ModeError),
    #[error(
        "'{text}' sets {bit}, which a file under /run cannot honour (/run is mounted nosuid, \
         and sticky means nothing on a file); use the permission bits alone, e.g. '{perm:04o}'"
    )]
    SpecialBit {
        text: String,
        bit: &'static str,
        perm: u32,
    },
}

/// A file under /run holds permission bits only: /run is mounted nosuid, so a setuid or setgid
/// bit would promise the service rights it never gets, and the sticky bit means nothing on a
/// file.
fn check_file_mode(text: &str, mode: u32) -> Result<(), FileModeError> {
    let bit = [
        (0o4000, "the setuid bit"),
        (0o2000, "the setgid bit"),
        (0o1000, "the sticky bit"),
    ]
    .into_iter()
    .find(|(b, _)| mode & b != 0);
    match bit {
        None => Ok(()),
        Some((_, bit)) => Err(FileModeError::SpecialBit {
            text: text.into(),
            bit,
            perm: mode & 0o777,
        }),
    }
}
