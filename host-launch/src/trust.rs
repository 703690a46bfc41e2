//! Which images this host boots: the trust policy and the check of an image's signature
//! before every launch (`run`, `start`, `upgrade`; `check` shows the verdict).
//!
//! The policy is `/etc/host-launch/trust.json` (or the file `$HOST_LAUNCH_TRUST` names):
//!
//! ```json
//! { "policy": "require", "keys": ["keys/builder.pub"] }
//! ```
//!
//! `keys` are minisign public key files (relative to the policy's directory), as
//! `build-image --new-key` writes them. `"require"`: an image boots only with a signature
//! (`<image>.minisig`) by one of those keys over the digest of the image and its manifest
//! together ([`appliance::signed`]). `"allow-unsigned"`: an image without a signature boots,
//! one with a signature must verify. Without a policy file nothing is checked (as before
//! signatures existed); `check` says so. Every refusal is [`Kind::Invalid`](crate::Kind)
//! (exit 120) and names the file and the fix.

use crate::error::{Error, Result};
use appliance::signed::{self, ImageDigest};
use minisign_verify::{PublicKey, Signature};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Where the policy is unless `HOST_LAUNCH_TRUST` names another file.
pub const DEFAULT_POLICY: &str = "/etc/host-launch/trust.json";

/// A signature or key file bigger than this is not one (they are about 300 bytes).
const MAX_SMALL_FILE: u64 = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    Require,
    AllowUnsigned,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    policy: Policy,
    #[serde(default)]
    keys: Vec<String>,
}

/// The host's trust: the policy and its keys (by file, for messages).
#[derive(Debug)]
pub struct Trust {
    pub file: PathBuf,
    pub policy: Policy,
    pub keys: Vec<(PathBuf, PublicKey)>,
}

/// What the check found about an image that may boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Signed by this trusted key file.
    Signed(PathBuf),
    /// No signature, and the policy allows that.
    Unsigned,
    /// No policy on this host: not checked.
    NoPolicy,
}

/// `$HOST_LAUNCH_TRUST`, else [`DEFAULT_POLICY`].
pub fn policy_path() -> PathBuf {
    std::env::var_os("HOST_LAUNCH_TRUST")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_POLICY))
}

fn read_small(path: &Path, what: &str) -> Result<String> {
    let meta = std::fs::metadata(path)
        .map_err(|e| Error::invalid(format!("{}: cannot read the {what}: {e}", path.display())))?;
    if meta.len() > MAX_SMALL_FILE {
        return Err(Error::invalid(format!(
            "{}: {} bytes is too big for a {what}",
            path.display(),
            meta.len()
        )));
    }
    std::fs::read_to_string(path)
        .map_err(|e| Error::invalid(format!("{}: cannot read the {what}: {e}", path.display())))
}

/// The host's trust policy, or `None` when there is no policy file.
pub fn load() -> Result<Option<Trust>> {
    let file = policy_path();
    if !file.exists() {
        return Ok(None);
    }
    let text = std::fs::read(&file)
        .map_err(|e| Error::invalid(format!("{}: cannot read: {e}", file.display())))?;
    let value = contract::json::parse_value(&text)
        .map_err(|e| Error::invalid(format!("{}: {e}", file.display())))?;
    let p: PolicyFile = serde_path_to_error::deserialize(value).map_err(|e| {
        Error::invalid(format!(
            "{}: {}: {} (expected {{\"policy\": \"require\" | \"allow-unsigned\", \"keys\": \
             [\"FILE.pub\", ...]}})",
            file.display(),
            e.path(),
            e.inner()
        ))
    })?;
    let base = file.parent().unwrap_or(Path::new("/")).to_path_buf();
    let mut keys = Vec::new();
    for (i, k) in p.keys.iter().enumerate() {
        let path = base.join(k);
        let text = read_small(&path, "public key")
            .map_err(|e| e.context(format!("{}: keys[{i}]", file.display())))?;
        let key = PublicKey::decode(&text)
            .or_else(|_| PublicKey::from_base64(text.trim()))
            .map_err(|e| {
                Error::invalid(format!(
                    "{}: keys[{i}]: {} is not a minisign public key ({e}); give the .pub file \
                     `build-image --new-key` wrote",
                    file.display(),
                    path.display()
                ))
            })?;
        keys.push((path, key));
    }
    if p.policy == Policy::Require && keys.is_empty() {
        return Err(Error::invalid(format!(
            "{}: keys: \"require\" with no keys refuses every image; list the builders' public \
             key files",
            file.display()
        )));
    }
    Ok(Some(Trust {
        file,
        policy: p.policy,
        keys,
    }))
}

/// The cache of image digests in the state base ([`crate::identity_cache`]).
pub const DIGEST_CACHE: &str = ".image-digests.json";

