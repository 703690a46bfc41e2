//! The package changes between two images, from their SBOMs (`IMAGE.spdx.json` beside each,
//! as the builder writes them): what was added, removed, or moved to another version. Also
//! reads an image's SBOM back as a lock, so `--outdated` can check an image as it was built.
//! Pure: the callers read the files.

use crate::lock::{Lock, Locked, LOCK_VERSION};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// One package that differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub package: String,
    /// `None`: added.
    pub old: Option<String>,
    /// `None`: removed.
    pub new: Option<String>,
}

/// The packages of an SBOM the builder wrote, as a lock (name, version, architecture from
/// the purl, SHA-256); a field that is not there is an error naming the package.
pub fn sbom_lock(text: &[u8]) -> Result<Lock, String> {
    let v: Value = serde_json::from_slice(text).map_err(|e| format!("not JSON: {e}"))?;
    let packages = v["packages"]
        .as_array()
        .ok_or("packages: missing; is this an SBOM build-image wrote (IMAGE.spdx.json)?")?;
    let mut out = Vec::new();
    for (i, p) in packages.iter().enumerate() {
        let field = |k: &str| {
            p[k].as_str()
                .map(str::to_string)
                .ok_or(format!("packages[{i}].{k}: missing"))
        };
        let purl = p["externalRefs"][0]["referenceLocator"]
            .as_str()
            .unwrap_or("");
        let arch = purl
            .rsplit_once("arch=")
            .map_or("amd64", |(_, a)| a.split('&').next().unwrap_or("amd64"));
        out.push(Locked {
            package: field("name")?,
            version: field("versionInfo")?,
            architecture: arch.to_string(),
            source: field("name")?,
            sha256: p["checksums"][0]["checksumValue"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        });
    }
    Ok(Lock {
        lock_version: LOCK_VERSION,
        requested: Vec::new(),
        packages: out,
    })
}

/// What differs between two sets of packages, by name.
pub fn changes(old: &[Locked], new: &[Locked]) -> Vec<Change> {
    let map = |l: &[Locked]| -> BTreeMap<String, String> {
        l.iter()
            .map(|p| (p.package.clone(), p.version.clone()))
            .collect()
    };
    let (o, n) = (map(old), map(new));
    let mut names: Vec<&String> = o.keys().chain(n.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter(|k| o.get(*k) != n.get(*k))
        .map(|k| Change {
            package: k.clone(),
            old: o.get(k).cloned(),
            new: n.get(k).cloned(),
        })
        .collect()
}

impl Change {
    /// `libc6 2.36-9+deb12u9 -> 2.36-9+deb12u10`, `+ new 1.0`, `- gone 1.0`.
    pub fn line(&self) -> String {
        match (&self.old, &self.new) {
            (Some(o), Some(n)) => format!("  {:<24} {o} -> {n}", self.package),
            (None, Some(n)) => format!("+ {:<24} {n}", self.package),
            (Some(o), None) => format!("- {:<24} {o}", self.package),
            (None, None) => String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sbom::{document, Package};

    fn locked(p: &str, v: &str) -> Locked {
        Locked {
            package: p.into(),
            version: v.into(),
            architecture: "amd64".into(),
            source: p.into(),
            sha256: "0".repeat(64),
        }
    }

    #[test]
    fn an_sbom_reads_back_as_its_packages() {
        let pkgs: Vec<Package> = [
            locked("libc6", "2.36-9+deb12u9"),
            locked("zlib1g", "1:1.2.13"),
        ]
        .into_iter()
        .map(|l| Package {
            locked: l,
            license: "NOASSERTION".into(),
            license_comment: String::new(),
        })
        .collect();
        let doc = document("t", &pkgs, 0, "seed");
        let lock = sbom_lock(doc.to_string().as_bytes()).unwrap();
        let want: Vec<Locked> = pkgs.into_iter().map(|p| p.locked).collect();
        assert_eq!(lock.packages, want);
        assert!(sbom_lock(b"{}").unwrap_err().contains("packages"));
    }

    #[test]
    fn changes_name_added_removed_and_moved() {
        let old = [locked("a", "1"), locked("b", "1"), locked("c", "1")];
        let new = [locked("a", "1"), locked("b", "2"), locked("d", "1")];
        let c = changes(&old, &new);
        let lines: Vec<String> = c.iter().map(Change::line).collect();
        assert_eq!(c.len(), 3, "{lines:?}");
        assert!(
            lines[0].contains("b") && lines[0].contains("1 -> 2"),
            "{lines:?}"
        );
        assert!(lines[1].starts_with("- c"), "{lines:?}");
        assert!(lines[2].starts_with("+ d"), "{lines:?}");
    }
}
