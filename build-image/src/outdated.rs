//! `build-image --outdated`: which packages of a lock the archive has a newer version of, from
//! the archive's indexes fetched just now with the builder's private apt state (never the
//! host's), each marked when the newer version comes from a security suite. An archive that
//! cannot be reached is an error of its own ([`Unreachable`]), never "up to date".

use crate::archive::Cache;
use crate::lock::Lock;
use serde::Serialize;
use std::collections::BTreeMap;
use std::process::Command;

/// A locked package with a newer version in the archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Behind {
    pub package: String,
    pub locked: String,
    pub candidate: String,
    /// Where apt offers the candidate (e.g. `http://deb.debian.org/debian-security
    /// bookworm-security/main amd64 Packages`).
    pub origin: String,
    /// The candidate comes from a security suite (`*-security`).
    pub security: bool,
}

/// Why the check could not be made.
#[derive(Debug, thiserror::Error)]
pub enum OutdatedError {
    /// The archive's indexes could not be fetched (the lists on disk may be old).
    #[error("the archive cannot be reached, so nothing is known about updates: {0}")]
    Unreachable(String),
    /// apt or dpkg failed otherwise.
    #[error("{0}")]
    Apt(String),
}

/// The packages of `lock` the archive (refreshed now) has a newer version of.
pub fn outdated(cache: &Cache, lock: &Lock) -> Result<Vec<Behind>, OutdatedError> {
    let _held = cache
        .lock()
        .map_err(|e| OutdatedError::Apt(e.0.join("; ")))?;
    refresh(cache)?;
    let names: Vec<String> = lock.packages.iter().map(|p| p.package.clone()).collect();
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let mut args = vec!["policy".to_string()];
    args.extend(names);
    let o = cache
        .apt("apt-cache", &args, None)
        .map_err(|e| OutdatedError::Apt(e.0.join("; ")))?;
    if !o.status.success() {
        return Err(OutdatedError::Apt(format!(
            "apt-cache policy: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )));
    }
    let offered = parse_policy(&String::from_utf8_lossy(&o.stdout));
    let mut behind = Vec::new();
    for p in &lock.packages {
        let Some((candidate, origin)) = offered.get(&p.package) else {
            continue;
        };
        if newer(candidate, &p.version)? {
            behind.push(Behind {
                package: p.package.clone(),
                locked: p.version.clone(),
                candidate: candidate.clone(),
                security: origin.contains("-security"),
                origin: origin.clone(),
            });
        }
    }
    Ok(behind)
}

/// `apt-get update` that fails on any index it could not fetch (apt itself only warns).
fn refresh(cache: &Cache) -> Result<(), OutdatedError> {
    let o = cache
        .apt("apt-get", &["update".into(), "-q".into()], None)
        .map_err(|e| OutdatedError::Apt(e.0.join("; ")))?;
    let err = String::from_utf8_lossy(&o.stderr);
    let failed = err
        .lines()
        .filter(|l| l.starts_with("E:") || l.contains("Failed to fetch"))
        .collect::<Vec<_>>();
    if !o.status.success() || !failed.is_empty() {
        return Err(OutdatedError::Unreachable(format!(
            "apt-get update: {}; check the apt sources and the network to the archive",
            if failed.is_empty() {
                err.trim().to_string()
            } else {
                failed.join("; ")
            }
        )));
    }
    Ok(())
}

/// `dpkg --compare-versions A gt B` (Debian's ordering, epochs and tildes included).
fn newer(a: &str, b: &str) -> Result<bool, OutdatedError> {
    let s = Command::new("dpkg")
        .args(["--compare-versions", a, "gt", b])
        .status()
        .map_err(|e| OutdatedError::Apt(format!("running dpkg --compare-versions: {e}")))?;
    Ok(s.success())
}

/// From `apt-cache policy` output: each package's candidate and the first line saying where
/// it comes from.
fn parse_policy(text: &str) -> BTreeMap<String, (String, String)> {
    let mut out = BTreeMap::new();
    let mut package: Option<String> = None;
    let mut candidate: Option<String> = None;
    let mut in_candidate = false;
    for line in text.lines() {
        if !line.starts_with(' ') && line.ends_with(':') {
            package = Some(
                line.trim_end_matches(':')
                    .split(':')
                    .next()
                    .unwrap_or("")
                    .into(),
            );
            (candidate, in_candidate) = (None, false);
        } else if let Some(c) = line.trim().strip_prefix("Candidate: ") {
            candidate = Some(c.to_string()).filter(|c| c != "(none)");
        } else if let Some(v) = version_line(line) {
            in_candidate = candidate.as_deref() == Some(v);
        } else if in_candidate {
            if let (Some(p), Some(c)) = (&package, &candidate) {
                let origin = line
                    .trim()
                    .split_once(' ')
                    .map_or("", |(_, o)| o)
                    .to_string();
                out.entry(p.clone()).or_insert((c.clone(), origin));
            }
        }
    }
    out
}

/// The version of a version-table line (` *** 1.2-3 500` or `     1.2-3 500`); source lines
/// (`        500 http://...`) start with a number and have more than two words.
fn version_line(line: &str) -> Option<&str> {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        ["***", v, prio] | [v, prio] if prio.parse::<i32>().is_ok() && line.starts_with("  ") => {
            Some(v)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = "\
libc6:
  Installed: (none)
  Candidate: 2.36-9+deb12u10
  Version table:
     2.36-9+deb12u10 500
        500 http://deb.debian.org/debian-security bookworm-security/main amd64 Packages
     2.36-9+deb12u9 500
        500 http://deb.debian.org/debian bookworm/main amd64 Packages
dnsmasq-base:
  Installed: (none)
  Candidate: 2.89-1
  Version table:
     2.89-1 500
        500 http://deb.debian.org/debian bookworm/main amd64 Packages
gone:
  Installed: (none)
  Candidate: (none)
  Version table:
";

    #[test]
    fn policy_gives_candidates_and_their_origin() {
        let p = parse_policy(POLICY);
        let (v, o) = &p["libc6"];
        assert_eq!(v, "2.36-9+deb12u10");
        assert!(o.contains("bookworm-security/main"), "{o}");
        assert_eq!(p["dnsmasq-base"].0, "2.89-1");
        assert!(!p.contains_key("gone"));
    }

    #[test]
    fn dpkg_orders_debian_versions() {
        assert!(newer("2.36-9+deb12u10", "2.36-9+deb12u9").unwrap());
        assert!(!newer("1.0~rc1", "1.0").unwrap());
        assert!(newer("1:0.1", "9.9").unwrap());
    }
}
