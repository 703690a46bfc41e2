//! The host's steps of a start, each with the instant it ended, for `state.json` (`host_steps`)
//! and the first-answer benchmark: where a start's host time goes, without a tracer.
//!
//! The clock starts when `start` (or `run`, run by hand) began: `start` hands its start to the
//! launcher it runs in [`START_ENV`], both clocks of one instant, so the launcher's own
//! steps (spec, lock, uid, TAP, nft, disks, jail, UML's exec) sit on the operator's line. The
//! steps are offsets on the monotonic clock; the wall clock at the start places them beside
//! the guest's events (whose `ts_us` is the host's wall clock: UML's clock is the host's).

use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// `WALL_US,MONO_US`: when the `start` that ran this launcher began.
pub const START_ENV: &str = "HOST_LAUNCH_START_CLOCKS";

/// The start's two clocks: microseconds since the Unix epoch and on CLOCK_MONOTONIC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clocks {
    pub wall_us: u64,
    pub mono_us: u64,
}

impl Clocks {
    pub fn now() -> Clocks {
        Clocks {
            wall_us: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(micros)
                .unwrap_or(0),
            mono_us: mono_us(),
        }
    }

    /// The form [`START_ENV`] carries.
    pub fn to_env(self) -> String {
        format!("{},{}", self.wall_us, self.mono_us)
    }

    /// [`START_ENV`]'s value; `None` when it is not two numbers.
    pub fn parse(s: &str) -> Option<Clocks> {
        let (w, m) = s.split_once(',')?;
        Some(Clocks {
            wall_us: w.trim().parse().ok()?,
            mono_us: m.trim().parse().ok()?,
        })
    }

    /// The start this process was run for: [`START_ENV`]'s when it holds one that is not in
    /// this process's future (a value from elsewhere would only skew the figures), else now.
    pub fn of_start() -> Clocks {
        let now = Clocks::now();
        std::env::var(START_ENV)
            .ok()
            .and_then(|s| Clocks::parse(&s))
            .filter(|c| c.mono_us <= now.mono_us)
            .unwrap_or(now)
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// CLOCK_MONOTONIC in microseconds: one clock for every process of the host, so `start`'s
/// instant is comparable with the launcher's.
fn mono_us() -> u64 {
    match nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC) {
        Ok(t) => {
            let s = u64::try_from(t.tv_sec()).unwrap_or(0);
            let ns = u64::try_from(t.tv_nsec()).unwrap_or(0);
            s.saturating_mul(1_000_000).saturating_add(ns / 1000)
        }
        Err(_) => 0,
    }
}

/// One step: its name and when it ended, in microseconds after the start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub step: String,
    pub at_us: u64,
}

/// The steps of one start, as `state.json` keeps them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostSteps {
    /// The start's wall clock, microseconds since the Unix epoch.
    pub start_us: u64,
    pub steps: Vec<Step>,
}

/// Records the steps as they end.
#[derive(Debug)]
pub struct Timeline {
    start: Clocks,
    steps: Vec<Step>,
}

impl Timeline {
    pub fn new(start: Clocks) -> Timeline {
        let mut t = Timeline {
            start,
            steps: Vec::new(),
        };
        t.mark("launcher");
        t
    }

    /// The step `name` ends now.
    pub fn mark(&mut self, name: &str) {
        self.steps.push(Step {
            step: name.to_string(),
            at_us: mono_us().saturating_sub(self.start.mono_us),
        });
    }

    /// How long ago the start was, as [`Instant`]s measure it (for `ready_after_ms` and the
    /// like, which count from the operator's start).
    pub fn elapsed(&self) -> Duration {
        Duration::from_micros(mono_us().saturating_sub(self.start.mono_us))
    }

    /// The [`Instant`] of the start.
    pub fn start_instant(&self) -> Instant {
        Instant::now()
            .checked_sub(self.elapsed())
            .unwrap_or_else(Instant::now)
    }

    pub fn record(&self) -> HostSteps {
        HostSteps {
            start_us: self.start.wall_us,
            steps: self.steps.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks_round_trip_through_the_environment_form() {
        let c = Clocks {
            wall_us: 1_796_000_000_123_456,
            mono_us: 42_000_001,
        };
        assert_eq!(Clocks::parse(&c.to_env()), Some(c));
        assert_eq!(Clocks::parse("12"), None);
        assert_eq!(Clocks::parse("a,1"), None);
    }

    #[test]
    fn steps_are_offsets_from_the_start_in_order() {
        let start = Clocks::now();
        let mut t = Timeline::new(start);
        std::thread::sleep(Duration::from_millis(3));
        t.mark("tap");
        let r = t.record();
        assert_eq!(r.start_us, start.wall_us);
        assert_eq!(r.steps[0].step, "launcher");
        assert_eq!(r.steps[1].step, "tap");
        assert!(r.steps[1].at_us >= 3000, "{r:?}");
        assert!(r.steps[0].at_us <= r.steps[1].at_us);
    }

    #[test]
    fn a_start_in_the_future_is_not_taken() {
        let now = Clocks::now();
        let future = Clocks {
            wall_us: now.wall_us,
            mono_us: now.mono_us + 3_600_000_000,
        };
        // Only this test sets or reads the variable.
        std::env::set_var(START_ENV, future.to_env());
        let got = Clocks::of_start();
        std::env::remove_var(START_ENV);
        assert!(got.mono_us < future.mono_us);
    }
}
