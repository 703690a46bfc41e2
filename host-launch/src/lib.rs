//! host-launch: runs one-service appliances as User-Mode Linux VMs.
//!
//! The operator writes a spec; the image builder ships a manifest beside the image; the
//! `appliance` crate parses both and merges them into a host contract. `load` reads and
//! checks them from files (and follows `upgrade`'s pin record, `pin`; an OCI image's root and
//! manifest come from `oci_image`), `disks`, `tap` and
//! `state` prepare the host, `vm` describes the VM (command line, uid, jail) for the `vmm`
//! crate that starts it, `run` boots and supervises the VM (`saver`: when its `state.json` is written), and `exit` maps how it ended to
//! the launcher's exit status. `cmd` holds one file per subcommand over `lifecycle`;
//! `upgrade` replaces an appliance's image on the same data disks, rolling back when the new
//! one fails. `trust` checks an image's signature against the host's policy before each boot;
//! `timeline` records the host's steps of a start.

#![deny(missing_debug_implementations)]
#![deny(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_lossless,
    clippy::exit,
    clippy::tests_outside_test_module
)]

pub mod backup_archive;
pub mod cli;
pub mod cmd;
pub mod disk_copy;
pub mod error;
pub mod events;
pub mod exit;
pub mod identity_cache;
pub mod kernel_version;
pub mod launch;
pub mod lifecycle;
pub mod metrics;
pub mod notify;
pub mod oci_image;
pub mod output;
pub mod paths;
pub mod pin;
pub mod privs;
pub mod rollout;
pub mod saver;
pub mod stamped;
pub mod state;
pub mod systemd;
pub mod tail;
pub mod timeline;
pub mod trust;

pub use error::{Error, Kind, Result};