/// The digest of an image and its manifest (what a signature signs): hashed once per pair of
/// files, then taken from the cache while both are the files that were hashed, so a start
/// under a trust policy does not read the whole image (twice: `start` and its launcher).
pub fn digest(image: &Path, manifest: &Path) -> Result<ImageDigest> {
    digest_cached(
        image,
        manifest,
        &crate::state::base_dir(),
        crate::identity_cache::SETTLED,
    )
}

/// [`digest`] with its cache in `cache_dir`, stored only for files that changed `settled` or
/// longer ago.
fn digest_cached(
    image: &Path,
    manifest: &Path,
    cache_dir: &Path,
    settled: std::time::Duration,
) -> Result<ImageDigest> {
    let mut failed = None;
    let hex = crate::identity_cache::cached_after(
        &cache_dir.join(DIGEST_CACHE),
        &[image, manifest],
        settled,
        || match hash(image, manifest) {
            Ok(d) => Some(d.to_string()),
            Err(e) => {
                failed = Some(e);
                None
            }
        },
    );
    if let Some(e) = failed {
        return Err(e);
    }
    match hex.as_deref().and_then(parse_digest) {
        Some(d) => Ok(d),
        None => hash(image, manifest),
    }
}

/// `sha256:` and 64 hex digits, as [`ImageDigest`] prints itself.
fn parse_digest(s: &str) -> Option<ImageDigest> {
    let hex = s.strip_prefix("sha256:")?;
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(ImageDigest(out))
}

/// Hashes the image and its manifest.
fn hash(image: &Path, manifest: &Path) -> Result<ImageDigest> {
    let f = std::fs::File::open(image)
        .map_err(|e| Error::invalid(format!("{}: cannot read the image: {e}", image.display())))?;
    let len = f
        .metadata()
        .map_err(|e| Error::invalid(format!("{}: {e}", image.display())))?
        .len();
    let m = std::fs::read(manifest)
        .map_err(|e| Error::invalid(format!("{}: cannot read: {e}", manifest.display())))?;
    signed::digest(f, len, &m).map_err(|e| Error::invalid(format!("{}: {e}", image.display())))
}

/// `<image>.minisig`.
pub fn signature_path(image: &Path) -> PathBuf {
    let mut s = image.as_os_str().to_owned();
    s.push(signed::SIGNATURE_SUFFIX);
    PathBuf::from(s)
}

/// Checks an image and its manifest against the host's policy: `Ok` when it may boot. Without
/// a policy nothing is read: hashing the whole image would only slow every start.
pub fn check(image: &Path, manifest: &Path) -> Result<Verdict> {
    let Some(trust) = load()? else {
        return Ok(Verdict::NoPolicy);
    };
    trust.verify(image, manifest, &digest(image, manifest)?)
}

impl Trust {
    /// The verdict for an image whose digest is `d`, or the refusal.
    pub fn verify(&self, image: &Path, manifest: &Path, d: &ImageDigest) -> Result<Verdict> {
        let sig_path = signature_path(image);
        if !sig_path.exists() {
            return match self.policy {
                Policy::AllowUnsigned => Ok(Verdict::Unsigned),
                Policy::Require => Err(Error::invalid(format!(
                    "{}: not signed (no {}), and the trust policy {} requires signed images; \
                     sign it with `build-image --sign-key KEY`, or set \"policy\": \
                     \"allow-unsigned\" there",
                    image.display(),
                    sig_path.display(),
                    self.file.display()
                ))),
            };
        }
        let text = read_small(&sig_path, "signature")?;
        let sig = Signature::decode(&text).map_err(|e| {
            Error::invalid(format!(
                "{}: not a minisign signature ({e}); sign the image again with `build-image \
                 --sign-key KEY`",
                sig_path.display()
            ))
        })?;
        let message = signed::signed_text(d);
        let mut key_matched = false;
        for (path, key) in &self.keys {
            match key.verify(message.as_bytes(), &sig, false) {
                Ok(()) => return Ok(Verdict::Signed(path.clone())),
                Err(minisign_verify::Error::UnexpectedKeyId) => {}
                Err(_) => key_matched = true,
            }
        }
        if key_matched {
            Err(Error::invalid(format!(
                "{} or its manifest {} changed since they were signed: {} does not match their \
                 digest {d}; rebuild and sign the image again, or put back the files that were \
                 signed",
                image.display(),
                manifest.display(),
                sig_path.display()
            )))
        } else {
            Err(Error::invalid(format!(
                "{}: signed by a key this host does not trust (none of the keys in {}); add \
                 the builder's public key to its \"keys\" if you trust it",
                sig_path.display(),
                self.file.display()
            )))
        }
    }
}

