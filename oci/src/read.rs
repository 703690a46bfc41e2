//! Opening an OCI image: a layout directory, an `oci-archive` (read in place: the archive's
//! members are located once, then read at their offsets), or an image in podman's local
//! storage (`podman save --format oci-archive` into a scratch file). The index, manifest and
//! config are read bounded and their digests and sizes verified; the platform must be
//! linux/amd64 and the config must carry [`crate::LABEL_MANIFEST`]. Layers are verified as
//! they are read ([`crate::apply`]).

use crate::types::{self, Config, Descriptor, Index, Manifest};
use crate::write::Remove;
use crate::{io, Digest, Error};
use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The most a JSON blob (index, manifest, config) may hold.
pub const MAX_JSON: u64 = 1 << 20;

/// Where an image is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// An OCI image layout directory.
    Layout(PathBuf),
    /// An `oci-archive` file: a tar of a layout.
    Archive(PathBuf),
    /// An image in podman's local storage, by name or id (`podman image save` reads it; the
    /// storage is podman's default, or what `CONTAINERS_STORAGE_CONF` names).
    Storage(String),
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reference::Layout(p) => write!(f, "oci:{}", p.display()),
            Reference::Archive(p) => write!(f, "oci-archive:{}", p.display()),
            Reference::Storage(n) => write!(f, "containers-storage:{n}"),
        }
    }
}

/// Where the blobs are.
#[derive(Debug)]
enum Store {
    Dir(PathBuf),
    /// An archive and its regular members: name → (offset of the data, size).
    Tar(PathBuf, BTreeMap<String, (u64, u64)>),
}

/// An opened, verified image (its layers not read yet).
#[derive(Debug)]
pub struct Image {
    pub reference: Reference,
    pub manifest_digest: Digest,
    pub config_digest: Digest,
    pub config: Config,
    pub layers: Vec<Descriptor>,
    /// The image manifest JSON, from the config's label.
    pub appliance_manifest: String,
    store: Store,
    _scratch: Option<Remove>,
}

/// Opens `r`; an image from podman's storage is saved to a file in `scratch` first (removed
/// when the image is dropped).
pub fn open(r: &Reference, scratch: &Path) -> Result<Image, Error> {
    let (store, guard) = match r {
        Reference::Layout(d) => (Store::Dir(d.clone()), None),
        Reference::Archive(f) => (tar_store(f, r)?, None),
        Reference::Storage(name) => {
            let file = scratch.join(format!(".save-{}.tar", std::process::id()));
            let guard = Remove(file.clone());
            podman_save(name, &file)?;
            (tar_store(&file, r)?, Some(guard))
        }
    };
    let layout = store.small("oci-layout", r).map_err(|e| {
        Error(format!(
            "{r}: not an OCI image layout ({e}); give a directory written by `build-image \
             --oci-layout` or `podman save --format oci-dir`, or an oci-archive"
        ))
    })?;
    let layout: serde_json::Value = parse_json(&layout, r, "oci-layout")?;
    if layout.get("imageLayoutVersion").and_then(|v| v.as_str()) != Some("1.0.0") {
        return Err(Error(format!(
            "{r}: oci-layout: imageLayoutVersion must be \"1.0.0\"; the image uses a layout \
             this reader does not know"
        )));
    }
    let index: Index = parse_json(&store.small("index.json", r)?, r, "index.json")?;
    let desc = pick_manifest(&index, r)?;
    let manifest: Manifest =
        parse_json(&store.blob(desc, r, "the image manifest")?, r, "manifest")?;
    let config_blob = store.blob(&manifest.config, r, "the image config")?;
    let config: Config = parse_json(&config_blob, r, "config")?;
    check_platform(&config, r)?;
    let label = config
        .config
        .labels
        .as_ref()
        .and_then(|l| l.get(crate::LABEL_MANIFEST))
        .cloned()
        .ok_or_else(|| {
            Error(format!(
                "{r}: the image config has no label {} (the appliance's image manifest), so \
                 this is not an appliance image; build it with `build-image --oci-archive`, or \
                 add the label (e.g. `podman build --label {}=\"$(cat IMAGE.manifest.json)\"`)",
                crate::LABEL_MANIFEST,
                crate::LABEL_MANIFEST
            ))
        })?;
    for (i, l) in manifest.layers.iter().enumerate() {
        if !is_layer_type(&l.media_type) {
            return Err(Error(format!(
                "{r}: manifest: layers[{i}]: media type '{}' is not supported; layers must be \
                 tar or tar+gzip",
                l.media_type.escape_debug()
            )));
        }
    }
    if manifest.layers.len() != config.rootfs.diff_ids.len() {
        return Err(Error(format!(
            "{r}: the manifest has {} layers but the config's rootfs.diff_ids {}; the image is \
             corrupt: build or save it again",
            manifest.layers.len(),
            config.rootfs.diff_ids.len()
        )));
    }
    Ok(Image {
        reference: r.clone(),
        manifest_digest: desc.digest.clone(),
        config_digest: manifest.config.digest.clone(),
        config,
        layers: manifest.layers,
        appliance_manifest: label,
        store,
        _scratch: guard,
    })
}

