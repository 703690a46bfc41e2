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

#![deny(missing_debug_implementations)]
#![deny(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_lossless,
    clippy::exit,
    clippy::tests_outside_test_module
)]

pub mod blockdev;
pub mod dns;
pub mod host;
mod kernels;
pub mod launch;
pub mod nspawn;
mod rootfs;
pub mod script_guest;
pub mod snapshot_output;

// The harness's VM, namespace, temp dirs and builds are the `lab` crate's (the conformance
// kit shares them); the tests name them from here, beside the test images' builder.
pub use kernels::bench_kernels;
pub use lab::{
    build_host, build_static, elf_has_interpreter, events, guest_disk, guest_init, kernel_path,
    target_dir, workspace_root, Error, Event, EventLog, NetNs, Result, RunningVm, TempDir, Vm,
    VmOutcome, DEFAULT_KERNEL, MIN_CONFIG_DEVICE, MUSL_TARGET, SETUP_HINT,
};
pub use rootfs::{uml_modules_dir, RootFs, BUSYBOX, IPV6_MODULES, ROOT_UUID};