/// One line for `check` and `status`: the digest and what the policy made of it.
/// The image's identity and signature state as separate facts, for `--format json`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Facts {
    /// `sha256:HEX` of the image and manifest (see `appliance::signed`), when readable.
    pub digest: Option<String>,
    /// `verified`, `unsigned` (allowed by the policy), `not_checked` (no policy),
    /// `refused` or `unknown` (the image could not be read).
    pub signature: &'static str,
    /// The key that verified it, or why it was refused or unknown.
    pub signature_detail: Option<String>,
}

/// [`describe`]'s facts, one field each.
pub fn facts(image: &Path, manifest: &Path) -> Facts {
    let d = match digest(image, manifest) {
        Ok(d) => d,
        Err(e) => {
            return Facts {
                digest: None,
                signature: "unknown",
                signature_detail: Some(e.to_string()),
            }
        }
    };
    let verdict = load().and_then(|trust| match trust {
        Some(t) => t.verify(image, manifest, &d),
        None => Ok(Verdict::NoPolicy),
    });
    let (signature, signature_detail) = match verdict {
        Ok(Verdict::Signed(k)) => ("verified", Some(k.display().to_string())),
        Ok(Verdict::Unsigned) => ("unsigned", None),
        Ok(Verdict::NoPolicy) => ("not_checked", None),
        Err(e) => ("refused", Some(e.to_string())),
    };
    Facts {
        digest: Some(d.to_string()),
        signature,
        signature_detail,
    }
}

pub fn describe(image: &Path, manifest: &Path) -> String {
    let d = match digest(image, manifest) {
        Ok(d) => d,
        Err(e) => return format!("unknown ({e})"),
    };
    let verdict = load().and_then(|trust| match trust {
        Some(t) => t.verify(image, manifest, &d),
        None => Ok(Verdict::NoPolicy),
    });
    match verdict {
        Ok(Verdict::Signed(k)) => format!("{d} (signed, verified with {})", k.display()),
        Ok(Verdict::Unsigned) => {
            format!("{d} (unsigned; the trust policy allows unsigned images)")
        }
        Ok(Verdict::NoPolicy) => format!(
            "{d} (signature not checked: no trust policy {})",
            policy_path().display()
        ),
        Err(e) => format!("{d} (REFUSED: {e})"),
    }
}

#[cfg(test)]
mod digest_tests {
    use super::*;

    #[test]
    fn the_cached_digest_is_the_images_and_follows_a_change_in_place() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let (image, manifest) = (d.join("root.img"), d.join("root.img.manifest.json"));
        std::fs::write(&image, vec![7u8; 70_000]).unwrap();
        std::fs::write(&manifest, b"{}").unwrap();
        let first = digest_cached(&image, &manifest, d, std::time::Duration::ZERO).unwrap();
        assert_eq!(first, hash(&image, &manifest).unwrap());
        assert!(d.join(DIGEST_CACHE).is_file(), "nothing was cached");
        assert_eq!(
            digest_cached(&image, &manifest, d, std::time::Duration::ZERO).unwrap(),
            first
        );
        // One byte of the image changed in place, the size and the inode the same (after a
        // tick of the timestamps' clock).
        std::thread::sleep(std::time::Duration::from_millis(30));
        let mut bytes = std::fs::read(&image).unwrap();
        bytes[12_345] ^= 1;
        std::fs::write(&image, &bytes).unwrap();
        let changed = digest_cached(&image, &manifest, d, std::time::Duration::ZERO).unwrap();
        assert_ne!(changed, first, "a changed image kept its cached digest");
        assert_eq!(changed, hash(&image, &manifest).unwrap());
        // And the manifest alone.
        std::thread::sleep(std::time::Duration::from_millis(30));
        std::fs::write(&manifest, b"[]").unwrap();
        assert_eq!(
            digest_cached(&image, &manifest, d, std::time::Duration::ZERO).unwrap(),
            hash(&image, &manifest).unwrap()
        );
    }

    #[test]
    fn a_forged_cache_entry_for_other_files_is_not_taken() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let (image, manifest) = (d.join("root.img"), d.join("m.json"));
        std::fs::write(&image, b"image").unwrap();
        std::fs::write(&manifest, b"{}").unwrap();
        std::fs::write(
            d.join(DIGEST_CACHE),
            b"[{\"ids\": [], \"value\": \"sha256:00\"}]",
        )
        .unwrap();
        assert_eq!(
            digest_cached(&image, &manifest, d, std::time::Duration::ZERO).unwrap(),
            hash(&image, &manifest).unwrap()
        );
        assert_eq!(parse_digest("sha256:00"), None);
        let d0 = hash(&image, &manifest).unwrap();
        assert_eq!(parse_digest(&d0.to_string()), Some(d0));
    }
}
