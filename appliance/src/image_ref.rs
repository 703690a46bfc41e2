//! What a spec's `image` names: a root image file, or an OCI image (`oci:DIR` a layout
//! directory, `oci-archive:FILE`, `containers-storage:NAME` an image in podman's local
//! storage), whose root host-launch builds from the layers (the `oci` crate). Pure: the path
//! is neither resolved nor read here.

/// The kinds of `image`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageRef<'a> {
    /// A read-only ext4 root image file, its manifest beside it.
    Root(&'a str),
    OciLayout(&'a str),
    OciArchive(&'a str),
    Storage(&'a str),
}

pub const OCI_LAYOUT: &str = "oci:";
pub const OCI_ARCHIVE: &str = "oci-archive:";
pub const STORAGE: &str = "containers-storage:";

/// Splits `image` by its transport prefix; without one it is a root image file.
pub fn parse(image: &str) -> ImageRef<'_> {
    if let Some(p) = image.strip_prefix(OCI_LAYOUT) {
        ImageRef::OciLayout(p)
    } else if let Some(p) = image.strip_prefix(OCI_ARCHIVE) {
        ImageRef::OciArchive(p)
    } else if let Some(n) = image.strip_prefix(STORAGE) {
        ImageRef::Storage(n)
    } else {
        ImageRef::Root(image)
    }
}

/// Checks `image`: a root file must suit the UML command line; an OCI reference needs a
/// non-empty path or name (its root, in host-launch's cache, is what UML opens).
pub fn check(image: &str) -> Result<(), ImageRefError> {
    match parse(image) {
        ImageRef::Root(p) => Ok(contract::uml::check_path(p)?),
        ImageRef::OciLayout(p) | ImageRef::OciArchive(p) | ImageRef::Storage(p)
            if p.is_empty() || p.contains(['\0', '\n']) =>
        {
            Err(ImageRefError::NoOciImage(image.escape_debug().to_string()))
        }
        _ => Ok(()),
    }
}

/// Why a spec's `image` cannot be booted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageRefError {
    /// A root image UML's command line cannot carry.
    #[error(transparent)]
    Path(#[from] contract::uml::PathError),
    /// The reference as given, escaped for messages.
    #[error(
        "'{0}' names no OCI image; give e.g. 'oci-archive:build/dns.oci.tar', \
         'oci:build/dns.oci' or 'containers-storage:localhost/dns:latest'"
    )]
    NoOciImage(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        assert_eq!(parse("a.img"), ImageRef::Root("a.img"));
        assert_eq!(parse("oci:d"), ImageRef::OciLayout("d"));
        assert_eq!(parse("oci-archive:/x.tar"), ImageRef::OciArchive("/x.tar"));
        assert_eq!(
            parse("containers-storage:localhost/dns:latest"),
            ImageRef::Storage("localhost/dns:latest")
        );
        assert!(check("oci-archive:").is_err());
        assert!(check("containers-storage:localhost/dns:latest").is_ok());
        assert!(check("a:b.img").is_err());
    }
}
