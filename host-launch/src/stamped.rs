//! The console's timestamped copy, `console.stamped.log` in the state directory: each whole
//! console line as it arrived, after its host time (`2026-12-07T14:01:02.123Z LINE`), capped
//! and rotated like the console itself (so at most twice its bytes are kept). The launcher
//! writes it; `logs --timestamps` and `logs --since` read it. The console has no times of
//! its own: the guest's clock is the guest's, and the launcher's is the one an operator asks
//! about.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use vmm::channel::{CappedLog, Dropped, LineSplitter};

/// What the console thread does with each chunk for the timestamped copy: whole, bounded
/// lines, each written after the time it completed.
pub fn writer(mut log: CappedLog, max_line: usize) -> impl FnMut(&[u8]) + Send + 'static {
    // Its own counters: the console's drops are counted once, on the console itself.
    let mut split = LineSplitter::new(max_line, Arc::new(Dropped::default()));
    move |bytes: &[u8]| {
        split.feed(bytes, &mut |line| {
            let stamp = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
            let mut rec = Vec::with_capacity(stamp.len() + line.len() + 2);
            rec.extend_from_slice(stamp.as_bytes());
            rec.push(b' ');
            rec.extend_from_slice(line);
            rec.push(b'\n');
            let _ = log.write(&rec);
        });
    }
}

/// A stamped line's time (milliseconds since the epoch) and its text; `None` for a line
/// that is not one (a file edited by hand).
pub fn parse(line: &str) -> Option<(u64, &str)> {
    let (stamp, text) = line.split_once(' ').unwrap_or((line, ""));
    let t = humantime::parse_rfc3339(stamp).ok()?;
    let ms = t.duration_since(UNIX_EPOCH).ok()?.as_millis();
    Some((u64::try_from(ms).ok()?, text))
}

/// `--since`: an RFC 3339 time, or a duration before now (`10m`, `1h 30m`, as podman
/// takes it); milliseconds since the epoch.
pub fn since(arg: &str) -> Result<u64, String> {
    let t = match humantime::parse_rfc3339_weak(arg) {
        Ok(t) => t,
        Err(_) => {
            let d = humantime::parse_duration(arg).map_err(|_| {
                format!(
                    "--since {arg:?}: give a time (2026-12-07T14:00:00Z) or a duration before \
                     now (10m, 2h)"
                )
            })?;
            SystemTime::now() - d
        }
    };
    let ms = t
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_millis();
    u64::try_from(ms).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn stamps_parse_and_since_takes_times_and_durations() {
        assert_eq!(
            super::parse("2023-11-14T22:13:20.123Z hello world"),
            Some((1_700_000_000_123, "hello world"))
        );
        assert_eq!(super::parse("no stamp"), None);
        assert_eq!(super::since("2023-11-14T22:13:20Z"), Ok(1_700_000_000_000));
        let ten_min_ago = super::since("10m").unwrap();
        let now = crate::state::now_ms();
        assert!(now - ten_min_ago >= 600_000 && now - ten_min_ago < 610_000);
        assert!(super::since("yesterday-ish")
            .unwrap_err()
            .contains("--since"));
    }
}
