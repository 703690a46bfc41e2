//! The snapshot's quiesce command (`service.quiesce`, contract version 4): its program and
//! its bound.

use crate::types::Quiesce;

/// The longest a quiesce command may run: the host waits this long (and a margin) for the
/// freeze, and the service's writes keep going meanwhile, so a longer one only delays the
/// snapshot.
pub const MAX_QUIESCE_TIMEOUT_MS: u64 = 30_000;

/// Every problem of a quiesce setting, as (JSON path, message); `at` is its own path.
pub fn problems(q: &Quiesce, at: &str) -> Vec<(String, String)> {
    let mut out = super::liveness::program_problems(&q.argv, &format!("{at}.argv"));
    if q.timeout_ms == 0 || q.timeout_ms > MAX_QUIESCE_TIMEOUT_MS {
        out.push((
            format!("{at}.timeout_ms"),
            format!(
                "{} is out of range; use 1 to {MAX_QUIESCE_TIMEOUT_MS} (the freeze waits for it)",
                q.timeout_ms
            ),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(argv: &[&str], timeout_ms: u64) -> Quiesce {
        Quiesce {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            timeout_ms,
        }
    }

    #[test]
    fn a_program_of_the_image_within_the_bound_is_valid() {
        assert!(problems(&q(&["/bin/flush", "--all"], 5000), "service.quiesce").is_empty());
        assert!(problems(
            &q(&["/bin/flush"], MAX_QUIESCE_TIMEOUT_MS),
            "service.quiesce"
        )
        .is_empty());
    }

    #[test]
    fn bad_settings_name_their_field() {
        let paths = |q: &Quiesce| -> Vec<String> {
            problems(q, "service.quiesce")
                .into_iter()
                .map(|(p, _)| p)
                .collect()
        };
        assert_eq!(paths(&q(&[], 10)), ["service.quiesce.argv"]);
        assert_eq!(
            paths(&q(&["flush", "a\0b"], 0)),
            [
                "service.quiesce.argv[0]",
                "service.quiesce.argv[1]",
                "service.quiesce.timeout_ms"
            ]
        );
        let (_, m) = problems(&q(&["/bin/x"], 30_001), "service.quiesce").remove(0);
        assert!(m.contains("use 1 to 30000"), "{m}");
    }
}
