//! The image's software bill of materials: an SPDX 2.3 JSON document listing every Debian
//! package the image took files from (name, version, source package, licence, SHA-256 of the
//! `.deb`, a `pkg:deb` package URL). SPDX rather than CycloneDX because its package model
//! has Debian's fields as first-class ones (`sourceInfo`, `licenseDeclared` as an SPDX
//! licence expression, which DEP-5 copyright files map onto), its 2.3 schema is one
//! self-contained draft-07 file, and Debian's own tooling and the scanners that read dpkg
//! data (syft, trivy) read and write it. Pure: no I/O.

use crate::lock::Locked;
use serde_json::{json, Value};

/// Where the SBOM is in the image; beside the image it is `<image>.spdx.json`.
pub const IMAGE_PATH: &str = "/usr/share/sbom/image.spdx.json";

/// One package of the image, with what its copyright file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    pub locked: Locked,
    /// The SPDX licence expression, or `NOASSERTION`.
    pub license: String,
    /// How the licence was found (for `licenseComments`).
    pub license_comment: String,
}

/// Debian short licence names (DEP-5) → SPDX identifiers; a name not here that is not
/// already an SPDX identifier becomes `LicenseRef-<name>`.
const NAMES: &[(&str, &str)] = &[
    ("gpl-1", "GPL-1.0-only"),
    ("gpl-1+", "GPL-1.0-or-later"),
    ("gpl-2", "GPL-2.0-only"),
    ("gpl-2+", "GPL-2.0-or-later"),
    ("gpl-3", "GPL-3.0-only"),
    ("gpl-3+", "GPL-3.0-or-later"),
    ("lgpl-2", "LGPL-2.0-only"),
    ("lgpl-2+", "LGPL-2.0-or-later"),
    ("lgpl-2.1", "LGPL-2.1-only"),
    ("lgpl-2.1+", "LGPL-2.1-or-later"),
    ("lgpl-3", "LGPL-3.0-only"),
    ("lgpl-3+", "LGPL-3.0-or-later"),
    ("agpl-3", "AGPL-3.0-only"),
    ("agpl-3+", "AGPL-3.0-or-later"),
    ("gfdl-1.3+", "GFDL-1.3-or-later"),
    ("bsd-2-clause", "BSD-2-Clause"),
    ("bsd-3-clause", "BSD-3-Clause"),
    ("bsd-4-clause", "BSD-4-Clause"),
    ("expat", "MIT"),
    ("mit", "MIT"),
    ("isc", "ISC"),
    ("zlib", "Zlib"),
    ("apache-2.0", "Apache-2.0"),
    ("mpl-2.0", "MPL-2.0"),
    ("openssl", "OpenSSL"),
    ("artistic", "Artistic-1.0-Perl"),
    ("curl", "curl"),
    ("x11", "X11"),
    ("bsl-1.0", "BSL-1.0"),
    ("cc0-1.0", "CC0-1.0"),
    ("afl-2.1", "AFL-2.1"),
    ("unicode-dfs-2016", "Unicode-DFS-2016"),
];

