//! oci: appliance images as OCI images. [`write`] turns the entries of a root (a
//! [`rootfs::layout::Layout`]'s) and the image manifest into an OCI image layout directory and an
//! `oci-archive` (what `podman load` takes); [`read`] opens a layout, an archive or an image
//! in podman's local storage, verifies every blob's digest, and checks the platform and our
//! labels; [`apply`] unpacks its layers in order with whiteouts into entries; [`cache`] writes
//! those with [`rootfs::ext4::write`] into a read-only ext4 root kept by the image's config
//! digest, so a second start does not build it again.
//!
//! A library only, shared by the image builder and host-launch (uml-runc gets our manifest
//! from the image annotation [`write`] adds, which podman copies into the bundle).
//! Every byte of an image is outside input: sizes are bounded, paths checked, digests
//! verified before anything is used.

#![deny(missing_debug_implementations)]
#![deny(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_lossless,
    clippy::exit,
    clippy::tests_outside_test_module
)]

pub mod apply;
pub mod cache;
pub mod digest;
pub mod read;
pub mod types;
pub mod write;

pub use digest::Digest;

/// The label holding the image manifest (appliance crate's JSON), versioned with the host
/// contract: a guest-init speaking contract v2 would come with `...manifest.v2`.
pub const LABEL_MANIFEST: &str = "org.host-contract.manifest.v1";
/// The label holding the host contract version the image's guest-init speaks (`"1"`).
pub const LABEL_CONTRACT_VERSION: &str = "org.host-contract.contract-version";

/// An error with what went wrong and how to fix it, one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl Error {
    pub fn new(msg: impl Into<String>) -> Error {
        Error(msg.into())
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// An I/O error with what was being done.
pub(crate) fn io(what: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> Error {
    move |e| Error(format!("{what}: {e}"))
}