impl Image {
    /// A reader of layer `i`'s blob (unverified: [`crate::apply`] verifies as it reads).
    pub fn layer_reader(&self, i: usize) -> Result<Box<dyn Read + '_>, Error> {
        let d = &self.layers[i];
        self.store
            .reader(&blob_name(&d.digest))
            .map_err(|e| missing(&self.reference, &format!("layers[{i}]"), d, &e))
    }
}

fn is_layer_type(m: &str) -> bool {
    [
        types::MEDIA_LAYER,
        types::MEDIA_LAYER_GZIP,
        types::MEDIA_DOCKER_LAYER_GZIP,
    ]
    .contains(&m)
}

fn check_platform(c: &Config, r: &Reference) -> Result<(), Error> {
    if c.architecture != "amd64" || c.os != "linux" {
        return Err(Error(format!(
            "{r}: the image is for {}/{}; appliances run linux/amd64 (User-Mode Linux on \
             x86-64): build or pull the image for linux/amd64 (e.g. `podman pull --arch amd64`)",
            c.os.escape_debug(),
            c.architecture.escape_debug()
        )));
    }
    Ok(())
}

/// The index's image manifest: the only one, or the one for linux/amd64.
fn pick_manifest<'a>(index: &'a Index, r: &Reference) -> Result<&'a Descriptor, Error> {
    let manifests: Vec<&Descriptor> = index
        .manifests
        .iter()
        .filter(|d| {
            [types::MEDIA_MANIFEST, types::MEDIA_DOCKER_MANIFEST].contains(&d.media_type.as_str())
        })
        .collect();
    match manifests.as_slice() {
        [] => Err(Error(format!(
            "{r}: index.json lists no image manifest; the image is empty or an index of \
             indexes: save one image (`podman save --format oci-archive NAME`)"
        ))),
        [one] => Ok(one),
        many => many
            .iter()
            .find(|d| {
                d.platform
                    .as_ref()
                    .is_some_and(|p| p.architecture == "amd64" && p.os == "linux")
            })
            .copied()
            .ok_or_else(|| {
                Error(format!(
                    "{r}: index.json lists {} images and none for linux/amd64; appliances run \
                     linux/amd64",
                    many.len()
                ))
            }),
    }
}

fn parse_json<T: serde::de::DeserializeOwned>(
    b: &[u8],
    r: &Reference,
    what: &str,
) -> Result<T, Error> {
    serde_json::from_slice(b).map_err(|e| {
        Error(format!(
            "{r}: {what}: not valid ({e}); the image is corrupt: build or save it again"
        ))
    })
}

