//! guest-init: PID 1 of a one-service appliance VM.
//!
//! PID 1 must never exit or panic (either makes the kernel panic): every step returns its
//! errors, which are printed before the VM is powered off, and a panic hook powers off too.

use guest_init::{console, load, power};

fn main() {
    std::panic::set_hook(Box::new(|info| {
        console::fatal(&format!("internal error: {info}"));
        power::power_off();
    }));
    if let Err(e) = console::setup() {
        // Printing may still reach a console the kernel opened for us.
        console::fatal(&e);
        power::power_off();
    }
    console::say(concat!("starting, version ", env!("CARGO_PKG_VERSION")));
    match boot() {
        Ok(()) => {}
        Err(lines) => lines.iter().for_each(|l| console::fatal(l)),
    }
    power::power_off()
}

/// The boot steps; an error is the list of lines to print as fatal.
fn boot() -> Result<(), Vec<String>> {
    let cmdline = load::kernel_cmdline().map_err(|e| e.lines())?;
    let loaded = load::load(&cmdline).map_err(|e| e.lines())?;
    console::say(&loaded.summary());
    Ok(())
}
