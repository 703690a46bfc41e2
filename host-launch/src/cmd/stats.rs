//! `stats [NAME] [--format json]`: one snapshot of what each appliance uses (the samples of
//! `crate::metrics`), as a table or as a JSON array of samples.

use crate::error::Result;
use crate::lifecycle::known;
use crate::metrics::{self, Digests, Sample};
use crate::state;
use std::io::Write;

/// `stats`: one appliance's sample, or every one's.
pub fn stats(name: Option<&str>, json: bool) -> Result<i32> {
    let entries = match name {
        Some(n) => vec![known(n)?],
        None => state::list(&state::base_dir()),
    };
    let samples = metrics::collect(&entries, &mut Digests::default());
    let mut out = std::io::stdout().lock();
    if json {
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&samples).unwrap_or_default()
        );
        return Ok(0);
    }
    let _ = writeln!(out, "{}", header());
    for s in &samples {
        let _ = writeln!(out, "{}", row(s));
    }
    Ok(0)
}

/// The table's columns.
pub fn header() -> String {
    format!(
        "{:<20} {:<9} {:<5} {:>9} {:>9} {:>10} {:>10} {:>8} {:>9}",
        "NAME", "STATE", "READY", "CPU s", "MEM MiB", "NET IN", "NET OUT", "RESTARTS", "UPTIME"
    )
}

/// One appliance's line.
pub fn row(s: &Sample) -> String {
    let dash = || "-".to_string();
    let u = s.usage.as_ref();
    format!(
        "{:<20} {:<9} {:<5} {:>9} {:>9} {:>10} {:>10} {:>8} {:>9}",
        s.name,
        s.state,
        if s.ready { "yes" } else { "no" },
        u.map_or_else(dash, |u| format!("{:.2}", u.cpu_seconds)),
        u.map_or_else(dash, |u| mib(u.memory_bytes)),
        s.tap.map_or_else(dash, |t| bytes(t.tx_bytes)),
        s.tap.map_or_else(dash, |t| bytes(t.rx_bytes)),
        s.service.restarts,
        s.uptime_s.map_or_else(dash, duration),
    )
}

#[allow(clippy::cast_precision_loss)] // a display to one decimal
fn mib(b: u64) -> String {
    format!("{:.1}", b as f64 / f64::from(1u32 << 20))
}

/// Bytes with a binary unit (`512B`, `1.5KiB`, `20.0MiB`).
#[allow(clippy::cast_precision_loss)]
pub fn bytes(b: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if b < 1024 {
        return format!("{b}B");
    }
    let mut v = b as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1}{}", UNITS[unit])
}

/// Seconds as `1d02h`, `3h04m` or `5m06s`.
pub fn duration(s: u64) -> String {
    match s {
        s if s >= 86_400 => format!("{}d{:02}h", s / 86_400, (s / 3600) % 24),
        s if s >= 3600 => format!("{}h{:02}m", s / 3600, (s / 60) % 60),
        s => format!("{}m{:02}s", s / 60, s % 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_short() {
        assert_eq!(bytes(512), "512B");
        assert_eq!(bytes(1536), "1.5KiB");
        assert_eq!(bytes(20 << 20), "20.0MiB");
        assert_eq!(duration(65), "1m05s");
        assert_eq!(duration(3 * 3600 + 240), "3h04m");
        assert_eq!(duration(86_400 + 7200), "1d02h");
    }
}