fn blob_name(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

fn missing(r: &Reference, what: &str, d: &Descriptor, e: &Error) -> Error {
    Error(format!(
        "{r}: {what}: blob {} is missing ({e}); the image is incomplete: build or save it again",
        d.digest
    ))
}

impl Store {
    fn reader(&self, name: &str) -> Result<Box<dyn Read + '_>, Error> {
        match self {
            Store::Dir(d) => {
                let p = d.join(name);
                let f = std::fs::File::open(&p).map_err(io(p.display()))?;
                Ok(Box::new(std::io::BufReader::new(f)))
            }
            Store::Tar(file, members) => {
                let &(offset, size) = members
                    .get(name)
                    .ok_or_else(|| Error(format!("no member {name} in the archive")))?;
                let mut f = std::fs::File::open(file).map_err(io(file.display()))?;
                f.seek(SeekFrom::Start(offset))
                    .map_err(io(file.display()))?;
                Ok(Box::new(std::io::BufReader::new(f).take(size)))
            }
        }
    }

    /// A small file of the layout, at most [`MAX_JSON`] bytes.
    fn small(&self, name: &str, r: &Reference) -> Result<Vec<u8>, Error> {
        let mut v = Vec::new();
        self.reader(name)?
            .take(MAX_JSON + 1)
            .read_to_end(&mut v)
            .map_err(io(format!("{r}: reading {name}")))?;
        if v.len() as u64 > MAX_JSON {
            return Err(Error(format!(
                "{r}: {name} is larger than {MAX_JSON} bytes"
            )));
        }
        Ok(v)
    }

    /// A JSON blob, its size and digest checked against the descriptor.
    fn blob(&self, d: &Descriptor, r: &Reference, what: &str) -> Result<Vec<u8>, Error> {
        if d.size > MAX_JSON {
            return Err(Error(format!(
                "{r}: {what} is larger than {MAX_JSON} bytes"
            )));
        }
        let data = self
            .small(&blob_name(&d.digest), r)
            .map_err(|e| missing(r, what, d, &e))?;
        let got = Digest::of(&data);
        if got != d.digest || data.len() as u64 != d.size {
            return Err(Error(format!(
                "{r}: {what}: digest mismatch: the blob is {got} ({} bytes), its descriptor says \
                 {} ({} bytes); the image is corrupt: build or save it again",
                data.len(),
                d.digest,
                d.size
            )));
        }
        Ok(data)
    }
}

/// Locates the archive's regular members.
fn tar_store(file: &Path, r: &Reference) -> Result<Store, Error> {
    let corrupt = |e: std::io::Error| {
        Error(format!(
            "{r}: not a readable oci-archive ({e}); it is damaged or not a tar: build it again \
             (`build-image --oci-archive`) or save it again (`podman save --format oci-archive`)"
        ))
    };
    let f = std::fs::File::open(file).map_err(io(format!("{r}: cannot open the archive")))?;
    let mut ar = tar::Archive::new(std::io::BufReader::new(f));
    let mut members = BTreeMap::new();
    for e in ar.entries().map_err(corrupt)? {
        let e = e.map_err(corrupt)?;
        if e.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let name = String::from_utf8_lossy(&e.path_bytes())
            .trim_start_matches("./")
            .to_string();
        members.insert(name, (e.raw_file_position(), e.size()));
    }
    if members.is_empty() {
        return Err(corrupt(std::io::Error::other("no files in it")));
    }
    Ok(Store::Tar(file.to_path_buf(), members))
}

/// The podman program: `$HOST_LAUNCH_PODMAN` or `podman` in PATH.
fn podman() -> PathBuf {
    std::env::var_os("HOST_LAUNCH_PODMAN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("podman"))
}

fn podman_save(name: &str, file: &Path) -> Result<(), Error> {
    let out = Command::new(podman())
        .args(["image", "save", "--format", "oci-archive", "-o"])
        .arg(file)
        .arg("--")
        .arg(name)
        .output()
        .map_err(io("running podman image save (is podman installed?)"))?;
    if !out.status.success() {
        return Err(Error(format!(
            "containers-storage:{name}: `podman image save` failed: {}; check the name with \
             `podman images`",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// The config digest (image id) of an image in podman's storage, without saving it.
pub fn storage_id(name: &str) -> Result<Digest, Error> {
    let out = Command::new(podman())
        .args(["image", "inspect", "--format", "{{.Id}}", "--"])
        .arg(name)
        .output()
        .map_err(io("running podman image inspect (is podman installed?)"))?;
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() {
        return Err(Error(format!(
            "containers-storage:{name}: no such image in podman's storage ({}); check the name \
             with `podman images`",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Digest::parse(&format!("sha256:{id}"))
        .map_err(|e| Error(format!("containers-storage:{name}: podman's image id: {e}")))
}
