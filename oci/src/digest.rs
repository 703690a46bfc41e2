//! `sha256:<64 hex>` digests: parsed strictly (a digest names a file under `blobs/sha256/`,
//! so nothing but lowercase hex may reach a path) and computed while reading.

use crate::Error;
use sha2::{Digest as _, Sha256};
use std::io::Read;

/// Why a text is not a digest; each holds the text, cut and escaped for messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("'{0}' is not a sha256 digest")]
    NotSha256(String),
    #[error("'{0}' is not sha256: and 64 lowercase hex digits")]
    NotHex(String),
}

/// A sha256 digest, `sha256:` and 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest(String);

impl Digest {
    /// Parses `sha256:<hex>`; any other algorithm or form is refused.
    pub fn parse(s: &str) -> Result<Digest, DigestError> {
        let hex = s
            .strip_prefix("sha256:")
            .ok_or_else(|| DigestError::NotSha256(short(s)))?;
        if hex.len() != 64
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(DigestError::NotHex(short(s)));
        }
        Ok(Digest(s.to_string()))
    }

    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest::from_hasher(Sha256::new_with_prefix(bytes))
    }

    fn from_hasher(h: Sha256) -> Digest {
        let sum = h.finalize();
        let mut s = String::with_capacity(71);
        s.push_str("sha256:");
        for b in sum.iter() {
            s.push_str(&format!("{b:02x}"));
        }
        Digest(s)
    }

    /// The 64 hex digits.
    pub fn hex(&self) -> &str {
        &self.0[7..]
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Digest, D::Error> {
        let s = String::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// At most 80 characters of a hostile string, for messages.
fn short(s: &str) -> String {
    let s: String = s.chars().take(80).collect();
    s.escape_debug().to_string()
}

/// A reader that hashes and counts what passes through it, and refuses more than `limit`
/// bytes (a layer that decompresses without end).
pub struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    pub count: u64,
    limit: u64,
}

impl<R> std::fmt::Debug for Hashing<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hashing")
            .field("count", &self.count)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl<R: Read> Hashing<R> {
    pub fn new(inner: R, limit: u64) -> Hashing<R> {
        Hashing {
            inner,
            hasher: Sha256::new(),
            count: 0,
            limit,
        }
    }

    /// Reads what is left (a tar reader stops before the end padding), then the digest.
    pub fn finish(mut self) -> Result<(Digest, u64), Error> {
        std::io::copy(&mut self, &mut std::io::sink()).map_err(crate::io("reading to the end"))?;
        Ok((Digest::from_hasher(self.hasher), self.count))
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        if self.count > self.limit {
            return Err(std::io::Error::other(format!(
                "more than {} bytes; the image is too large for an appliance root",
                self.limit
            )));
        }
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_sha256_hex() {
        let ok = format!("sha256:{}", "a".repeat(64));
        assert_eq!(Digest::parse(&ok).unwrap().hex(), "a".repeat(64));
        for bad in [
            "sha512:aa".to_string(),
            format!("sha256:{}", "A".repeat(64)),
            format!("sha256:../{}", "a".repeat(61)),
            format!("sha256:{}", "a".repeat(63)),
        ] {
            assert!(Digest::parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn digest_of_empty() {
        assert_eq!(
            Digest::of(b"").hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let mut h = Hashing::new(&b"abc"[..], 10);
        let (d, n) = {
            let mut v = Vec::new();
            h.read_to_end(&mut v).unwrap();
            h.finish().unwrap()
        };
        assert_eq!((d, n), (Digest::of(b"abc"), 3));
        let mut h = Hashing::new(&b"abcdef"[..], 3);
        assert!(std::io::copy(&mut h, &mut std::io::sink()).is_err());
    }
}
