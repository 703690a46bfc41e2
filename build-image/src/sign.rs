//! Signing an image: one minisign signature (`<image>.minisig`) over the digest of the image
//! and its manifest together ([`appliance::signed`]). minisign because its format is small,
//! well known (`minisign -V` checks it too) and has well-kept Rust crates on both sides:
//! `minisign` here, `minisign-verify` in host-launch. The secret key is a minisign key file,
//! unencrypted (`build-image --new-key PREFIX` writes one and its public key) or encrypted
//! with the password in `$IMAGE_SIGN_PASSWORD`.

use appliance::signed::{self, ImageDigest};
use rootfs::Error;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// `<image>.minisig`.
pub fn signature_path(image: &Path) -> PathBuf {
    let mut s = image.as_os_str().to_owned();
    s.push(signed::SIGNATURE_SUFFIX);
    PathBuf::from(s)
}

/// The digest of an image file and its manifest file.
pub fn image_digest(image: &Path, manifest: &Path) -> Result<ImageDigest, Error> {
    let f =
        std::fs::File::open(image).map_err(|e| Error::one(format!("{}: {e}", image.display())))?;
    let len = f
        .metadata()
        .map_err(|e| Error::one(format!("{}: {e}", image.display())))?
        .len();
    let m =
        std::fs::read(manifest).map_err(|e| Error::one(format!("{}: {e}", manifest.display())))?;
    signed::digest(f, len, &m).map_err(|e| Error::one(format!("{}: {e}", image.display())))
}

/// Writes `PREFIX.key` (secret, mode 0600, unencrypted) and `PREFIX.pub`; refuses to
/// overwrite either.
pub fn new_key(prefix: &Path) -> Result<(PathBuf, PathBuf), Error> {
    let with = |ext: &str| {
        let mut s = prefix.as_os_str().to_owned();
        s.push(ext);
        PathBuf::from(s)
    };
    let (sk_path, pk_path) = (with(".key"), with(".pub"));
    // "Encrypted" with an empty password: unencrypted, but with the checksum a loader checks
    // (the crate's unencrypted generator leaves it zero).
    let kp = minisign::KeyPair::generate_encrypted_keypair(Some(String::new()))
        .map_err(|e| Error::one(format!("generating a key: {e}")))?;
    let sk_text = kp
        .sk
        .to_box(Some("image-builder signing key"))
        .map_err(|e| Error::one(format!("encoding the key: {e}")))?
        .into_string();
    let pk_text = kp
        .pk
        .to_box()
        .map_err(|e| Error::one(format!("encoding the key: {e}")))?
        .into_string();
    for (path, text, mode) in [(&sk_path, sk_text, 0o600), (&pk_path, pk_text, 0o644)] {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .map_err(|e| {
                Error::one(format!("{}: {e} (it is never overwritten)", path.display()))
            })?;
        f.write_all(text.as_bytes())
            .map_err(|e| Error::one(format!("{}: {e}", path.display())))?;
    }
    Ok((sk_path, pk_path))
}

/// Signs `image` with its `manifest` using the secret key file `key`; writes and returns
/// `<image>.minisig`.
pub fn sign(image: &Path, manifest: &Path, key: &Path) -> Result<(ImageDigest, PathBuf), Error> {
    let text = std::fs::read_to_string(key)
        .map_err(|e| Error::one(format!("--sign-key {}: cannot read it: {e}", key.display())))?;
    let sk = minisign::SecretKeyBox::from_string(&text)
        // Never a prompt (a build has no terminal): the password is $IMAGE_SIGN_PASSWORD, or
        // none for an unencrypted key.
        .and_then(|b| {
            b.into_secret_key(Some(
                std::env::var("IMAGE_SIGN_PASSWORD").unwrap_or_default(),
            ))
        })
        .map_err(|e| {
            Error::one(format!(
                "--sign-key {}: not a minisign secret key, or IMAGE_SIGN_PASSWORD is not its \
                 password ({e}); make an unencrypted one with `build-image --new-key PREFIX`",
                key.display()
            ))
        })?;
    let digest = image_digest(image, manifest)?;
    let name = image
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let trusted = format!("image {name} {digest}");
    let sig = minisign::sign(
        None,
        &sk,
        signed::signed_text(&digest).as_bytes(),
        Some(&trusted),
        Some("signature of an appliance image and its manifest"),
    )
    .map_err(|e| Error::one(format!("signing {}: {e}", image.display())))?;
    let path = signature_path(image);
    std::fs::write(&path, sig.into_string())
        .map_err(|e| Error::one(format!("writing {}: {e}", path.display())))?;
    Ok((digest, path))
}
