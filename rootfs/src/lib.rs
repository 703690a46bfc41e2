//! rootfs: the pieces of an appliance's read-only root image that the image builder and the
//! test harness share: the ELF reader ([`elf`]), the shared-library [`closure`] of programs,
//! the [`layout`] of entries by image path, its reproducible ext4 writer ([`ext4`]), and the
//! static guest-init every image holds as `/sbin/init` ([`guest_init`]), and where the
//! installed programs find the project's files ([`installed`]). The `vmm` crate uses
//! the closure to find what a dynamically linked UML kernel needs in its jail.
//!
//! A library only: the image builder's command line lives in `build-image/`, and nothing here
//! links a binary crate.

#![deny(missing_debug_implementations)]
#![deny(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_lossless,
    clippy::exit,
    clippy::tests_outside_test_module
)]

pub mod closure;
pub mod elf;
pub mod error;
pub mod ext4;
pub mod guest_init;
pub mod installed;
pub mod layout;

pub use error::Error;
pub use guest_init::{
    build_guest_init, default_guest_init, target_dir, workspace_root, MUSL_TARGET,
};

/// Where Debian's user-mode-linux package keeps the kernel's modules.
pub const UML_MODULES: &str = "/usr/lib/uml/modules";
/// The modules IPv6 needs, relative to the modules directory of one kernel release.
pub const IPV6_MODULES: &[&str] = &["kernel/net/ipv6/ipv6.ko", "kernel/lib/crc-ccitt.ko"];
/// The image time when neither `--epoch` nor `SOURCE_DATE_EPOCH` says otherwise
/// (2024-01-01T00:00:00Z).
pub const DEFAULT_EPOCH: u64 = 1_704_067_200;
