//! lab: booting User-Mode Linux VMs to check them from outside, for the conformance kit
//! (`conformance`, shipped) and the end-to-end tests (`e2e`).
//!
//! - [`Vm`]: a VM to boot (root image, disks, the contract on the command line or a config
//!   device, network); [`Vm::run`] or [`Vm::spawn`] launch it through `vmm`'s pipeline and
//!   follow it with `vmm`'s loop, recording its console ([`capture`]) and status events
//!   ([`EventLog`]); how it ended is a [`VmOutcome`];
//! - [`NetNs`]: a network namespace of the run's own, with a TAP device;
//! - [`TempDir`]: a temporary directory removed on drop (kept with `E2E_KEEP=1`);
//! - [`kernel_path`]: which UML kernel to boot; [`build_static`] and friends: the workspace's
//!   programs built for a guest or the host.
//!
//! Nothing is skipped: a missing kernel or tool is an error that says to run
//! `scripts/setup`.

#![deny(missing_debug_implementations)]
#![deny(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_lossless,
    clippy::exit,
    clippy::tests_outside_test_module
)]

mod builds;
mod capture;
mod elf;
pub mod error;
pub mod events;
pub mod netns;
mod outcome;
mod tempdir;
mod vm;

pub use builds::{build_host, build_static, guest_init, target_dir, workspace_root, MUSL_TARGET};
pub use elf::elf_has_interpreter;
pub use error::{Error, Result};
pub use events::{Event, EventLog};
pub use netns::NetNs;
pub use tempdir::TempDir;
pub use vm::{
    guest_disk, kernel_path, RunningVm, Vm, VmOutcome, DEFAULT_KERNEL, MIN_CONFIG_DEVICE,
};

use std::path::PathBuf;

/// What to tell a developer whose machine lacks a tool the tests need.
pub const SETUP_HINT: &str = "run scripts/setup (as root) to install user-mode-linux, e2fsprogs \
     and the x86_64-unknown-linux-musl Rust target";

/// A host tool (`ip`, `mkfs.ext4`) from PATH, /usr/sbin or /sbin; an error names it and says
/// how to install it.
pub fn find_tool(name: &str) -> Result<PathBuf> {
    rootfs::ext4::find_tool(name).ok_or_else(|| {
        Error::new(
            format!("looking for {name}"),
            format!("not found in PATH, /usr/sbin or /sbin; {SETUP_HINT}"),
        )
    })
}
