//! What changed between two snapshots of an appliance, per second: CPU share and network
//! bytes, for `top`. A new run (another start time) has no rate until its second snapshot.

use super::sample::Sample;
use std::collections::HashMap;
use std::time::Duration;

/// One appliance's rates over the last interval.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rates {
    /// Host CPU of the VM's processes, percent of one CPU.
    pub cpu_percent: Option<f64>,
    /// Bytes per second to the guest, and from it.
    pub net_in: Option<u64>,
    pub net_out: Option<u64>,
}

/// What a snapshot keeps of each appliance to compare with the next: the run's start and
/// its counters.
#[derive(Debug, Clone, Default)]
pub struct Previous(HashMap<String, Seen>);

/// One appliance as the last snapshot saw it.
#[derive(Debug, Clone, Copy)]
struct Seen {
    started_at_ms: u64,
    cpu_seconds: Option<f64>,
    /// Bytes to the guest and from it.
    net: Option<(u64, u64)>,
}

impl Previous {
    /// Each sample's rates since the last call (`elapsed` ago), then remembers these.
    pub fn rates(&mut self, samples: &[Sample], elapsed: Duration) -> Vec<Rates> {
        let ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        let out = samples
            .iter()
            .map(|s| match self.0.get(&s.name) {
                Some(p) if p.started_at_ms == s.started_at_ms && ms > 0 => rate(p, &seen(s), ms),
                _ => Rates::default(),
            })
            .collect();
        self.0 = samples.iter().map(|s| (s.name.clone(), seen(s))).collect();
        out
    }
}

fn seen(s: &Sample) -> Seen {
    Seen {
        started_at_ms: s.started_at_ms,
        cpu_seconds: s.usage.map(|u| u.cpu_seconds),
        net: s.tap.map(|t| (t.tx_bytes, t.rx_bytes)),
    }
}

/// The rates from `then` to `now`, `ms` apart (not zero).
fn rate(then: &Seen, now: &Seen, ms: u64) -> Rates {
    let per_s = |now: u64, then: u64| now.saturating_sub(then).saturating_mul(1000) / ms;
    let cpu = then.cpu_seconds.zip(now.cpu_seconds);
    let net = then.net.zip(now.net);
    // Milliseconds of an interval fit an f64 exactly.
    #[allow(clippy::cast_precision_loss)]
    let secs = ms as f64 / 1000.0;
    Rates {
        cpu_percent: cpu.map(|(then, now)| ((now - then).max(0.0) / secs) * 100.0),
        net_in: net.map(|(then, now)| per_s(now.0, then.0)),
        net_out: net.map(|(then, now)| per_s(now.1, then.1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::procfs::{Tap, Usage};

    fn sample(started: u64, cpu: f64, tx: u64) -> Sample {
        Sample {
            started_at_ms: started,
            usage: Some(Usage {
                cpu_seconds: cpu,
                ..Default::default()
            }),
            tap: Some(Tap {
                tx_bytes: tx,
                ..Default::default()
            }),
            ..crate::metrics::sample::test_sample("a")
        }
    }

    #[test]
    fn rates_are_per_second_within_one_run() {
        let mut p = Previous::default();
        let two = Duration::from_secs(2);
        assert_eq!(p.rates(&[sample(1, 1.0, 100)], two), [Rates::default()]);
        let r = p.rates(&[sample(1, 1.5, 4100)], two)[0];
        assert_eq!(r.cpu_percent, Some(25.0));
        assert_eq!(r.net_in, Some(2000));
        assert_eq!(r.net_out, Some(0));
        // A new run starts its counters again: no rate, never a negative one.
        assert_eq!(p.rates(&[sample(9, 0.1, 10)], two), [Rates::default()]);
    }
}
