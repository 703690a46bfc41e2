//! build-image: builds read-only ext4 root images for one-service appliances.
//!
//! A [`recipe`] names the service's programs and the Debian packages they come from, plugins
//! loaded with `dlopen`, config files, accounts and the image [manifest](appliance::manifest).
//! [`build`] fetches the packages from Debian's archive as its [`lock`] says ([`archive`]),
//! unpacks them into a staging root ([`stage`]), checks it all, copies each program with its
//! shared-library closure (the `rootfs` crate: found from the ELF dynamic sections) from that root, adds
//! guest-init as `/sbin/init`, the [`sbom`] and dpkg status entries, and writes a
//! reproducible image with `rootfs::ext4` (`mkfs.ext4 -d`) plus `<image>.manifest.json` and
//! `<image>.spdx.json` beside it, and with a key its [signature](sign);
//! [`oci_out`] also writes it as an OCI image (layout directory and `oci-archive`).

#![deny(missing_debug_implementations)]
#![deny(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_lossless,
    clippy::exit,
    clippy::tests_outside_test_module
)]

pub mod archive;
pub mod build;
pub mod changes;
pub mod cli;
pub mod lock;
pub mod oci_out;
pub mod outdated;
pub mod recipe;
pub mod sbom;
pub mod sign;
pub mod stage;

pub use build::{build, contents, Built, Contents, Error, Options};
pub use recipe::{parse, Recipe};
pub use rootfs::{build_guest_init, default_guest_init, workspace_root};
