//! A spec whose `image` is an OCI image (`oci:DIR`, `oci-archive:FILE`,
//! `containers-storage:NAME`, or a layout directory's plain path; see `appliance::image_ref`): its read-only root comes from the
//! `oci` crate's cache (`$HOST_LAUNCH_CACHE_DIR`, default `/var/cache/host-launch/oci`),
//! built there from the layers on first use, and its manifest from the config's label.

use crate::error::{Error, Result};
use crate::paths::resolve;
use appliance::image_ref::{self, ImageRef};
use oci::read::Reference;
use std::path::Path;

/// The cached root of the spec's OCI image, or `None` when `image` is a root file. Says on
/// stderr whether it was built (and how long that took) or found in the cache.
pub fn root(spec_path: &Path, base: &Path, image: &str) -> Result<Option<oci::cache::Root>> {
    let reference = match image_ref::parse(image) {
        // A directory holding `oci-layout` is a layout, named with or without `oci:`.
        ImageRef::Root(p) if resolve(base, p).join("oci-layout").is_file() => {
            Reference::Layout(resolve(base, p))
        }
        ImageRef::Root(_) => return Ok(None),
        ImageRef::OciLayout(p) => Reference::Layout(resolve(base, p)),
        ImageRef::OciArchive(p) => Reference::Archive(resolve(base, p)),
        ImageRef::Storage(n) => Reference::Storage(n.to_string()),
    };
    let cache = oci::cache::default_dir();
    let r = oci::cache::root(&reference, &cache).map_err(|e| {
        let spec = contract::json::printable(&spec_path.to_string_lossy()).into_owned();
        Error::invalid(format!(
            "{spec}: image: {}",
            contract::json::printable(&e.0)
        ))
    })?;
    match r.built {
        Some(t) => eprintln!(
            "host-launch: {reference}: built the root {} in {} ms",
            r.image.display(),
            t.as_millis()
        ),
        None => eprintln!(
            "host-launch: {reference}: the root {} is in the cache",
            r.image.display()
        ),
    }
    Ok(Some(r))
}
