//! The digest an image is signed by: one SHA-256 over the root image and its manifest
//! together, so neither can be swapped or changed without the other failing to verify.
//!
//! `SHA-256("appliance-image-v1\0" ‖ u64-le(image length) ‖ image ‖ manifest)`; the length
//! fixes where the image ends. What a signature (minisign, `<image>.minisig`) signs is the
//! line [`signed_text`], `appliance-image-v1 sha256:<hex>\n`. Pure: the callers hand the
//! bytes in (any `Read`).

use sha2::{Digest as _, Sha256};
use std::fmt;
use std::io::Read;

/// Where an image's signature is: `<image>` + this.
pub const SIGNATURE_SUFFIX: &str = ".minisig";

const DOMAIN: &[u8] = b"appliance-image-v1\0";

/// An image's digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageDigest(pub [u8; 32]);

impl fmt::Display for ImageDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sha256:")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// The digest of an image of `image_len` bytes read from `image`, and its manifest's bytes.
/// A reader that gives more or fewer bytes than `image_len` is an error (the file changed
/// while it was read).
pub fn digest(
    mut image: impl Read,
    image_len: u64,
    manifest: &[u8],
) -> std::io::Result<ImageDigest> {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update(image_len.to_le_bytes());
    let mut buf = vec![0u8; 1 << 16];
    let mut total: u64 = 0;
    loop {
        let n = image.read(&mut buf)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        h.update(&buf[..n]);
    }
    if total != image_len {
        return Err(std::io::Error::other(format!(
            "the image has {total} bytes, {image_len} were expected (it changed while read)"
        )));
    }
    h.update(manifest);
    Ok(ImageDigest(h.finalize().into()))
}

/// The text a signature signs.
pub fn signed_text(d: &ImageDigest) -> String {
    format!("appliance-image-v1 {d}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_digest_over_both() {
        let d = digest(&b"image"[..], 5, b"{}").unwrap();
        assert_eq!(d, digest(&b"image"[..], 5, b"{}").unwrap());
        // Moving a byte from the image to the manifest changes the digest.
        assert_ne!(d, digest(&b"imag"[..], 4, b"e{}").unwrap());
        assert_ne!(d, digest(&b"image"[..], 5, b"{ }").unwrap());
        assert!(digest(&b"image"[..], 6, b"{}").is_err());
        let t = signed_text(&d);
        assert!(
            t.starts_with("appliance-image-v1 sha256:") && t.len() == 26 + 64 + 1,
            "{t}"
        );
    }
}
