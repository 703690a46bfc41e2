//! guest-init: PID 1 of a one-service appliance VM. The work is in [`guest_init::boot`].

fn main() {
    // First instruction of substance: the clock every status event's `init_us` counts from.
    let started_us = guest_init::status::monotonic_us();
    guest_init::boot::run(started_us)
}