/// An SPDX `LicenseRef-` idstring: letters, digits, `.` and `-`.
fn idstring(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

fn spdx_name(debian: &str) -> String {
    let mut lower = debian.to_ascii_lowercase().replace(".0+", "+");
    // `GPL-2.0` is Debian's `GPL-2` (but `LGPL-2.1` stays).
    if lower.contains("gpl-") && lower.ends_with(".0") {
        lower.truncate(lower.len() - 2);
    }
    if let Some((_, id)) = NAMES.iter().find(|(n, _)| *n == lower) {
        return id.to_string();
    }
    format!("LicenseRef-{}", idstring(debian))
}

/// One DEP-5 `License:` synopsis (`GPL-2+ or BSD-3-clause`) as an SPDX expression. A comma
/// binds loosest (`A or B, and C` is `(A OR B) AND C`).
fn expression(synopsis: &str) -> String {
    if let Some((first, rest)) = synopsis.split_once(',') {
        let rest = rest.trim_start();
        let (op, tail) = match rest.split_once(' ') {
            Some((w, t)) if w.eq_ignore_ascii_case("and") => ("AND", t),
            Some((w, t)) if w.eq_ignore_ascii_case("or") => ("OR", t),
            _ => ("AND", rest),
        };
        return format!("({} {op} {})", expression(first), expression(tail));
    }
    let words: Vec<String> = synopsis
        .split_whitespace()
        .map(|w| match w.to_ascii_lowercase().as_str() {
            "or" => "OR".to_string(),
            "and" => "AND".to_string(),
            "with" => "WITH".to_string(),
            _ => spdx_name(w),
        })
        .collect();
    // Licences and operators must alternate; anything else is one unknown licence.
    let alternates = words.len() % 2 == 1
        && words
            .iter()
            .enumerate()
            .all(|(i, w)| (i % 2 == 1) == matches!(w.as_str(), "OR" | "AND" | "WITH"));
    if !alternates {
        return format!("LicenseRef-{}", idstring(synopsis.trim()));
    }
    // "X with Y exception": SPDX names the exception; keep it a LicenseRef conjunction.
    let text = words.join(" ").replace(" WITH ", " AND ");
    if words.len() > 1 {
        format!("({text})")
    } else {
        text
    }
}

/// The licence of a package from its `copyright` file: the licences of its `Files:`
/// paragraphs (DEP-5, machine-readable), joined with AND; else NOASSERTION.
pub fn license_of(copyright: Option<&str>) -> (String, String) {
    let Some(text) = copyright else {
        return (
            "NOASSERTION".into(),
            "the package has no /usr/share/doc/PKG/copyright".into(),
        );
    };
    if !text.starts_with("Format:") {
        return (
            "NOASSERTION".into(),
            "its copyright file is not machine-readable (DEP-5)".into(),
        );
    }
    let mut found: Vec<String> = Vec::new();
    for para in text.split("\n\n") {
        let has_files = para.lines().any(|l| l.starts_with("Files:"));
        let license = para
            .lines()
            .find_map(|l| l.strip_prefix("License:"))
            .map(str::trim)
            .filter(|l| !l.is_empty());
        if let (true, Some(l)) = (has_files, license) {
            let e = expression(l);
            if !found.contains(&e) {
                found.push(e);
            }
        }
    }
    if found.is_empty() {
        return (
            "NOASSERTION".into(),
            "its DEP-5 copyright file has no Files paragraph with a License".into(),
        );
    }
    (
        found.join(" AND "),
        "from the License fields of the Files paragraphs of /usr/share/doc/PKG/copyright \
         (DEP-5)"
            .into(),
    )
}

/// `2024-01-01T00:00:00Z` for seconds since 1970.
pub fn iso8601(epoch: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(epoch);
    humantime::format_rfc3339_seconds(t).to_string()
}

fn spdx_id(package: &str) -> String {
    format!("SPDXRef-Package-deb-{}", idstring(package))
}

/// The SPDX 2.3 document for an image. `namespace_seed` makes the document namespace unique
/// per content (the lock's digest); `epoch` is the image time (reproducible).
pub fn document(image_name: &str, packages: &[Package], epoch: u64, namespace_seed: &str) -> Value {
    let pkgs: Vec<Value> = packages
        .iter()
        .map(|p| {
            let l = &p.locked;
            json!({
                "SPDXID": spdx_id(&l.package),
                "name": l.package,
                "versionInfo": l.version,
                "supplier": "Organization: Debian",
                "downloadLocation": "NOASSERTION",
                "filesAnalyzed": false,
                "checksums": [{ "algorithm": "SHA256", "checksumValue": l.sha256 }],
                "sourceInfo": format!("built from the Debian source package {}", l.source),
                "licenseConcluded": "NOASSERTION",
                "licenseDeclared": p.license,
                "licenseComments": p.license_comment,
                "copyrightText": "NOASSERTION",
                "externalRefs": [{
                    "referenceCategory": "PACKAGE-MANAGER",
                    "referenceType": "purl",
                    "referenceLocator": format!(
                        "pkg:deb/debian/{}@{}?arch={}&distro=debian-12",
                        l.package,
                        l.version.replace(':', "%3A").replace('+', "%2B"),
                        l.architecture
                    )
                }]
            })
        })
        .collect();
    let relationships: Vec<Value> = packages
        .iter()
        .map(|p| {
            json!({
                "spdxElementId": "SPDXRef-DOCUMENT",
                "relationshipType": "DESCRIBES",
                "relatedSpdxElement": spdx_id(&p.locked.package)
            })
        })
        .collect();
    json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": format!("appliance image {image_name}"),
        "documentNamespace": format!("https://appliances.invalid/spdx/{image_name}-{namespace_seed}"),
        "creationInfo": {
            "created": iso8601(epoch),
            "creators": [format!("Tool: build-image-{}", env!("CARGO_PKG_VERSION"))]
        },
        "packages": pkgs,
        "relationships": relationships
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(1_704_067_200), "2024-01-01T00:00:00Z");
        assert_eq!(iso8601(951_782_400 + 3661), "2000-02-29T01:01:01Z");
    }

    #[test]
    fn dep5_licences() {
        let text = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
                    \nFiles: *\nCopyright: x\nLicense: BSD-3-clause\n\nFiles: a/*\nLicense: GPL-2+ or \
                    Expat\n text\n\nLicense: BSD-3-clause\n The text\n";
        let (l, _) = license_of(Some(text));
        assert_eq!(l, "BSD-3-Clause AND (GPL-2.0-or-later OR MIT)");
        assert_eq!(license_of(Some("This is free software")).0, "NOASSERTION");
        assert_eq!(license_of(None).0, "NOASSERTION");
        assert_eq!(expression("Odd Licence_1"), "LicenseRef-Odd-Licence-1");
        assert_eq!(expression("GPL-2.0+"), "GPL-2.0-or-later");
        assert_eq!(expression("LGPL-2.1"), "LGPL-2.1-only");
        assert_eq!(
            expression("GPL-2+ or AFL-2.1, and MIT"),
            "((GPL-2.0-or-later OR AFL-2.1) AND MIT)"
        );
        assert_eq!(
            expression("GPL-2+ with OpenSSL exception"),
            "LicenseRef-GPL-2--with-OpenSSL-exception"
        );
    }
}
