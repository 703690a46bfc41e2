//! The samples in the Prometheus text format (0.0.4, which node_exporter's textfile collector
//! and every Prometheus read), encoded by the `prometheus-client` crate. The names and labels
//! are the stable interface documented in host-launch/README.md ("Metrics").

use super::sample::Sample;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// `Content-Type` of [`encode`]'s text.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Every series' labels: which appliance, on which image, class and kernel.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Labels {
    appliance: String,
    class: String,
    digest: String,
    kernel: String,
}

/// `appliance_state`'s: the labels and one of [`STATES`].
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    #[prometheus(flatten)]
    labels: Labels,
    state: String,
}

/// The values `appliance_state` has a series for (1 for the current one, 0 for the rest).
const STATES: [&str; 7] = [
    "starting", "booting", "ready", "stopping", "exited", "dead", "unknown",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Gauge,
    Counter,
}

/// A metric: its name (a counter's without `_total`, which the encoder adds), help, kind,
/// and its value in a sample (none: no series for that appliance).
type Metric = (&'static str, &'static str, Kind, fn(&Sample) -> Option<f64>);

#[allow(clippy::cast_precision_loss)] // counts and bytes far below 2^53
fn n(v: u64) -> f64 {
    v as f64
}

const METRICS: &[Metric] = &[
    (
        "up",
        "1 while a launcher runs the appliance.",
        Kind::Gauge,
        |s| Some(f64::from(u8::from(s.running))),
    ),
    ("ready", "1 while the service is ready.", Kind::Gauge, |s| {
        Some(f64::from(u8::from(s.ready)))
    }),
    (
        "start_time_seconds",
        "When the launcher started this run, seconds since the epoch.",
        Kind::Gauge,
        |s| Some(n(s.started_at_ms) / 1000.0),
    ),
    (
        "boot_seconds",
        "From the start to guest-init's first status event.",
        Kind::Gauge,
        |s| s.booted_after_ms.map(|m| n(m) / 1000.0),
    ),
    (
        "ready_seconds",
        "From the start to the service's readiness.",
        Kind::Gauge,
        |s| s.ready_after_ms.map(|m| n(m) / 1000.0),
    ),
    (
        "exit_code",
        "The launcher's exit status for the VM's end (after it ended).",
        Kind::Gauge,
        |s| s.exit_code.map(f64::from),
    ),
    ("processes", "The VM's host processes.", Kind::Gauge, |s| {
        s.usage.map(|u| n(u.processes))
    }),
    (
        "cpu_seconds",
        "Host CPU (user and system) of the VM's processes this run.",
        Kind::Counter,
        |s| s.usage.map(|u| u.cpu_seconds),
    ),
    (
        "memory_bytes",
        "Host memory of the VM's processes (PSS: shared pages counted once).",
        Kind::Gauge,
        |s| s.usage.map(|u| n(u.memory_bytes)),
    ),
    (
        "disk_read_bytes",
        "Bytes the VM's processes read from the host's storage layer.",
        Kind::Counter,
        |s| s.usage.map(|u| n(u.disk_read_bytes)),
    ),
    (
        "disk_written_bytes",
        "Bytes the VM's processes wrote to the host's storage layer.",
        Kind::Counter,
        |s| s.usage.map(|u| n(u.disk_written_bytes)),
    ),
    (
        "network_receive_bytes",
        "Bytes the host sent to the guest on its TAP device.",
        Kind::Counter,
        |s| s.tap.map(|t| n(t.tx_bytes)),
    ),
    (
        "network_receive_packets",
        "Frames the host sent to the guest on its TAP device.",
        Kind::Counter,
        |s| s.tap.map(|t| n(t.tx_packets)),
    ),
    (
        "network_receive_dropped",
        "Frames to the guest the TAP device dropped.",
        Kind::Counter,
        |s| s.tap.map(|t| n(t.tx_dropped)),
    ),
    (
        "network_transmit_bytes",
        "Bytes the guest sent on its TAP device.",
        Kind::Counter,
        |s| s.tap.map(|t| n(t.rx_bytes)),
    ),
    (
        "network_transmit_packets",
        "Frames the guest sent on its TAP device.",
        Kind::Counter,
        |s| s.tap.map(|t| n(t.rx_packets)),
    ),
    (
        "network_transmit_dropped",
        "Frames from the guest the TAP device dropped.",
        Kind::Counter,
        |s| s.tap.map(|t| n(t.rx_dropped)),
    ),
    (
        "service_restarts",
        "Restarts of the service this run (restarting events).",
        Kind::Counter,
        |s| Some(n(s.service.restarts)),
    ),
    (
        "service_exits",
        "Exits of the service this run (exited events).",
        Kind::Counter,
        |s| Some(n(s.service.exits)),
    ),
    (
        "service_oom_kills",
        "Exits of the service by the guest's OOM killer this run (exited events with oom).",
        Kind::Counter,
        |s| Some(n(s.service.oom_kills)),
    ),
    (
        "service_last_exit_code",
        "The service's last exit code, or 128 + the signal that ended it.",
        Kind::Gauge,
        |s| s.service.last_exit_code.map(f64::from),
    ),
    (
        "liveness_failures",
        "Failed liveness checks this run (liveness_failed events).",
        Kind::Counter,
        |s| Some(n(s.service.liveness_failures)),
    ),
    (
        "guest_memory_total_bytes",
        "The guest's MemTotal, as its last figures event said (clamped).",
        Kind::Gauge,
        |s| s.guest?.mem_total_kb.map(|k| n(k.saturating_mul(1024))),
    ),
    (
        "guest_memory_available_bytes",
        "The guest's MemAvailable, as its last figures event said (clamped).",
        Kind::Gauge,
        |s| s.guest?.mem_available_kb.map(|k| n(k.saturating_mul(1024))),
    ),
    (
        "guest_load1",
        "The guest's 1-minute load average, as its last figures event said (clamped).",
        Kind::Gauge,
        |s| s.guest?.load1,
    ),
    (
        "guest_uptime_seconds",
        "The guest kernel's uptime, as its last figures event said (clamped).",
        Kind::Gauge,
        |s| s.guest?.uptime_s,
    ),
    (
        "dropped_console_bytes",
        "Console bytes rotated out of console.log.",
        Kind::Counter,
        |s| Some(n(s.dropped.console_bytes)),
    ),
    (
        "dropped_event_bytes",
        "Event log bytes rotated out of events.jsonl.",
        Kind::Counter,
        |s| Some(n(s.dropped.events_bytes)),
    ),
    (
        "dropped_status_lines",
        "Status lines from the guest over the length bound, not read.",
        Kind::Counter,
        |s| Some(n(s.dropped.status_lines)),
    ),
];

