//! vmm: the one place that starts User-Mode Linux.
//!
//! host-launch, uml-runc and the test harness all boot VMs through one pipeline, so a test VM
//! is jailed and followed exactly like a production one: [`launch`] (a machine, its uid and
//! jail, then the started VM) and [`follow`] (one poll loop over the status channel, the
//! process and the stop [`requests`]; ctrl-alt-del, escalation, the outcome), each caller
//! adding its own through a [`follow::Observer`]. The parts, in the order a start uses them:
//!
//! - [`cmdline`]: the UML kernel command line for a [`cmdline::Machine`] (pure);
//! - [`ids`]: the VM's own uid and gid, from a configurable range;
//! - [`jail`]: what the VM's private root holds and the limits it runs under;
//! - [`spawn`]: clone into new namespaces, build the jail, drop every privilege, exec UML;
//!   the returned [`spawn::Process`] waits for and kills the VM through a pidfd;
//! - [`channel`]: bounded readers and size-capped logs for the console and status channel,
//!   because every byte from a guest is hostile;
//! - [`mconsole`]: UML's management console, reached inside the jail;
//! - [`cpu`]: which core the VM is pinned to;
//! - [`boot`]: telling a kernel that panicked before init from one that ran;
//! - [`kernel`]: which UML kernel to boot;
//! - [`preload`]: the `ptrace` wrapper that lets Debian's dynamically linked kernel run on a
//!   CPU whose XSAVE area it does not fit.

#![deny(missing_debug_implementations)]
#![deny(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_lossless,
    clippy::exit,
    clippy::tests_outside_test_module
)]

pub mod boot;
pub mod channel;
mod child;
pub mod cmdline;
pub mod cpu;
pub mod elf;
pub mod follow;
pub mod ids;
pub mod jail;
pub mod kernel;
pub mod launch;
pub mod mconsole;
pub mod netns;
pub mod preload;
pub mod process;
pub mod requests;
pub mod spawn;
