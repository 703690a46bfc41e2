//! The guest's own figures for the host: memory from `/proc/meminfo`, the load average and
//! the uptime. Sent at a low rate ([`EVERY`]) as `figures` events; what cannot be read is
//! left out, never guessed.

use contract::status::Event;
use std::time::Duration;

/// How often: every 10 s, the scrape interval Prometheus users usually pick; the event is
/// ~150 bytes, so 15 bytes/s per appliance on the channel, and three small /proc reads.
pub const EVERY: Duration = Duration::from_secs(10);

/// The figures now, as an event.
pub fn read() -> Event {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let uptime = std::fs::read_to_string("/proc/uptime").unwrap_or_default();
    Event::Figures {
        mem_total_kb: meminfo_kb(&meminfo, "MemTotal"),
        mem_available_kb: meminfo_kb(&meminfo, "MemAvailable"),
        load1: first_number(&loadavg),
        uptime_s: first_number(&uptime),
    }
}

/// `MemTotal:  61234 kB` → 61234.
fn meminfo_kb(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
}

/// The first field of `/proc/loadavg` or `/proc/uptime`, if it is a finite number.
fn first_number(text: &str) -> Option<f64> {
    let v: f64 = text.split_whitespace().next()?.parse().ok()?;
    v.is_finite().then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_texts_parse_and_garbage_is_left_out() {
        let mi = "MemTotal:          61234 kB\nMemFree:    100 kB\nMemAvailable:   40000 kB\n";
        assert_eq!(meminfo_kb(mi, "MemTotal"), Some(61234));
        assert_eq!(meminfo_kb(mi, "MemAvailable"), Some(40000));
        assert_eq!(meminfo_kb("MemTotalX: 5 kB", "MemTotal"), None);
        assert_eq!(meminfo_kb("", "MemTotal"), None);
        assert_eq!(first_number("0.52 0.58 0.59 1/80 123\n"), Some(0.52));
        assert_eq!(first_number("12.34 40.00\n"), Some(12.34));
        assert_eq!(first_number("nan"), None);
        assert_eq!(first_number(""), None);
    }

    #[test]
    fn this_machines_figures_are_read() {
        let Event::Figures {
            mem_total_kb,
            mem_available_kb,
            uptime_s,
            ..
        } = read()
        else {
            panic!("not a figures event");
        };
        assert!(mem_total_kb > Some(0));
        assert!(mem_available_kb <= mem_total_kb);
        assert!(uptime_s > Some(0.0));
    }
}
