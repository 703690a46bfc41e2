//! Copying a data disk for a snapshot with the cheapest method the host offers: a reflink
//! (FICLONE: the file system shares the blocks, copy-on-write) where the file system has
//! them, else a sparse copy (only the data extents, SEEK_DATA/SEEK_HOLE for a file; for a
//! block device the blocks that are not all zero). The host reads the guest's bytes as
//! bytes: it never mounts or parses them.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// How a disk was copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Reflink,
    SparseCopy,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Reflink => "reflink",
            Method::SparseCopy => "sparse copy",
        }
    }
}

/// Why a disk could not be copied.
#[derive(Debug, thiserror::Error)]
#[error("copying {from} to {to}: {source}")]
pub struct CopyError {
    pub from: String,
    pub to: String,
    pub source: std::io::Error,
}

// include/uapi/linux/fs.h: _IOW(0x94, 9, int).
const FICLONE: libc::c_ulong = 0x4004_9409;

/// Copies `from` to the new file `to` (root's, 0600); returns the method and the bytes.
pub fn copy(from: &Path, to: &Path) -> Result<(Method, u64), CopyError> {
    let fail = |source| CopyError {
        from: from.display().to_string(),
        to: to.display().to_string(),
        source,
    };
    let mut src = File::open(from).map_err(fail)?;
    let block = src.metadata().map_err(fail)?.file_type().is_block_device();
    let len = src.seek(SeekFrom::End(0)).map_err(fail)?;
    let mut dst = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(to)
        .map_err(fail)?;
    let result = (|| {
        if !block && reflink(&src, &dst).is_ok() {
            return Ok(Method::Reflink);
        }
        dst.set_len(len)?;
        if block {
            copy_nonzero(&mut src, &mut dst, len)?;
        } else {
            copy_extents(&mut src, &mut dst, len)?;
        }
        dst.sync_all()?;
        Ok(Method::SparseCopy)
    })();
    match result {
        Ok(m) => Ok((m, len)),
        Err(e) => {
            let _ = std::fs::remove_file(to);
            Err(fail(e))
        }
    }
}

fn reflink(src: &File, dst: &File) -> std::io::Result<()> {
    // SAFETY: FICLONE takes the source descriptor as its argument and keeps nothing.
    let rc = unsafe { libc::ioctl(dst.as_raw_fd(), FICLONE as _, src.as_raw_fd()) };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

const CHUNK: usize = 1 << 20;

/// Copies the data extents of a file (holes stay holes in `dst`, already `len` long).
fn copy_extents(src: &mut File, dst: &mut File, len: u64) -> std::io::Result<()> {
    let mut pos = 0u64;
    let mut buf = vec![0u8; CHUNK];
    while pos < len {
        let Some(data) = seek(src, pos, libc::SEEK_DATA)? else {
            break;
        };
        let hole = seek(src, data, libc::SEEK_HOLE)?.unwrap_or(len).min(len);
        copy_range(src, dst, data, hole, &mut buf)?;
        pos = hole;
    }
    Ok(())
}

/// `lseek` with SEEK_DATA or SEEK_HOLE; `None` past the last data (ENXIO).
fn seek(f: &File, from: u64, whence: libc::c_int) -> std::io::Result<Option<u64>> {
    let off = libc::off_t::try_from(from).map_err(std::io::Error::other)?;
    // SAFETY: lseek on a descriptor we own.
    let r = unsafe { libc::lseek(f.as_raw_fd(), off, whence) };
    if r < 0 {
        let e = std::io::Error::last_os_error();
        return if e.raw_os_error() == Some(libc::ENXIO) {
            Ok(None)
        } else {
            Err(e)
        };
    }
    Ok(u64::try_from(r).ok())
}

fn copy_range(
    src: &mut File,
    dst: &mut File,
    from: u64,
    to: u64,
    buf: &mut [u8],
) -> std::io::Result<()> {
    src.seek(SeekFrom::Start(from))?;
    dst.seek(SeekFrom::Start(from))?;
    let mut left = to - from;
    while left > 0 {
        let n = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
        let chunk = buf.get_mut(..n).unwrap_or_default();
        src.read_exact(chunk)?;
        dst.write_all(chunk)?;
        left -= n as u64;
    }
    Ok(())
}

/// Copies a block device's blocks that are not all zero (the rest stay holes).
fn copy_nonzero(src: &mut File, dst: &mut File, len: u64) -> std::io::Result<()> {
    src.seek(SeekFrom::Start(0))?;
    write_nonzero(src, dst, len)
}

/// Writes `len` bytes read from `from` into `dst`, a regular file already `len` long and all
/// hole: only the 4 KiB blocks that are not all zero, so the rest stay holes (a snapshot's
/// copy, a restored backup).
pub fn write_nonzero(from: &mut impl Read, dst: &mut File, len: u64) -> std::io::Result<()> {
    let mut buf = vec![0u8; CHUNK];
    let mut pos = 0u64;
    while pos < len {
        let n = usize::try_from((len - pos).min(CHUNK as u64)).unwrap_or(CHUNK);
        let chunk = buf.get_mut(..n).unwrap_or_default();
        from.read_exact(chunk)?;
        for (i, block) in chunk.chunks(4096).enumerate() {
            if block.iter().any(|b| *b != 0) {
                dst.seek(SeekFrom::Start(pos + (i * 4096) as u64))?;
                dst.write_all(block)?;
            }
        }
        pos += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn a_sparse_file_is_copied_byte_for_byte_and_stays_sparse() {
        let dir = std::env::temp_dir().join(format!("hl-copy-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let src = dir.join("src.img");
        let mut f = File::create(&src).unwrap();
        f.set_len(32 << 20).unwrap();
        f.seek(SeekFrom::Start(5 << 20)).unwrap();
        f.write_all(&[7u8; 10000]).unwrap();
        f.seek(SeekFrom::Start(30 << 20)).unwrap();
        f.write_all(b"tail").unwrap();
        drop(f);
        let dst = dir.join("dst.img");
        let (method, len) = copy(&src, &dst).unwrap();
        assert_eq!(len, 32 << 20);
        assert_eq!(std::fs::read(&src).unwrap(), std::fs::read(&dst).unwrap());
        if method == Method::SparseCopy {
            assert!(std::fs::metadata(&dst).unwrap().blocks() * 512 < 1 << 20);
        }
        // Never over an existing file.
        assert!(copy(&src, &dst).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
