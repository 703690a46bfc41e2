//! Ending the VM: flush file systems and power off. Under User-Mode Linux a power-off makes
//! the `linux` process on the host exit.

use nix::sys::reboot::{reboot, RebootMode};

/// Syncs file systems and powers the VM off. Never returns: if the power-off call fails, the
/// failure is printed and PID 1 sleeps forever (PID 1 must not exit, or the kernel panics).
pub fn power_off() -> ! {
    ::log::info!("powering off");
    nix::unistd::sync();
    match reboot(RebootMode::RB_POWER_OFF) {
        Ok(never) => match never {},
        Err(e) => ::log::error!("power off failed: {e}; halting here"),
    }
    halt_forever()
}

/// Sleeps forever without using CPU.
pub fn halt_forever() -> ! {
    loop {
        // SAFETY: pause(2) has no preconditions; it returns only when a signal is caught.
        unsafe {
            libc::pause();
        }
    }
}
