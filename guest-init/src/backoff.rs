//! Exponential back-off: the one delay schedule shared by the service's restart policy
//! ([`crate::service::restart`]) and the remote log thread's reconnection.

use std::time::Duration;

/// Delays that double after each failure, from `min` up to `max`, back to `min` on
/// [`Backoff::reset`].
///
/// For restarts, [`Backoff::record_run`] decides whether a run was healthy: it counts as
/// healthy, and resets the delay to the minimum, when it lasted at least ten times the last
/// delay (so a service that crashes after a while but restarts cheaply is not throttled), but
/// never less than one second (a service dying every second is crash-looping whatever the
/// minimum) and never more than `max` (a service that ran for the longest delay we would ever
/// impose has earned a fresh start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
    last: Option<Duration>,
}

impl Backoff {
    /// Shortest run that counts as healthy, before the `max` cap.
    pub const HEALTHY_FLOOR: Duration = Duration::from_secs(1);

    /// `min` is at least 1 ms (a zero delay would spin) and `max` at least `min`.
    pub fn new(min: Duration, max: Duration) -> Backoff {
        let min = min.max(Duration::from_millis(1));
        let max = max.max(min);
        Backoff {
            min,
            max,
            next: min,
            last: None,
        }
    }

    /// The delay to wait now; the following one is twice as long, up to the maximum.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = delay.saturating_mul(2).min(self.max);
        self.last = Some(delay);
        delay
    }

    /// Back to the minimum delay.
    pub fn reset(&mut self) {
        self.next = self.min;
        self.last = None;
    }

    /// How long a run must last to count as healthy (see the type's documentation).
    pub fn healthy_after(&self) -> Duration {
        let last = self.last.unwrap_or(self.min);
        last.saturating_mul(10)
            .max(Self::HEALTHY_FLOOR)
            .min(self.max)
    }

    /// Records how long the service ran before it ended; resets the delay if that was long
    /// enough. Returns whether it reset.
    pub fn record_run(&mut self, ran: Duration) -> bool {
        let healthy = ran >= self.healthy_after();
        if healthy {
            self.reset();
        }
        healthy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn doubles_up_to_the_maximum_and_resets() {
        let mut b = Backoff::new(ms(100), ms(1000));
        let got: Vec<_> = (0..5).map(|_| b.next_delay()).collect();
        assert_eq!(got, [ms(100), ms(200), ms(400), ms(800), ms(1000)]);
        b.reset();
        assert_eq!(b.next_delay(), ms(100));
    }

    #[test]
    fn bounds_are_made_sane() {
        let mut b = Backoff::new(Duration::ZERO, Duration::ZERO);
        assert_eq!(b.next_delay(), ms(1));
        let mut b = Backoff::new(ms(50), ms(10));
        assert_eq!(b.next_delay(), ms(50));
        assert_eq!(b.next_delay(), ms(50));
    }
}
