//! End-to-end test harness: builds static guest binaries, root images and boots them as
//! User-Mode Linux VMs, returning what the console showed.
//!
//! ```no_run
//! use e2e::{RootFs, TempDir, Vm};
//!
//! let dir = TempDir::new("example")?;
//! let image = dir.path().join("root.img");
//! RootFs::new().bytes("/etc/motd", b"hi\n", 0o644).build(&image)?;
//! let contract = contract::parse_json(br#"{"version":1,"hostname":"a","service":{"argv":["/bin/x"]}}"#)?;
//! let outcome = Vm::new(&image).contract_cmdline(&contract).run()?;
//! outcome.assert_clean_poweroff();
//! assert!(outcome.console.contains("contract loaded: hostname=a"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Nothing is skipped: a missing kernel or `mkfs.ext4` is an error that says to run
//! `scripts/setup`.

mod builds;
mod capture;
pub mod dns;
mod elf;
mod error;
pub mod events;
pub mod host;
mod kernels;
pub mod launch;
pub mod netns;
pub mod nspawn;
mod outcome;
mod rootfs;
mod tempdir;
mod vm;

pub use builds::{build_host, build_static, guest_init, target_dir, workspace_root, MUSL_TARGET};
pub use elf::elf_has_interpreter;
pub use error::{Error, Result};
pub use events::{Event, EventLog};
pub use kernels::bench_kernels;
pub use netns::NetNs;
pub use rootfs::{uml_modules_dir, RootFs, BUSYBOX, IPV6_MODULES, ROOT_UUID};
pub use tempdir::TempDir;
pub use vm::{
    guest_disk, kernel_path, RunningVm, Vm, VmOutcome, DEFAULT_KERNEL, MIN_CONFIG_DEVICE,
};

/// What to tell a developer whose machine lacks a tool the tests need.
pub const SETUP_HINT: &str = "run scripts/setup (as root) to install user-mode-linux, e2fsprogs \
     and the x86_64-unknown-linux-musl Rust target";
