//! The restart policy: how a run ended, whether to restart, and the delay before it.

use crate::backoff::Backoff;
use contract::{Restart, RestartPolicy};
use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;
use std::fmt;
use std::time::Duration;

/// How a service process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    /// It called exit with this code.
    Exited(i32),
    /// It was killed by this signal number (a number, since real-time signals have no
    /// `Signal` variant).
    Signaled(i32),
}

impl ExitKind {
    /// The end of a process from a wait status; `None` for stops and continues.
    pub fn from_wait_status(status: WaitStatus) -> Option<ExitKind> {
        match status {
            WaitStatus::Exited(_, code) => Some(ExitKind::Exited(code)),
            WaitStatus::Signaled(_, sig, _) => Some(ExitKind::Signaled(sig as i32)),
            _ => None,
        }
    }

    /// Did it end well (exit code 0)?
    pub fn success(self) -> bool {
        self == ExitKind::Exited(0)
    }
}

impl fmt::Display for ExitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitKind::Exited(code) => write!(f, "exited with code {code}"),
            ExitKind::Signaled(sig) => match Signal::try_from(*sig) {
                Ok(s) => write!(f, "killed by {s}"),
                Err(_) => write!(f, "killed by signal {sig}"),
            },
        }
    }
}

/// Whether the policy restarts a service that ended this way. A death by any signal is a
/// failure; when guest-init itself stopped the service (shutdown) the supervisor does not
/// ask this question at all.
pub fn should_restart(policy: RestartPolicy, status: ExitKind) -> bool {
    match policy {
        RestartPolicy::Never => false,
        RestartPolicy::OnFailure => !status.success(),
        RestartPolicy::Always => true,
    }
}

/// Delay before restarting, doubling after each quick failure: the shared [`Backoff`] with
/// the contract's bounds; what counts as a healthy run is documented there.
impl Backoff {
    /// The restart back-off of the contract's `restart` bounds.
    pub fn for_restart(restart: &Restart) -> Backoff {
        // Validation guarantees 1 <= min <= max; `Backoff::new` is safe anyway.
        Backoff::new(
            Duration::from_millis(restart.backoff_min_ms),
            Duration::from_millis(restart.backoff_max_ms),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::unistd::Pid;

    fn restart(policy: RestartPolicy, min: u64, max: u64) -> Restart {
        Restart {
            policy,
            backoff_min_ms: min,
            backoff_max_ms: max,
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let mut b = Backoff::for_restart(&restart(RestartPolicy::Always, 100, 1000));
        let got: Vec<_> = (0..7).map(|_| b.next_delay()).collect();
        assert_eq!(got, [100, 200, 400, 800, 1000, 1000, 1000].map(ms));
    }

    #[test]
    fn backoff_reset_goes_back_to_the_minimum() {
        let mut b = Backoff::for_restart(&restart(RestartPolicy::Always, 100, 1000));
        b.next_delay();
        b.next_delay();
        b.reset();
        assert_eq!(b.next_delay(), ms(100));
    }

    #[test]
    fn a_long_run_resets_a_short_one_does_not() {
        let mut b = Backoff::for_restart(&restart(RestartPolicy::Always, 100, 30_000));
        for _ in 0..4 {
            b.next_delay(); // 100, 200, 400, 800
        }
        // 10 × 800 ms = 8 s is the bar.
        assert_eq!(b.healthy_after(), ms(8_000));
        assert!(!b.record_run(ms(7_999)));
        assert_eq!(b.next_delay(), ms(1_600));
        assert!(b.record_run(ms(16_000)));
        assert_eq!(b.next_delay(), ms(100));
    }

    #[test]
    fn healthy_bar_has_a_floor_and_a_ceiling() {
        let mut b = Backoff::for_restart(&restart(RestartPolicy::Always, 10, 30_000));
        b.next_delay();
        assert_eq!(b.healthy_after(), Backoff::HEALTHY_FLOOR);
        for _ in 0..20 {
            b.next_delay();
        }
        assert_eq!(b.healthy_after(), ms(30_000));
        // A max below the floor wins over the floor.
        let b = Backoff::for_restart(&restart(RestartPolicy::Always, 10, 500));
        assert_eq!(b.healthy_after(), ms(500));
    }

    #[test]
    fn backoff_survives_nonsense_bounds() {
        let mut b = Backoff::for_restart(&restart(RestartPolicy::Always, 0, 0));
        assert_eq!(b.next_delay(), ms(1));
        let mut b = Backoff::for_restart(&restart(RestartPolicy::Always, u64::MAX, 5));
        b.next_delay();
        b.next_delay();
        let mut b = Backoff::for_restart(&restart(RestartPolicy::Always, 1, u64::MAX));
        for _ in 0..200 {
            b.next_delay();
        }
    }

    #[test]
    fn restart_policies() {
        use ExitKind::*;
        use RestartPolicy::*;
        let cases = [
            (Never, Exited(0), false),
            (Never, Exited(1), false),
            (Never, Signaled(9), false),
            (OnFailure, Exited(0), false),
            (OnFailure, Exited(3), true),
            (OnFailure, Signaled(15), true),
            (Always, Exited(0), true),
            (Always, Signaled(11), true),
        ];
        for (policy, status, want) in cases {
            assert_eq!(
                should_restart(policy, status),
                want,
                "{policy:?} {status:?}"
            );
        }
    }

    #[test]
    fn exit_kind_from_wait_status() {
        let pid = Pid::from_raw(1);
        assert_eq!(
            ExitKind::from_wait_status(WaitStatus::Exited(pid, 2)),
            Some(ExitKind::Exited(2))
        );
        assert_eq!(
            ExitKind::from_wait_status(WaitStatus::Signaled(pid, Signal::SIGKILL, false)),
            Some(ExitKind::Signaled(9))
        );
        assert_eq!(ExitKind::from_wait_status(WaitStatus::StillAlive), None);
        assert_eq!(ExitKind::Signaled(9).to_string(), "killed by SIGKILL");
        assert_eq!(ExitKind::Signaled(40).to_string(), "killed by signal 40");
    }
}
