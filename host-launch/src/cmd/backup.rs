//! `backup NAME --to DIR [--keep N] [--bound SECONDS]`: a [`snapshot`](super::snapshot) of a
//! running appliance (the same freeze, copy and thaw), packed as one archive
//! `DIR/NAME-MILLISECONDS.tar.gz` with its `.sha256` beside it (see
//! [`crate::backup_archive`]); the snapshot's copies are removed once packed, and only the
//! newest N backups of NAME in DIR are kept. The host copies the disks' bytes: it never
//! mounts or reads the guest's file systems.

use super::snapshot;
use crate::backup_archive::{self, Contents};
use crate::error::{Error, IoContext, Result};
use crate::lifecycle::known;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The most of a spec file packed into a backup (specs are small JSON files).
const MAX_SPEC: u64 = 1 << 20;

/// `backup NAME`: prints the archive, its checksum and the backups removed.
pub fn backup(name: &str, to: &Path, keep: usize, bound: Duration) -> Result<i32> {
    let (spec, digest) = identity(name)?;
    let snap = snapshot::take(name, Some(to.to_path_buf()), bound)?;
    let packed = pack(&snap, &spec, &digest);
    // The copies are scratch either way: the archive holds them, or the backup failed.
    let _ = std::fs::remove_dir_all(&snap.dir);
    let (archive, hex) = packed?;
    match &snap.crash_consistent {
        Some(why) => println!("backup of '{name}': crash-consistent: {why}"),
        None => println!(
            "backup of '{name}': consistent (frozen {} ms in the guest)",
            snap.frozen_ms
                .map(|m| m.to_string())
                .unwrap_or_else(|| "?".into())
        ),
    }
    let size = std::fs::metadata(&archive).map(|m| m.len()).unwrap_or(0);
    println!(
        "  {} ({} KiB, sha256 {hex})",
        archive.display(),
        size.div_ceil(1024)
    );
    for old in prune(to, name, keep)? {
        println!("  removed the older backup {}", old.display());
    }
    Ok(0)
}

/// The appliance's spec (its bytes) and image digest, read before the snapshot so a bad
/// one costs no freeze.
fn identity(name: &str) -> Result<(Vec<u8>, String)> {
    let e = known(name)?;
    let st =
        e.state.as_ref().filter(|_| e.running).ok_or_else(|| {
            Error::not_found(format!("'{name}' is not running; nothing to back up"))
        })?;
    let mut spec = Vec::new();
    std::fs::File::open(&st.spec)
        .and_then(|f| f.take(MAX_SPEC).read_to_end(&mut spec))
        .io_context(|| format!("reading the spec {} of '{name}'", st.spec))?;
    let digest = match &st.image {
        Some(i) => {
            let image = Path::new(i);
            crate::trust::digest(image, &appliance::manifest::path_beside(image))?.to_string()
        }
        None => "unknown".into(),
    };
    Ok((spec, digest))
}

/// Packs a snapshot's copies as `DIR/NAME-MILLISECONDS.tar.gz` (the snapshot's own name).
fn pack(snap: &snapshot::Snapshot, spec: &[u8], digest: &str) -> Result<(PathBuf, String)> {
    let mut archive = snap.dir.clone().into_os_string();
    archive.push(".tar.gz");
    let archive = PathBuf::from(archive);
    let disks = snap
        .disks
        .iter()
        .filter_map(|c| {
            let n = c.to.file_name()?.to_string_lossy().into_owned();
            Some((n, c.to.clone()))
        })
        .collect();
    let contents = Contents {
        disks,
        spec,
        image_digest: digest,
    };
    let hex = backup_archive::write(&archive, &contents).map_err(|e| Error::host(e.to_string()))?;
    Ok((archive, hex))
}

/// Removes all but the newest `keep` backups of `name` in `dir` (archive and checksum); the
/// ones removed.
fn prune(dir: &Path, name: &str, keep: usize) -> Result<Vec<PathBuf>> {
    let mut found: Vec<(u128, PathBuf)> = std::fs::read_dir(dir)
        .io_context(|| format!("listing {}", dir.display()))?
        .filter_map(|e| {
            let p = e.ok()?.path();
            let stamp = backup_stamp(p.file_name()?.to_str()?, name)?;
            Some((stamp, p))
        })
        .collect();
    found.sort();
    let old = found.len().saturating_sub(keep);
    let mut removed = Vec::new();
    for (_, p) in found.into_iter().take(old) {
        std::fs::remove_file(&p).io_context(|| format!("removing {}", p.display()))?;
        let _ = std::fs::remove_file(backup_archive::checksum_path(&p));
        removed.push(p);
    }
    Ok(removed)
}

/// The milliseconds of `NAME-MILLISECONDS.tar.gz`, for `name`'s backups only.
fn backup_stamp(file: &str, name: &str) -> Option<u128> {
    let digits = file
        .strip_prefix(name)?
        .strip_prefix('-')?
        .strip_suffix(".tar.gz")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_appliances_backups_are_counted() {
        assert_eq!(
            backup_stamp("web-1700000000000.tar.gz", "web"),
            Some(1700000000000)
        );
        assert_eq!(backup_stamp("web-2-1700000000000.tar.gz", "web"), None);
        assert_eq!(backup_stamp("web-1700.tar.gz.sha256", "web"), None);
        assert_eq!(backup_stamp("web-.tar.gz", "web"), None);
        assert_eq!(backup_stamp("webx-17.tar.gz", "web"), None);
    }

    #[test]
    fn prune_keeps_the_newest() {
        let dir = std::env::temp_dir().join(format!("hl-prune-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for s in [30, 10, 20] {
            std::fs::write(dir.join(format!("a-{s}.tar.gz")), b"x").unwrap();
            std::fs::write(dir.join(format!("a-{s}.tar.gz.sha256")), b"x").unwrap();
        }
        std::fs::write(dir.join("b-5.tar.gz"), b"x").unwrap();
        let removed = prune(&dir, "a", 2).unwrap();
        assert_eq!(removed, vec![dir.join("a-10.tar.gz")]);
        assert!(!dir.join("a-10.tar.gz.sha256").exists());
        assert!(dir.join("a-20.tar.gz").exists() && dir.join("a-30.tar.gz").exists());
        assert!(dir.join("b-5.tar.gz").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
