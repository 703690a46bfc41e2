//! image-builder: builds read-only ext4 root images for one-service appliances.
//!
//! A [`recipe`] names the service's programs and the Debian packages they come from, plugins
//! loaded with `dlopen`, config files, accounts and the image [manifest](appliance::manifest).
//! [`build`] checks it all, copies each program with its shared-library closure (the
//! `rootfs` crate: found from the ELF dynamic sections), adds guest-init as `/sbin/init`, and writes a
//! reproducible image with `rootfs::ext4` (`mkfs.ext4 -d`) plus `<image>.manifest.json` beside it;
//! [`oci_out`] also writes it as an OCI image (layout directory and `oci-archive`).

pub mod build;
pub mod oci_out;
pub mod recipe;

pub use build::{build, plan, Built, Error, Options};
pub use recipe::{parse, Recipe};
pub use rootfs::{build_guest_init, workspace_root};
