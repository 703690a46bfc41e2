//! guest-init: PID 1 of a one-service appliance.
//!
//! Each module has one job; `main.rs` runs them in boot order.

#![deny(missing_debug_implementations)]
#![deny(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_lossless,
    clippy::exit,
    clippy::tests_outside_test_module
)]
// PID 1 must not panic: no unwrap, expect or panic outside tests (tests may).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod backoff;
pub mod boot;
pub mod console;
pub mod errno;
pub mod figures;
pub mod freeze;
pub mod kmod;
pub mod load;
pub mod log;
pub mod mounts;
pub mod net;
pub mod power;
pub mod quiesce;
pub mod runfs;
pub mod service;
pub mod settings;
pub mod status;
pub mod supervise;
