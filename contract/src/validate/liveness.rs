//! The service's liveness check: bounds of its settings and the check of its program or
//! address (its types are in [`crate::liveness`]).

use crate::addr::parse_ip;
use crate::liveness::{Liveness, LivenessCheck};

/// Bounds of the settings: a check at most every 100 ms, so it cannot eat the guest; one check
/// at most 10 s (a check that takes longer is as good as failed) and never longer than the
/// interval; at most 100 failures in a row.
pub const MIN_INTERVAL_MS: u64 = 100;
pub const MAX_INTERVAL_MS: u64 = 3_600_000;
pub const MAX_TIMEOUT_MS: u64 = 10_000;
pub const MAX_FAILURE_THRESHOLD: u32 = 100;

/// Every problem of a liveness setting, as (JSON path, message); `at` is its own path.
pub fn problems(l: &Liveness, at: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut push = |field: &str, msg: String| out.push((format!("{at}.{field}"), msg));
    if !(MIN_INTERVAL_MS..=MAX_INTERVAL_MS).contains(&l.interval_ms) {
        push(
            "interval_ms",
            format!(
                "{} is out of range; use {MIN_INTERVAL_MS} to {MAX_INTERVAL_MS} (an hour)",
                l.interval_ms
            ),
        );
    }
    if l.timeout_ms == 0 || l.timeout_ms > MAX_TIMEOUT_MS {
        push(
            "timeout_ms",
            format!(
                "{} is out of range; use 1 to {MAX_TIMEOUT_MS}",
                l.timeout_ms
            ),
        );
    } else if l.timeout_ms > l.interval_ms {
        push(
            "timeout_ms",
            format!(
                "{} is longer than interval_ms ({}); a check must end before the next one starts",
                l.timeout_ms, l.interval_ms
            ),
        );
    }
    if l.failure_threshold == 0 || l.failure_threshold > MAX_FAILURE_THRESHOLD {
        push(
            "failure_threshold",
            format!(
                "{} is out of range; use 1 to {MAX_FAILURE_THRESHOLD}",
                l.failure_threshold
            ),
        );
    }
    match &l.check {
        LivenessCheck::Tcp { port, address } => {
            if *port == 0 {
                push("check.port", "must be 1 to 65535".into());
            }
            if let Some(Err(m)) = address.as_deref().map(parse_ip) {
                push("check.address", m.to_string());
            }
        }
        LivenessCheck::Exec { argv } => {
            out.extend(program_problems(argv, &format!("{at}.check.argv")));
        }
    }
    out
}

/// The problems of an `argv` that names a program of the image (a liveness or quiesce
/// command), at the JSON path `at`.
pub(super) fn program_problems(argv: &[String], at: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let Some(a0) = argv.first() else {
        out.push((
            at.to_string(),
            "must name a program of the image, e.g. [\"/bin/check\"]".into(),
        ));
        return out;
    };
    if let Err(m) = super::check_abs_path(a0) {
        out.push((format!("{at}[0]"), m.to_string()));
    }
    for (i, a) in argv.iter().enumerate() {
        if a.contains('\0') {
            out.push((format!("{at}[{i}]"), "contains a NUL character".into()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::liveness::LivenessCheck;

    fn exec(argv: &[&str]) -> Liveness {
        Liveness {
            check: LivenessCheck::Exec {
                argv: argv.iter().map(|s| s.to_string()).collect(),
            },
            interval_ms: 10_000,
            timeout_ms: 2_000,
            failure_threshold: 3,
        }
    }

    #[test]
    fn defaults_are_valid_and_bad_settings_name_their_field() {
        assert!(problems(&exec(&["/bin/check"]), "service.liveness").is_empty());
        let mut l = exec(&["check"]);
        l.interval_ms = 50;
        l.failure_threshold = 0;
        let p = problems(&l, "service.liveness");
        let paths: Vec<&str> = p.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "service.liveness.interval_ms",
                "service.liveness.timeout_ms",
                "service.liveness.failure_threshold",
                "service.liveness.check.argv[0]"
            ]
        );
    }
}
