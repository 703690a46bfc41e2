//! Writing an appliance image as an OCI image: one layer (the root as a reproducible tar:
//! sorted entries, one time, the plan's owners and modes, no user or group names; gzip
//! optional), a config for linux/amd64 carrying the image manifest in [`crate::LABEL_MANIFEST`],
//! the image manifest, and `index.json`; as a layout directory and as an `oci-archive` (a tar
//! of that directory), both written through a temporary path and renamed into place.

use crate::types::{self, Config, Descriptor, Index, Manifest, Platform, RootFs, RunConfig};
use crate::{io, Digest, Error};
use rootfs::ext4::{Content, Entry};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// What goes into the image.
#[derive(Debug, Clone)]
pub struct Source<'a> {
    /// The root's entries by absolute image path (every parent listed), as for ext4.
    pub entries: &'a BTreeMap<String, Entry>,
    /// The image manifest, JSON (the appliance crate's format).
    pub manifest_json: String,
    pub contract_version: u32,
    /// The service's argv, shown by other tools as the entrypoint.
    pub entrypoint: Vec<String>,
    /// The service's `uid:gid`, the config's `User`: podman's default `process.user`, so that
    /// `podman run --user` is the one way to change it (uml-runc applies `process.user`).
    pub user: String,
    /// The time of every entry and the config's `created`, seconds since 1970.
    pub epoch: u64,
    /// The name `podman load` gives the image (`org.opencontainers.image.ref.name`).
    pub ref_name: String,
    pub gzip: bool,
}

/// The image's blobs, by digest, and its `index.json`.
#[derive(Debug, Clone)]
pub struct Image {
    pub blobs: BTreeMap<Digest, Vec<u8>>,
    pub index: Vec<u8>,
    pub manifest: Digest,
    pub config: Digest,
}

/// Builds the blobs of the image in memory.
pub fn image(src: &Source) -> Result<Image, Error> {
    let tar = layer_tar(src.entries, src.epoch)?;
    let diff_id = Digest::of(&tar);
    let (layer, media) = if src.gzip {
        (gzip(&tar)?, types::MEDIA_LAYER_GZIP)
    } else {
        (tar, types::MEDIA_LAYER)
    };
    let labels = BTreeMap::from([
        (crate::LABEL_MANIFEST.to_string(), src.manifest_json.clone()),
        (
            crate::LABEL_CONTRACT_VERSION.to_string(),
            src.contract_version.to_string(),
        ),
    ]);
    let config = Config {
        created: Some(rfc3339(src.epoch)),
        architecture: "amd64".into(),
        os: "linux".into(),
        config: RunConfig {
            entrypoint: Some(src.entrypoint.clone()),
            user: Some(src.user.clone()),
            labels: Some(labels),
        },
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids: vec![diff_id],
        },
    };
    let config = json(&config)?;
    let mut blobs = BTreeMap::new();
    let config_d = descriptor(types::MEDIA_CONFIG, &config, &mut blobs);
    let layer_d = descriptor(media, &layer, &mut blobs);
    let manifest = json(&Manifest {
        schema_version: 2,
        media_type: Some(types::MEDIA_MANIFEST.into()),
        config: config_d.clone(),
        layers: vec![layer_d],
        annotations: BTreeMap::from([(
            crate::LABEL_MANIFEST.to_string(),
            src.manifest_json.clone(),
        )]),
    })?;
    let mut manifest_d = descriptor(types::MEDIA_MANIFEST, &manifest, &mut blobs);
    manifest_d.platform = Some(Platform {
        architecture: "amd64".into(),
        os: "linux".into(),
    });
    manifest_d
        .annotations
        .insert(types::ANNOTATION_REF_NAME.into(), src.ref_name.clone());
    let manifest_digest = manifest_d.digest.clone();
    let index = json(&Index {
        schema_version: 2,
        media_type: Some(types::MEDIA_INDEX.into()),
        manifests: vec![manifest_d],
    })?;
    Ok(Image {
        blobs,
        index,
        manifest: manifest_digest,
        config: config_d.digest,
    })
}

fn json<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(v).map_err(|e| Error(format!("encoding JSON: {e}")))
}

fn descriptor(media: &str, blob: &[u8], blobs: &mut BTreeMap<Digest, Vec<u8>>) -> Descriptor {
    let digest = Digest::of(blob);
    blobs.insert(digest.clone(), blob.to_vec());
    Descriptor {
        media_type: media.into(),
        digest,
        size: blob.len() as u64,
        annotations: BTreeMap::new(),
        platform: None,
    }
}

/// gzip with no name and time in its header, so the same tar gives the same bytes.
fn gzip(data: &[u8]) -> Result<Vec<u8>, Error> {
    let mut enc = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::default());
    enc.write_all(data).map_err(io("compressing the layer"))?;
    enc.finish().map_err(io("compressing the layer"))
}

