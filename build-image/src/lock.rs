//! The lock file beside a recipe (`dns.json` → `dns.lock.json`): every Debian package of the
//! image's closure with the version, architecture, source package and SHA-256 of its `.deb`.
//! A build with a lock downloads exactly these files (or takes them from the cache) and
//! checks each SHA-256, so two builds from one lock give the same image. Pure: no I/O.

use crate::recipe::Problems;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The lock format these types describe.
pub const LOCK_VERSION: u32 = 1;

/// The packages an image is built from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    /// Always 1.
    pub lock_version: u32,
    /// The recipe's `packages` (and e2fsprogs for the disk tools) when the lock was made.
    pub requested: Vec<String>,
    /// The whole dependency closure, sorted by name.
    pub packages: Vec<Locked>,
}

/// One `.deb`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Locked {
    pub package: String,
    pub version: String,
    pub architecture: String,
    /// The source package it was built from (Debian's `Source` field, or its own name).
    pub source: String,
    /// SHA-256 of the `.deb` file, lower-case hex.
    pub sha256: String,
}

/// `recipes/dns.json` → `recipes/dns.lock.json`.
pub fn lock_path(recipe: &Path) -> PathBuf {
    let stem = recipe
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "recipe".into());
    recipe.with_file_name(format!("{stem}.lock.json"))
}

/// Parses a lock (strict JSON, unknown fields are errors) and checks every entry; each
/// problem starts with its JSON path.
pub fn parse(text: &[u8]) -> Result<Lock, Problems> {
    let value = contract::json::parse_value(text).map_err(|e| Problems::one(e.to_string()))?;
    let lock: Lock = serde_path_to_error::deserialize(value)
        .map_err(|e| Problems::one(format!("{}: {}", e.path(), e.inner())))?;
    let mut problems = Vec::new();
    if lock.lock_version != LOCK_VERSION {
        problems.push(format!(
            "lock_version: {} is not supported; this builder reads version {LOCK_VERSION}",
            lock.lock_version
        ));
    }
    for (i, p) in lock.packages.iter().enumerate() {
        if let Err(e) = crate::recipe::check_package(&p.package) {
            problems.push(format!("packages[{i}].package: {e}"));
        }
        let hex = p.sha256.len() == 64
            && p.sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !hex {
            problems.push(format!(
                "packages[{i}].sha256: '{}' is not 64 lower-case hex digits",
                p.sha256
            ));
        }
        // apt-get download NAME=VERSION: a version is one shell-free token.
        let version_ok = !p.version.is_empty()
            && p.version
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".+-~:".contains(c));
        if !version_ok {
            problems.push(format!(
                "packages[{i}].version: '{}' is not a Debian version",
                p.version
            ));
        }
        if p.architecture.is_empty() || !p.architecture.chars().all(|c| c.is_ascii_alphanumeric()) {
            problems.push(format!(
                "packages[{i}].architecture: '{}' is not an architecture",
                p.architecture
            ));
        }
    }
    if problems.is_empty() {
        Ok(lock)
    } else {
        Err(Problems(problems))
    }
}

impl Lock {
    /// The lock as written: pretty JSON, packages sorted, a final newline.
    pub fn to_text(&self) -> String {
        let mut l = self.clone();
        l.packages.sort();
        let mut t = serde_json::to_string_pretty(&l).unwrap_or_default();
        t.push('\n');
        t
    }

    /// The requested packages the lock does not cover (the recipe changed since).
    pub fn missing(&self, requested: &[String]) -> Vec<String> {
        requested
            .iter()
            .filter(|r| {
                let name = r.split_once(':').map_or(r.as_str(), |(n, _)| n);
                !self.packages.iter().any(|p| p.package == name)
            })
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Locked {
        Locked {
            package: "libc6".into(),
            version: "2.36-9+deb12u14".into(),
            architecture: "amd64".into(),
            source: "glibc".into(),
            sha256: "ba4f88f73dbc3ae9055f3c20f4523bfdbaf1ad13ff95e258924f77d20b4fbedf".into(),
        }
    }

    #[test]
    fn round_trip_and_paths() {
        let l = Lock {
            lock_version: 1,
            requested: vec!["libc6".into()],
            packages: vec![entry()],
        };
        assert_eq!(parse(l.to_text().as_bytes()).unwrap(), l);
        assert!(l.missing(&["libc6:amd64".into()]).is_empty());
        assert_eq!(l.missing(&["unbound".into()]), ["unbound"]);
        assert_eq!(
            lock_path(Path::new("build-image/recipes/dns.json")),
            Path::new("build-image/recipes/dns.lock.json")
        );
    }

    #[test]
    fn bad_entries_are_named() {
        let mut e = entry();
        e.sha256 = "XYZ".into();
        e.version = "1 2".into();
        let l = Lock {
            lock_version: 2,
            requested: vec![],
            packages: vec![e],
        };
        let p = parse(l.to_text().as_bytes()).unwrap_err();
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p[0].starts_with("lock_version: 2"));
        assert!(p[1].starts_with("packages[0].sha256:"));
        assert!(p[2].starts_with("packages[0].version:"));
        let p = parse(br#"{"lock_version":1,"requested":[],"packages":[],"x":1}"#).unwrap_err();
        assert!(p[0].contains("unknown field `x`"), "{p:?}");
    }
}
