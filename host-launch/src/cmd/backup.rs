//! `backup NAME --to DIR [--keep N] [--bound SECONDS]`: a [`snapshot`](super::snapshot) of a
//! running appliance (the same freeze, copy and thaw), packed as one archive
//! `DIR/NAME-MILLISECONDS.tar.gz` with its `.sha256` beside it (see
//! [`crate::backup_archive`]); the snapshot's copies are removed once packed, and only the
//! newest N backups of NAME in DIR are kept. With `--to-command CMD` the archive is streamed
//! to `sh -c CMD` instead (e.g. `restic backup --stdin`), which keeps what it keeps. The host
//! copies the disks' bytes: it never mounts or reads the guest's file systems.

use super::snapshot;
use crate::backup_archive::{self, Contents};
use crate::error::{Error, IoContext, Result};
use crate::lifecycle::known;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The most of a spec file packed into a backup (specs are small JSON files).
const MAX_SPEC: u64 = 1 << 20;

/// Where a backup goes.
#[derive(Debug)]
pub enum Target {
    /// `DIR/NAME-MILLISECONDS.tar.gz`, the newest N kept.
    Dir { dir: PathBuf, keep: usize },
    /// The stdin of `sh -c CMD`; the snapshot's copies are made in `scratch` meanwhile.
    Command { command: String, scratch: PathBuf },
}

impl Target {
    /// From the command line: `--to-command` streams (the copies made in `--to`, else here);
    /// otherwise `--to DIR` (here by default) keeps the newest `keep`.
    pub fn new(to: Option<PathBuf>, keep: u64, to_command: Option<String>) -> Target {
        let here = || PathBuf::from(".");
        match to_command {
            Some(command) => Target::Command {
                command,
                scratch: to.unwrap_or_else(here),
            },
            None => Target::Dir {
                dir: to.unwrap_or_else(here),
                keep: usize::try_from(keep).unwrap_or(usize::MAX),
            },
        }
    }
}

/// `backup NAME`: prints the archive, its checksum and the backups removed.
pub fn backup(name: &str, target: &Target, bound: Duration) -> Result<i32> {
    let (spec, digest) = identity(name)?;
    let scratch = match target {
        Target::Dir { dir, .. } => dir,
        Target::Command { scratch, .. } => scratch,
    };
    let snap = snapshot::take(name, Some(scratch.clone()), bound)?;
    let contents = contents(&snap, &spec, &digest);
    let packed = match target {
        Target::Dir { .. } => pack(&snap.dir, &contents),
        Target::Command { command, .. } => send(&snap.dir, &contents, command),
    };
    // The copies are scratch either way: the archive holds them, or the backup failed.
    let _ = std::fs::remove_dir_all(&snap.dir);
    let (where_to, hex) = packed?;
    println!("backup of '{name}': {}", snap.describe());
    println!("  {where_to}, sha256 {hex}");
    if let Target::Dir { dir, keep } = target {
        for old in prune(dir, name, *keep)? {
            println!("  removed the older backup {}", old.display());
        }
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

/// What the archive of a snapshot holds.
fn contents<'a>(snap: &snapshot::Snapshot, spec: &'a [u8], digest: &'a str) -> Contents<'a> {
    let disks = snap
        .disks
        .iter()
        .filter_map(|c| {
            let n = c.to.file_name()?.to_string_lossy().into_owned();
            Some((n, c.to.clone()))
        })
        .collect();
    Contents {
        disks,
        spec,
        image_digest: digest,
    }
}

/// `SNAPSHOT_DIR.tar.gz`: the archive's file name, the snapshot's own plus `.tar.gz`.
fn archive_name(snap_dir: &Path) -> PathBuf {
    let mut archive = snap_dir.as_os_str().to_owned();
    archive.push(".tar.gz");
    PathBuf::from(archive)
}

/// Packs a snapshot's copies as `DIR/NAME-MILLISECONDS.tar.gz`: where, and its checksum.
fn pack(snap_dir: &Path, contents: &Contents) -> Result<(String, String)> {
    let archive = archive_name(snap_dir);
    let hex = backup_archive::write(&archive, contents).map_err(|e| Error::host(e.to_string()))?;
    let size = std::fs::metadata(&archive).map(|m| m.len()).unwrap_or(0);
    Ok((
        format!("{} ({} KiB)", archive.display(), size.div_ceil(1024)),
        hex,
    ))
}

/// Streams the archive to `sh -c COMMAND` (its environment has `HOST_LAUNCH_BACKUP`, the
/// archive's file name); an error unless the command read it all and exited 0.
fn send(snap_dir: &Path, contents: &Contents, command: &str) -> Result<(String, String)> {
    let file_name = archive_name(snap_dir)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .env("HOST_LAUNCH_BACKUP", &file_name)
        .stdin(Stdio::piped())
        .spawn()
        .io_context(|| format!("--to-command: starting `{command}`"))?;
    let stdin = child
        .stdin
        .take()
        .ok_or_else(|| Error::host("--to-command: no stdin to write to"))?;
    let streamed = backup_archive::stream(stdin, contents);
    // The pipe closes here (or on the error), so the command sees the end either way.
    let hex = streamed.map(|(stdin, hex)| {
        drop(stdin);
        hex
    });
    let status = child
        .wait()
        .io_context(|| format!("--to-command: waiting for `{command}`"))?;
    let hex = hex.map_err(|e| {
        Error::host(format!(
            "--to-command: writing the archive to `{command}` failed ({e}); it exited with \
             {status}: check the command on its own, e.g. `... < /dev/null`"
        ))
    })?;
    if !status.success() {
        return Err(Error::host(format!(
            "--to-command: `{command}` exited with {status}; the backup is not stored: check \
             the command (its output is above)"
        )));
    }
    Ok((format!("{file_name} -> `{command}`"), hex))
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
