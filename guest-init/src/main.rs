//! guest-init: PID 1 of a one-service appliance VM. The work is in [`guest_init::boot`].

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

fn main() {
    // First instruction of substance: the clock every status event's `init_us` counts from.
    let started_us = guest_init::status::monotonic_us();
    guest_init::boot::run(started_us)
}
