//! uml-runc: an OCI runtime with runc's command line whose containers are User-Mode Linux
//! appliances. The data flows bundle → appliance → contract → encodings → guest:
//! [`bundle`] reads the bundle's config.json; [`service`] turns it (with our images'
//! manifest, which podman passes as an annotation) into an operator's spec and a manifest
//! that `appliance::merge` makes the host contract; [`root`] writes the VM's read-only root
//! from the bundle's root directory with guest-init added; [`net`] joins a TAP device to
//! the container's veth; [`state`] keeps each container's directory; [`commands`] are
//! runc's commands; [`hooks`] runs the bundle's hooks on the host; [`cgroup`] puts the monitor and the VM in the
//! container's cgroup, where containerd's shim reads their figures, and [`freeze`] pauses them; [`ps`] lists its processes; [`sandbox`] keeps a pod's network namespace for its containers; [`monitor`] is the process conmon waits on, which runs the VM jailed by
//! `vmm` and exits with the service's status.

#![deny(missing_debug_implementations)]
#![deny(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_lossless,
    clippy::exit,
    clippy::tests_outside_test_module
)]

pub mod bundle;
pub mod cgroup;
pub mod cli;
pub mod commands;
pub mod error;
pub mod freeze;
pub mod hooks;
pub mod monitor;
pub mod net;
pub mod ps;
pub mod root;
pub mod sandbox;
pub mod service;
pub mod state;
pub mod terminal;
pub mod volume;

pub use error::{Error, Result};
