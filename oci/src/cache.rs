//! The cache of roots built from OCI images: `CACHE/<hex of the config digest>/` holds
//! `root.img` (the read-only ext4 root) and `manifest.json` (the image manifest from the
//! config's label). Keyed by the config digest (the image id): the config names every layer
//! by the digest of its uncompressed tar, so the key fixes the root's content whatever the
//! compression or the archive it came in, and podman's image id finds an entry without saving
//! the image. An entry is built in `CACHE/.build-<hex>.<pid>/` and renamed into place, so it
//! is there whole or not at all; a failed build leaves nothing.

use crate::read::{self, Reference};
use crate::write::Remove;
use crate::{apply, io, Digest, Error};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where host-launch keeps the roots unless `$HOST_LAUNCH_CACHE_DIR` says otherwise.
pub const DEFAULT_CACHE_DIR: &str = "/var/cache/host-launch/oci";
pub const CACHE_DIR_ENV: &str = "HOST_LAUNCH_CACHE_DIR";

/// `$HOST_LAUNCH_CACHE_DIR`, else [`DEFAULT_CACHE_DIR`].
pub fn default_dir() -> PathBuf {
    std::env::var_os(CACHE_DIR_ENV)
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CACHE_DIR))
}

/// A root ready to boot.
#[derive(Debug, Clone)]
pub struct Root {
    /// The ext4 root image.
    pub image: PathBuf,
    /// The image manifest JSON (not parsed here: that is the appliance crate's job).
    pub manifest: Vec<u8>,
    pub config: Digest,
    /// How long building it took; `None` when it was in the cache.
    pub built: Option<Duration>,
}

/// The root of image `r`, from the cache or built into it.
pub fn root(r: &Reference, cache: &Path) -> Result<Root, Error> {
    std::fs::create_dir_all(cache)
        .map_err(io(format!("creating the cache {}", cache.display())))?;
    if let Reference::Storage(name) = r {
        if let Some(hit) = cached(cache, &read::storage_id(name)?)? {
            return Ok(hit);
        }
    }
    let img = read::open(r, cache)?;
    if let Some(hit) = cached(cache, &img.config_digest)? {
        return Ok(hit);
    }
    let start = Instant::now();
    let entries = apply::layers(&img)?;
    let hex = img.config_digest.hex();
    let tmp = cache.join(format!(".build-{hex}.{}", std::process::id()));
    let guard = Remove(tmp.clone());
    std::fs::create_dir(&tmp).map_err(io(format!("creating {}", tmp.display())))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))
        .map_err(io(format!("chmod {}", tmp.display())))?;
    let fs = rootfs::ext4::Filesystem {
        label: format!("oci-{}", &hex[..12]),
        uuid: uuid_of(hex),
        epoch: rootfs::DEFAULT_EPOCH,
        spare_kib: 0,
    };
    rootfs::ext4::write(&entries, &tmp.join("root.img"), &fs)
        .map_err(|e| Error(format!("{r}: writing the root: {}", e.0.join("; "))))?;
    let m = tmp.join("manifest.json");
    std::fs::write(&m, img.appliance_manifest.as_bytes()).map_err(io(m.display()))?;
    let dest = cache.join(hex);
    if let Err(e) = std::fs::rename(&tmp, &dest) {
        // Another start built it meanwhile: use that one.
        if cached(cache, &img.config_digest)?.is_none() {
            return Err(Error(format!("renaming to {}: {e}", dest.display())));
        }
    }
    drop(guard);
    let mut root = cached(cache, &img.config_digest)?
        .ok_or_else(|| Error(format!("{} vanished from the cache", dest.display())))?;
    root.built = Some(start.elapsed());
    Ok(root)
}

/// The cached root of `config`, if there.
fn cached(cache: &Path, config: &Digest) -> Result<Option<Root>, Error> {
    let dir = cache.join(config.hex());
    let image = dir.join("root.img");
    let m = dir.join("manifest.json");
    if !image.is_file() || !m.is_file() {
        return Ok(None);
    }
    let manifest = std::fs::read(&m).map_err(io(m.display()))?;
    Ok(Some(Root {
        image,
        manifest,
        config: config.clone(),
        built: None,
    }))
}

/// A UUID made of the digest's first 32 hex digits, so the same image gives the same root.
fn uuid_of(hex: &str) -> String {
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}
