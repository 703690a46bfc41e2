//! One backup as one file: a gzip-compressed tar of a snapshot's disk copies (sparse
//! entries: holes take no room), the appliance's spec and its image digest, with a
//! `ARCHIVE.sha256` beside it (`sha256sum -c` reads it). Reading an archive back trusts
//! nothing in it before its checksum matches, and even then bounds what it reads: the disks
//! are a guest's bytes.

use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The archive's names for what it holds besides the disks (`diskN.img`).
pub const SPEC_ENTRY: &str = "spec.json";
pub const IMAGE_DIGEST_ENTRY: &str = "image-digest";

/// The most of the spec and digest entries read back (they are small text files).
const MAX_SMALL_ENTRY: u64 = 1 << 20;

/// Why an archive could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("{path}: {what}: {source}")]
    Io {
        path: PathBuf,
        what: &'static str,
        source: std::io::Error,
    },
    #[error(
        "{archive}: the checksum does not match {sums} (archive {actual}, recorded {expected}); \
         the archive is damaged or was changed: restore from another backup"
    )]
    Mismatch {
        archive: PathBuf,
        sums: PathBuf,
        actual: String,
        expected: String,
    },
    #[error("{sums}: no checksum line for {archive}; it should read `HEX  NAME` as `sha256sum` writes it")]
    NoChecksum { archive: PathBuf, sums: PathBuf },
    #[error(
        "--disk: the device holds {room} bytes, {name} of {archive} is {size}; give a device at \
         least that large (or a file)"
    )]
    TooSmall {
        archive: PathBuf,
        name: String,
        size: u64,
        room: u64,
    },
    #[error(
        "{archive}: --name: no disk '{name}' in the archive (it holds: {held}); name one of those"
    )]
    NoDisk {
        archive: PathBuf,
        name: String,
        held: String,
    },
}

type Result<T> = std::result::Result<T, ArchiveError>;

fn io<'a>(path: &'a Path, what: &'static str) -> impl FnOnce(std::io::Error) -> ArchiveError + 'a {
    move |source| ArchiveError::Io {
        path: path.to_path_buf(),
        what,
        source,
    }
}

/// What goes into an archive.
#[derive(Debug)]
pub struct Contents<'a> {
    /// (name in the archive, file) for each disk copy.
    pub disks: Vec<(String, PathBuf)>,
    pub spec: &'a [u8],
    pub image_digest: &'a str,
}

/// `ARCHIVE.sha256`.
pub fn checksum_path(archive: &Path) -> PathBuf {
    let mut s = archive.as_os_str().to_owned();
    s.push(".sha256");
    PathBuf::from(s)
}

/// Writes the archive (via a temporary name, renamed when complete) and its checksum file;
/// the checksum.
pub fn write(archive: &Path, c: &Contents) -> Result<String> {
    let tmp = archive.with_extension("partial");
    let out = File::create(&tmp).map_err(io(&tmp, "creating"))?;
    let written = stream(out, c).and_then(|(out, hex)| out.sync_all().map(|()| hex));
    let hex = written.map_err(|e| {
        // A half-written archive is nobody's backup.
        let _ = std::fs::remove_file(&tmp);
        io(&tmp, "writing")(e)
    })?;
    std::fs::rename(&tmp, archive).map_err(io(archive, "renaming the finished archive to"))?;
    let sums = checksum_path(archive);
    let base = archive.file_name().unwrap_or_default().to_string_lossy();
    std::fs::write(&sums, format!("{hex}  {base}\n")).map_err(io(&sums, "writing"))?;
    Ok(hex)
}

/// Writes the archive to `out` (a file, a command's stdin): `out` back and the checksum of
/// what was written.
pub fn stream<W: Write>(out: W, c: &Contents) -> std::io::Result<(W, String)> {
    let hashing = HashWriter {
        inner: out,
        hash: Sha256::new(),
    };
    let gz = flate2::write::GzEncoder::new(hashing, flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    tar.sparse(true);
    tar.mode(tar::HeaderMode::Deterministic);
    for (name, file) in &c.disks {
        tar.append_path_with_name(file, name).map_err(|e| {
            std::io::Error::new(e.kind(), format!("archiving {}: {e}", file.display()))
        })?;
    }
    append_bytes(&mut tar, SPEC_ENTRY, c.spec)?;
    append_bytes(&mut tar, IMAGE_DIGEST_ENTRY, c.image_digest.as_bytes())?;
    let hashing = tar.into_inner()?.finish()?;
    Ok((hashing.inner, hex(&hashing.hash.finalize())))
}

fn append_bytes<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    data: &[u8],
) -> std::io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o600);
    h.set_cksum();
    tar.append_data(&mut h, name, data)
}

