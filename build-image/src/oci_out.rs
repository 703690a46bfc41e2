//! Writing a built image also as an OCI image (`--oci-layout DIR`, `--oci-archive FILE`): the
//! same plan as the ext4 root, as one reproducible layer, with the manifest in the config's
//! labels (the `oci` crate; format in build-image/README.md, "OCI images").

use crate::recipe::Recipe;
use rootfs::ext4::Entry;
use rootfs::Error;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Where to write the OCI image.
#[derive(Debug, Clone, Default)]
pub struct OciOutput {
    pub layout: Option<PathBuf>,
    pub archive: Option<PathBuf>,
    /// Compress the layer with gzip (default: a plain tar, as podman stores it).
    pub gzip: bool,
}

/// What was written: the image manifest's and the config's digests.
#[derive(Debug, Clone)]
pub struct Written {
    pub manifest: oci::Digest,
    pub config: oci::Digest,
}

/// Writes the recipe's image as an OCI image from the entries of its ext4 root (the build
/// calls this while the staging root those entries name still exists); nothing when no
/// output is named.
pub fn write(
    r: &Recipe,
    entries: &BTreeMap<String, Entry>,
    epoch: u64,
    out: &OciOutput,
) -> Result<Option<Written>, Error> {
    if out.layout.is_none() && out.archive.is_none() {
        return Ok(None);
    }
    let manifest_json = serde_json::to_string(&r.manifest)
        .map_err(|e| Error::one(format!("encoding the manifest: {e}")))?;
    let src = oci::write::Source {
        entries,
        manifest_json,
        contract_version: r.manifest.contract_version,
        entrypoint: r.manifest.service.argv.clone(),
        user: format!("{}:{}", r.manifest.service.uid, r.manifest.service.gid),
        epoch,
        ref_name: format!("{}:latest", r.name),
        gzip: out.gzip,
    };
    let oci_err = |e: oci::Error| Error::one(e.0);
    let img = oci::write::image(&src).map_err(oci_err)?;
    if let Some(dir) = &out.layout {
        oci::write::write_layout(&img, dir).map_err(oci_err)?;
    }
    if let Some(file) = &out.archive {
        oci::write::write_archive(&img, file, epoch).map_err(oci_err)?;
    }
    Ok(Some(Written {
        manifest: img.manifest,
        config: img.config,
    }))
}
