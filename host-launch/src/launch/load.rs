//! Reading a spec file and its image's manifest, resolving paths, merging: everything `check`
//! does, without touching the host.

use crate::error::{Error, Result};
use appliance::manifest::{self, Manifest};
use appliance::merge::{self, Merged};
use appliance::spec::{self, Spec};
use std::path::{Path, PathBuf};

/// Debian's UML kernel, used when nothing names a kernel and the project's is not built (see
/// `vmm::kernel::default_kernel`).
pub const DEFAULT_KERNEL: &str = vmm::kernel::DEBIAN_KERNEL;

/// A spec with everything it refers to, checked.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub spec_path: PathBuf,
    pub spec: Spec,
    pub image: PathBuf,
    pub manifest_path: PathBuf,
    pub manifest: Manifest,
    pub merged: Merged,
    /// The data disks' host files, absolute, in the order of `merged.disks`.
    pub disk_files: Vec<PathBuf>,
    pub kernel: PathBuf,
}

pub use crate::paths::{absolute, resolve};

impl Loaded {
    /// The appliance's network policy (see [`appliance::netpolicy`]); `None` without a network.
    pub fn policy(&self) -> Option<appliance::netpolicy::Policy> {
        let spec = self.spec.network.as_ref()?;
        let checked = contract::checked::check(self.merged.contract.clone()).ok()?;
        appliance::netpolicy::derive(
            &self.spec.name,
            spec,
            &self.manifest,
            checked.network.as_ref()?,
            checked.remote.as_ref(),
        )
    }
}

/// A path as messages show it: control characters (a spec may put them in its paths) escaped.
fn shown(p: &Path) -> String {
    contract::json::printable(&p.to_string_lossy()).into_owned()
}