/// The tar of the entries: sorted (a parent before its children), every time `epoch`,
/// numeric owners only, paths relative (`usr/sbin/dnsmasq`).
pub fn layer_tar(entries: &BTreeMap<String, Entry>, epoch: u64) -> Result<Vec<u8>, Error> {
    let mut b = tar::Builder::new(Vec::new());
    b.mode(tar::HeaderMode::Deterministic);
    for (path, e) in entries {
        let rel = path.trim_start_matches('/');
        if rel.is_empty() {
            continue;
        }
        let mut h = tar::Header::new_gnu();
        h.set_mode(e.mode & 0o7777);
        h.set_uid(e.uid.into());
        h.set_gid(e.gid.into());
        h.set_mtime(epoch);
        let what = || format!("adding {path} to the layer");
        match &e.content {
            Content::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                b.append_data(&mut h, format!("{rel}/"), std::io::empty())
                    .map_err(io(what()))?;
            }
            Content::Symlink(t) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                b.append_link(&mut h, rel, t).map_err(io(what()))?;
            }
            Content::Bytes(data) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, rel, &data[..]).map_err(io(what()))?;
            }
            Content::Host(src) => {
                let data = std::fs::read(src).map_err(io(format!("reading {}", src.display())))?;
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, rel, &data[..]).map_err(io(what()))?;
            }
        }
    }
    b.into_inner().map_err(io("finishing the layer"))
}

/// Writes the image as an OCI image layout directory `dir` (replacing it).
pub fn write_layout(img: &Image, dir: &Path) -> Result<(), Error> {
    let partial = sibling(dir, "partial")?;
    let _cleanup = Remove(partial.clone());
    let blobs = partial.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).map_err(io(format!("creating {}", blobs.display())))?;
    for (name, data) in layout_files(img) {
        let p = partial.join(&name);
        std::fs::write(&p, data).map_err(io(format!("writing {}", p.display())))?;
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(io(format!("removing the old {}", dir.display())))?;
    }
    std::fs::rename(&partial, dir).map_err(io(format!("renaming to {}", dir.display())))
}

/// Writes the image as an `oci-archive`: a tar of the layout (replacing `file`).
pub fn write_archive(img: &Image, file: &Path, epoch: u64) -> Result<(), Error> {
    let partial = sibling(file, "partial")?;
    let _cleanup = Remove(partial.clone());
    let out =
        std::fs::File::create(&partial).map_err(io(format!("creating {}", partial.display())))?;
    let mut b = tar::Builder::new(std::io::BufWriter::new(out));
    let header = |kind: tar::EntryType, mode: u32, size: u64| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_mtime(epoch);
        h.set_size(size);
        h
    };
    let what = || format!("writing {}", partial.display());
    for d in ["blobs/", "blobs/sha256/"] {
        let mut h = header(tar::EntryType::Directory, 0o755, 0);
        b.append_data(&mut h, d, std::io::empty())
            .map_err(io(what()))?;
    }
    for (name, data) in layout_files(img) {
        let mut h = header(tar::EntryType::Regular, 0o644, data.len() as u64);
        b.append_data(&mut h, &name, data).map_err(io(what()))?;
    }
    let mut w = b.into_inner().map_err(io(what()))?;
    w.flush().map_err(io(what()))?;
    drop(w);
    std::fs::rename(&partial, file).map_err(io(format!("renaming to {}", file.display())))
}

/// The files of a layout, in a fixed order.
fn layout_files(img: &Image) -> Vec<(String, &[u8])> {
    let mut v: Vec<(String, &[u8])> = vec![
        ("oci-layout".into(), br#"{"imageLayoutVersion":"1.0.0"}"#),
        ("index.json".into(), &img.index),
    ];
    for (d, data) in &img.blobs {
        v.push((format!("blobs/sha256/{}", d.hex()), data));
    }
    v
}

/// `.NAME.WHAT.PID` beside `path`.
fn sibling(path: &Path, what: &str) -> Result<PathBuf, Error> {
    let name = path
        .file_name()
        .ok_or_else(|| Error(format!("{} is not a file path", path.display())))?;
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io(format!("creating {}", parent.display())))?;
    Ok(parent.join(format!(
        ".{}.{what}.{}",
        name.to_string_lossy(),
        std::process::id()
    )))
}

/// Removes a temporary file or directory when dropped (also on errors).
#[derive(Debug)]
pub(crate) struct Remove(pub PathBuf);

impl Drop for Remove {
    fn drop(&mut self) {
        if self.0.is_dir() {
            let _ = std::fs::remove_dir_all(&self.0);
        } else {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` of seconds since 1970 (the civil-from-days algorithm).
fn rfc3339(secs: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
    humantime::format_rfc3339_seconds(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(rootfs::DEFAULT_EPOCH), "2024-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_825_599), "2000-02-29T11:59:59Z");
    }
}