/// The text of `samples`: every metric of every appliance, prefixed `appliance_`.
pub fn encode(samples: &[Sample]) -> String {
    let mut registry = Registry::with_prefix("appliance");
    let state = Family::<StateLabels, Gauge>::default();
    registry.register(
        "state",
        "1 for the appliance's current state, 0 for the others.",
        state.clone(),
    );
    let families: Vec<_> = METRICS
        .iter()
        .map(|(name, help, kind, value)| (register(&mut registry, name, help, *kind), *value))
        .collect();
    for s in samples {
        let labels = labels(s);
        for st in STATES {
            let l = StateLabels {
                labels: labels.clone(),
                state: st.to_string(),
            };
            state.get_or_create(&l).set(i64::from(s.state == st));
        }
        for (family, value) in &families {
            if let Some(v) = value(s) {
                family.set(&labels, v);
            }
        }
    }
    let mut text = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &registry);
    text
}

fn labels(s: &Sample) -> Labels {
    Labels {
        appliance: s.name.clone(),
        class: s.class.clone(),
        digest: s.digest.clone(),
        kernel: s.kernel.clone(),
    }
}

/// A registered family of either kind.
enum Registered {
    Gauge(Family<Labels, Gauge<f64, AtomicU64>>),
    Counter(Family<Labels, Counter<f64, AtomicU64>>),
}

impl Registered {
    fn set(&self, labels: &Labels, v: f64) {
        match self {
            Registered::Gauge(f) => {
                f.get_or_create(labels).set(v);
            }
            Registered::Counter(f) => {
                f.get_or_create(labels).inc_by(v);
            }
        }
    }
}

fn register(registry: &mut Registry, name: &str, help: &str, kind: Kind) -> Registered {
    match kind {
        Kind::Gauge => {
            let f = Family::<Labels, Gauge<f64, AtomicU64>>::default();
            registry.register(name, help, f.clone());
            Registered::Gauge(f)
        }
        Kind::Counter => {
            let f = Family::<Labels, Counter<f64, AtomicU64>>::default();
            registry.register(name, help, f.clone());
            Registered::Counter(f)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::procfs::{Tap, Usage};

    fn sample(name: &str) -> Sample {
        Sample {
            class: "dns v1".into(),
            digest: "sha256:ab".into(),
            kernel: "/k/linux (6.1 \"x\"\\y)".into(),
            started_at_ms: 1_700_000_000_500,
            booted_after_ms: Some(40),
            ready_after_ms: Some(57),
            usage: Some(Usage {
                processes: 3,
                cpu_seconds: 0.25,
                memory_bytes: 11 << 20,
                disk_read_bytes: 0,
                disk_written_bytes: 4096,
            }),
            tap_name: Some("hl-a".into()),
            tap: Some(Tap {
                rx_bytes: 10,
                tx_bytes: 20,
                ..Default::default()
            }),
            ..crate::metrics::sample::test_sample(name)
        }
    }

    #[test]
    fn every_series_names_its_appliance() {
        let text = encode(&[sample("d1"), sample("d2")]);
        assert!(
            text.contains("# TYPE appliance_cpu_seconds_total counter\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE appliance_memory_bytes gauge\n"));
        assert!(
            text.contains(
                "appliance_network_receive_bytes_total{appliance=\"d2\",class=\"dns v1\",\
             digest=\"sha256:ab\",kernel=\"/k/linux (6.1 \\\"x\\\"\\\\y)\"} 20"
            ),
            "{text}"
        );
        assert!(text.contains("appliance_state{appliance=\"d1\","));
        let samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert!(samples
            .iter()
            .all(|l| l.contains("appliance=\"d1\"") || l.contains("appliance=\"d2\"")));
        // No exit code while it runs.
        assert!(!text.contains("appliance_exit_code{"));
    }
}