/// One `FILE: PROBLEM` line each, control characters escaped (problems quote the input).
fn lines(file: &Path, problems: impl IntoIterator<Item = String>) -> String {
    problems
        .into_iter()
        .map(|p| format!("{}: {}", shown(file), contract::json::printable(&p)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Reads and parses the spec file only.
pub fn read_spec(spec_path: &Path) -> Result<Spec> {
    let text = std::fs::read(spec_path)
        .map_err(|e| Error::invalid(format!("{}: cannot read the spec: {e}", shown(spec_path))))?;
    spec::parse(&text).map_err(|p| Error::invalid(lines(spec_path, p)))
}

/// A spec file, read and parsed once per command and handed on as this value.
#[derive(Debug, Clone)]
pub struct SpecFile {
    /// The file, absolute.
    pub path: PathBuf,
    /// Its directory: relative paths in the spec are taken from here.
    pub base: PathBuf,
    pub spec: Spec,
}

impl SpecFile {
    /// Reads and parses the spec file.
    pub fn read(path: &Path) -> Result<SpecFile> {
        let path = absolute(path);
        let spec = read_spec(&path)?;
        let base = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("/"));
        Ok(SpecFile { path, base, spec })
    }

    /// The spec's own image, absolute.
    pub fn image(&self) -> PathBuf {
        resolve(&self.base, &self.spec.image)
    }

    /// The image an earlier `upgrade` put in place of the spec's, while the spec still names
    /// the image it replaced (its record: [`crate::pin`]).
    pub fn pinned_image(&self) -> Option<PathBuf> {
        crate::pin::image_for(&self.spec.name, &self.image())
    }
}

/// The spec's image and manifest, merged. Touches nothing.
pub fn load(file: &SpecFile) -> Result<Loaded> {
    load_with_image(file, None)
}

/// What a launch boots: the spec with `image` in place of its image when given, else with
/// the image an earlier `upgrade` put in place of the spec's ([`SpecFile::pinned_image`]).
pub fn load_for_launch(file: &SpecFile, image: Option<&Path>) -> Result<Loaded> {
    match image {
        Some(i) => load_with_image(file, Some(i)),
        None => load_with_image(file, file.pinned_image().as_deref()),
    }
}

/// The spec (with `image` in place of its image when given), its base directory, the root
/// image, and the image's manifest with its path: the first half of [`load_with_image`].
struct WithManifest {
    spec_path: PathBuf,
    spec: Spec,
    base: PathBuf,
    image: PathBuf,
    manifest_path: PathBuf,
    manifest: Manifest,
}

fn read_with_manifest(file: &SpecFile, image: Option<&Path>) -> Result<WithManifest> {
    let spec_path = file.path.clone();
    let base = file.base.clone();
    let mut spec = file.spec.clone();
    if let Some(i) = image {
        spec.image = absolute(i).to_string_lossy().into_owned();
        spec.manifest = None;
    }
    let (image, manifest_path, text) = match crate::oci_image::root(&spec_path, &base, &spec.image)?
    {
        Some(r) => {
            let m = r.image.with_file_name("manifest.json");
            (r.image, m, r.manifest)
        }
        None => root_file(&spec_path, &base, &spec)?,
    };
    let manifest = manifest::parse(&text)
        .map_err(|p| Error::invalid(lines(&manifest_path, [p.to_string()])))?;
    Ok(WithManifest {
        spec_path,
        spec,
        base,
        image,
        manifest_path,
        manifest,
    })
}

/// The manifest of `image` (or the spec's image) and its path, without checking the spec
/// against it: `upgrade` compares classes before the new image's class inputs are checked.
pub fn manifest_for(file: &SpecFile, image: Option<&Path>) -> Result<(PathBuf, Manifest)> {
    let w = read_with_manifest(file, image)?;
    Ok((w.manifest_path, w.manifest))
}

/// Like [`load`], but boots `image` (its manifest beside it, `<image>.manifest.json`) instead
/// of the spec's image and manifest.
pub fn load_with_image(file: &SpecFile, image: Option<&Path>) -> Result<Loaded> {
    let WithManifest {
        spec_path,
        spec,
        base,
        image,
        manifest_path,
        manifest,
    } = read_with_manifest(file, image)?;
    check_class_inputs(&spec_path, &spec, &manifest)?;
    let merged = merge::merge(&spec, &manifest)
        .map_err(|p| Error::invalid(lines(&spec_path, p.0.iter().map(|p| p.to_string()))))?;
    let disk_files = merged
        .disks
        .iter()
        .map(|d| resolve(&base, &d.file))
        .collect::<Vec<_>>();
    for (d, f) in merged.disks.iter().zip(&disk_files) {
        contract::uml::check_path(&f.to_string_lossy()).map_err(|m| {
            Error::invalid(format!(
                "{}: disks[{}].file: {m}",
                shown(&spec_path),
                d.spec_index
            ))
        })?;
    }
    contract::uml::check_path(&image.to_string_lossy())
        .map_err(|m| Error::invalid(format!("{}: image: {m}", shown(&spec_path))))?;
    let kernel = match &spec.kernel {
        Some(k) => resolve(&base, k),
        None => vmm::kernel::default_kernel(),
    };
    Ok(Loaded {
        spec_path,
        spec,
        image,
        manifest_path,
        manifest,
        merged,
        disk_files,
        kernel,
    })
}

/// An image of a class needs the class's inputs in the spec (`appliance::class`), checked
/// before the merge so that the message names the class's input rather than a contract field.
fn check_class_inputs(spec_path: &Path, spec: &Spec, manifest: &Manifest) -> Result<()> {
    let Some(class) = &manifest.class else {
        return Ok(());
    };
    appliance::class::check_spec_inputs(class, spec)
        .map_err(|p| Error::invalid(lines(spec_path, p.0.iter().map(|p| p.to_string()))))
}

/// A root image file named by the spec, its manifest's path and text.
fn root_file(spec_path: &Path, base: &Path, spec: &Spec) -> Result<(PathBuf, PathBuf, Vec<u8>)> {
    let image = resolve(base, &spec.image);
    match std::fs::metadata(&image) {
        Ok(m) if m.is_file() => {}
        Ok(_) => {
            return Err(Error::invalid(format!(
                "{}: image: {} is not a regular file; give the root image file",
                shown(spec_path),
                shown(&image)
            )))
        }
        Err(e) => {
            return Err(Error::invalid(format!(
                "{}: image: {} cannot be used ({e}); check the path (relative paths are taken \
                 from the spec file's directory)",
                shown(spec_path),
                shown(&image)
            )))
        }
    }
    let manifest_path = match &spec.manifest {
        Some(m) => resolve(base, m),
        None => manifest::path_beside(&image),
    };
    let text = std::fs::read(&manifest_path).map_err(|e| {
        let how = if spec.manifest.is_some() {
            "check the spec's \"manifest\" path"
        } else {
            "the image builder ships it beside the image; or name it with \"manifest\" in the spec"
        };
        Error::invalid(format!(
            "{}: manifest: cannot read {} ({e}); {how}",
            shown(spec_path),
            shown(&manifest_path)
        ))
    })?;
    Ok((image, manifest_path, text))
}