/// Checks the archive against `ARCHIVE.sha256` before anything of it is used.
pub fn verify(archive: &Path) -> Result<()> {
    let sums = checksum_path(archive);
    let mut text = String::new();
    File::open(&sums)
        .map_err(io(
            &sums,
            "reading the checksum file (made beside each backup)",
        ))?
        .take(4096)
        .read_to_string(&mut text)
        .map_err(io(&sums, "reading"))?;
    let expected = text
        .split_whitespace()
        .next()
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| ArchiveError::NoChecksum {
            archive: archive.to_path_buf(),
            sums: sums.clone(),
        })?
        .to_ascii_lowercase();
    let mut f = File::open(archive).map_err(io(archive, "opening"))?;
    let mut hashing = HashWriter {
        inner: std::io::sink(),
        hash: Sha256::new(),
    };
    std::io::copy(&mut f, &mut hashing).map_err(io(archive, "reading"))?;
    let actual = hex(&hashing.hash.finalize());
    if actual != expected {
        return Err(ArchiveError::Mismatch {
            archive: archive.to_path_buf(),
            sums,
            actual,
            expected,
        });
    }
    Ok(())
}

/// The disk names an archive holds (`diskN.img`), in order.
pub fn disk_names(archive: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    let mut t = open(archive)?;
    for e in t.entries().map_err(io(archive, "reading"))? {
        let e = e.map_err(io(archive, "reading"))?;
        let p = e
            .path()
            .map_err(io(archive, "reading"))?
            .to_string_lossy()
            .into_owned();
        if is_disk_name(&p) {
            names.push(p);
        }
    }
    Ok(names)
}

/// A disk entry's name: `diskN.img`, nothing else (no path from the archive is ever used
/// as a path on the host).
pub fn is_disk_name(p: &str) -> bool {
    p.strip_prefix("disk")
        .and_then(|r| r.strip_suffix(".img"))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Writes the disk `name` of the archive into `target` (an open file or block device),
/// leaving all-zero blocks of a regular file as holes; the bytes written.
pub fn extract_disk(archive: &Path, name: &str, target: &mut File, is_file: bool) -> Result<u64> {
    let mut t = open(archive)?;
    let mut held = Vec::new();
    for e in t.entries().map_err(io(archive, "reading"))? {
        let mut e = e.map_err(io(archive, "reading"))?;
        let p = e
            .path()
            .map_err(io(archive, "reading"))?
            .to_string_lossy()
            .into_owned();
        if p != name {
            if is_disk_name(&p) {
                held.push(p);
            }
            continue;
        }
        let size = e.size();
        if !is_file {
            let room = target
                .seek(SeekFrom::End(0))
                .map_err(io(archive, "sizing the device for"))?;
            target
                .seek(SeekFrom::Start(0))
                .map_err(io(archive, "restoring from"))?;
            if room < size {
                return Err(ArchiveError::TooSmall {
                    archive: archive.to_path_buf(),
                    name: name.to_string(),
                    size,
                    room,
                });
            }
        }
        return write_blocks(&mut e, target, size, is_file).map_err(io(archive, "restoring from"));
    }
    Err(ArchiveError::NoDisk {
        archive: archive.to_path_buf(),
        name: name.to_string(),
        held: if held.is_empty() {
            "no disk".into()
        } else {
            held.join(", ")
        },
    })
}

fn write_blocks(
    from: &mut impl Read,
    to: &mut File,
    size: u64,
    is_file: bool,
) -> std::io::Result<u64> {
    if is_file {
        // Emptied, then `size` of hole: the copy writes only what is not zero.
        to.set_len(0)?;
        to.set_len(size)?;
        crate::disk_copy::write_nonzero(from, to, size)?;
    } else {
        let copied = std::io::copy(&mut from.take(size), to)?;
        if copied < size {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
    to.sync_all()?;
    Ok(size)
}

/// The spec the archive holds (bounded).
pub fn read_small(archive: &Path, name: &str) -> Result<Option<Vec<u8>>> {
    let mut t = open(archive)?;
    for e in t.entries().map_err(io(archive, "reading"))? {
        let e = e.map_err(io(archive, "reading"))?;
        if e.path().map_err(io(archive, "reading"))?.to_string_lossy() == name {
            let mut v = Vec::new();
            e.take(MAX_SMALL_ENTRY)
                .read_to_end(&mut v)
                .map_err(io(archive, "reading"))?;
            return Ok(Some(v));
        }
    }
    Ok(None)
}

fn open(archive: &Path) -> Result<tar::Archive<flate2::read::GzDecoder<std::io::BufReader<File>>>> {
    let f = File::open(archive).map_err(io(archive, "opening"))?;
    Ok(tar::Archive::new(flate2::read::GzDecoder::new(
        std::io::BufReader::new(f),
    )))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Hashes what passes through to `inner`.
struct HashWriter<W> {
    inner: W,
    hash: Sha256,
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
