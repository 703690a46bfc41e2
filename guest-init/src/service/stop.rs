//! The stop signal of the service: the contract's typed signal as nix's.

use contract::names::Signal as StopSignal;
use nix::sys::signal::Signal;

/// The signal that asks the service to stop. Every signal a contract may name has its own
/// arm, so there is no fallback.
pub fn stop_signal(s: StopSignal) -> Signal {
    match s {
        StopSignal::Hup => Signal::SIGHUP,
        StopSignal::Int => Signal::SIGINT,
        StopSignal::Quit => Signal::SIGQUIT,
        StopSignal::Kill => Signal::SIGKILL,
        StopSignal::Usr1 => Signal::SIGUSR1,
        StopSignal::Usr2 => Signal::SIGUSR2,
        StopSignal::Alrm => Signal::SIGALRM,
        StopSignal::Term => Signal::SIGTERM,
        StopSignal::Winch => Signal::SIGWINCH,
        StopSignal::Pwr => Signal::SIGPWR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use contract::names::SIGNALS;

    #[test]
    fn every_contract_signal_is_the_same_signal_to_nix() {
        for (name, number) in SIGNALS {
            let s = StopSignal::from_name(name).unwrap();
            assert_eq!(stop_signal(s) as i32, *number, "{name}");
            assert_eq!(stop_signal(s).as_str(), *name);
        }
    }
}
