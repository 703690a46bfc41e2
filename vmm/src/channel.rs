//! Reading what a guest writes, with bounds: every byte from a guest is hostile.
//!
//! - [`LineSplitter`] splits a channel, fed as it arrives, into lines of at most a set length.
//!   A longer line is dropped and counted, never buffered: whatever the guest sends, it holds
//!   one line buffer.
//! - [`CappedLog`] appends to a file that never grows past its cap: when the next write would
//!   pass it, the file becomes `NAME.1` (replacing the older one) and a new one starts, so
//!   the newest bytes are kept and at most twice the cap is on disk.
//! - [`pump_console`] copies a console into a [`CappedLog`] on a thread.
//! - [`set_nonblocking`] and [`read_now`] read the status pipe between a launcher's other
//!   work (signals, deadlines), bounded per call so a flooding guest cannot starve them.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Default cap of a console log (and of its one rotated predecessor).
pub const DEFAULT_CONSOLE_CAP: u64 = 1 << 20;
/// Default cap of an events log.
pub const DEFAULT_EVENTS_CAP: u64 = 1 << 20;
/// Default longest status line accepted (guest-init's longest event is a few hundred bytes).
pub const DEFAULT_MAX_LINE: usize = 4096;

/// Counts of what was not kept, shared with whoever reports them.
#[derive(Debug, Default)]
pub struct Dropped {
    /// Status lines over the length bound.
    pub long_lines: AtomicU64,
    /// Bytes rotated out of a log (older than what is kept).
    pub rotated_bytes: AtomicU64,
}

impl Dropped {
    pub fn long_lines(&self) -> u64 {
        self.long_lines.load(Ordering::Relaxed)
    }
    pub fn rotated_bytes(&self) -> u64 {
        self.rotated_bytes.load(Ordering::Relaxed)
    }
}

/// Splits a byte stream, fed in pieces as it arrives, into bounded lines (without their
/// `\n`, a trailing `\r` removed).
#[derive(Debug)]
pub struct LineSplitter {
    max: usize,
    line: Vec<u8>,
    discarding: bool,
    dropped: Arc<Dropped>,
}

impl LineSplitter {
    pub fn new(max: usize, dropped: Arc<Dropped>) -> LineSplitter {
        LineSplitter {
            max,
            line: Vec::with_capacity(max.min(4096)),
            discarding: false,
            dropped,
        }
    }

    /// Feeds the next bytes of the stream; `each` gets every line they complete.
    pub fn feed(&mut self, mut bytes: &[u8], each: &mut impl FnMut(&[u8])) {
        while !bytes.is_empty() {
            let nl = bytes.iter().position(|b| *b == b'\n');
            let (part, rest) = match nl {
                Some(i) => (&bytes[..i], &bytes[i + 1..]),
                None => (bytes, &[][..]),
            };
            self.append(part);
            if nl.is_some() {
                self.complete(each);
            }
            bytes = rest;
        }
    }

    /// The end of the stream: a last line without `\n` counts too.
    pub fn finish(&mut self, each: &mut impl FnMut(&[u8])) {
        if self.discarding || !self.line.is_empty() {
            self.complete(each);
        }
    }

    fn append(&mut self, part: &[u8]) {
        if self.discarding {
            return;
        }
        if self.line.len() + part.len() > self.max {
            self.discarding = true;
            self.line.clear();
        } else {
            self.line.extend_from_slice(part);
        }
    }

    /// At a newline: the line, unless it was too long (then counted).
    fn complete(&mut self, each: &mut impl FnMut(&[u8])) {
        if std::mem::take(&mut self.discarding) {
            self.dropped.long_lines.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if self.line.last() == Some(&b'\r') {
            self.line.pop();
        }
        each(&self.line);
        self.line.clear();
    }
}

/// An append-only log file capped at `cap` bytes, rotating to `NAME.1`.
#[derive(Debug)]
pub struct CappedLog {
    path: PathBuf,
    file: File,
    size: u64,
    cap: u64,
    dropped: Arc<Dropped>,
}

/// The rotated predecessor of a log: `console.log` → `console.log.1`.
pub fn rotated(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".1");
    PathBuf::from(s)
}

fn open_private(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

impl CappedLog {
    /// Opens (creating, mode 0600) the log at `path`, continuing its size.
    pub fn open(path: &Path, cap: u64, dropped: Arc<Dropped>) -> std::io::Result<CappedLog> {
        let file = open_private(path)?;
        let size = file.metadata()?.len();
        Ok(CappedLog {
            path: path.to_path_buf(),
            file,
            size,
            cap: cap.max(1),
            dropped,
        })
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        let old = rotated(&self.path);
        if let Ok(m) = std::fs::metadata(&old) {
            self.dropped
                .rotated_bytes
                .fetch_add(m.len(), Ordering::Relaxed);
        }
        std::fs::rename(&self.path, &old)?;
        self.file = open_private(&self.path)?;
        self.size = 0;
        Ok(())
    }

    /// Appends `bytes`; of a write longer than the cap only its last `cap` bytes are kept.
    pub fn write(&mut self, mut bytes: &[u8]) -> std::io::Result<()> {
        let cap = usize::try_from(self.cap).unwrap_or(usize::MAX);
        if bytes.len() > cap {
            let cut = bytes.len() - cap;
            self.dropped
                .rotated_bytes
                .fetch_add(cut as u64, Ordering::Relaxed);
            bytes = &bytes[cut..];
        }
        if self.size + bytes.len() as u64 > self.cap {
            self.rotate()?;
        }
        self.file.write_all(bytes)?;
        self.size += bytes.len() as u64;
        Ok(())
    }
}

/// Makes `fd` (a status pipe's read end) non-blocking.
pub fn set_nonblocking(fd: &OwnedFd) -> std::io::Result<()> {
    // SAFETY: fcntl on a descriptor the caller owns, only adding O_NONBLOCK.
    let ok = unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        flags >= 0 && libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) == 0
    };
    if ok {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Reads what the non-blocking `fd` holds now (at most 1 MiB, so that signals and deadlines
/// are still seen while a guest floods it), split into bounded lines handed to `each`.
/// `false` once the pipe has ended (the last partial line is handed over then).
pub fn read_now(fd: &OwnedFd, split: &mut LineSplitter, each: &mut impl FnMut(&[u8])) -> bool {
    let mut buf = [0u8; 16384];
    for _ in 0..64 {
        // SAFETY: read into a buffer we own, within its length.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n > 0 {
            let n = usize::try_from(n).unwrap_or(0);
            split.feed(buf.get(..n).unwrap_or_default(), each);
            continue;
        }
        let e = std::io::Error::last_os_error();
        if n < 0 && matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EINTR)) {
            return true;
        }
        split.finish(each);
        return false;
    }
    true
}

/// Copies a console stream into `log` until end of stream, on a thread; also hands each
/// chunk to `tee` (the tests show consoles as they run).
pub fn pump_console(
    src: impl Read + Send + 'static,
    mut log: CappedLog,
    mut tee: impl FnMut(&[u8]) + Send + 'static,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut src = src;
        let mut chunk = vec![0u8; 16384];
        loop {
            match src.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    tee(&chunk[..n]);
                    let _ = log.write(&chunk[..n]);
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Splits `input` fed in pieces of `piece` bytes.
    fn lines(input: &[u8], max: usize) -> (Vec<String>, u64) {
        let mut all = None;
        for piece in [1, 3, 8192] {
            let dropped = Arc::new(Dropped::default());
            let mut split = LineSplitter::new(max, dropped.clone());
            let mut out = Vec::new();
            let mut each = |l: &[u8]| out.push(String::from_utf8_lossy(l).into_owned());
            for chunk in input.chunks(piece) {
                split.feed(chunk, &mut each);
            }
            split.finish(&mut each);
            let got = (out, dropped.long_lines());
            assert!(all.as_ref().is_none_or(|a| *a == got), "pieces of {piece}");
            all = Some(got);
        }
        all.unwrap_or_default()
    }

    #[test]
    fn lines_are_split_and_long_ones_dropped() {
        assert_eq!(
            lines(b"a\r\nbb\n\nccc", 8),
            (vec!["a".into(), "bb".into(), "".into(), "ccc".into()], 0)
        );
        let mut flood = vec![b'x'; 100_000];
        flood.extend_from_slice(b"\nok\n");
        flood.extend_from_slice(&[b'y'; 9]);
        assert_eq!(lines(&flood, 8), (vec!["ok".into()], 2));
        assert_eq!(lines(b"12345678\n123456789\n", 8).1, 1);
    }

    #[test]
    fn a_capped_log_keeps_the_newest() {
        let dir = std::env::temp_dir().join(format!("vmm-log-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("console.log");
        let dropped = Arc::new(Dropped::default());
        let mut log = CappedLog::open(&path, 10, dropped.clone()).unwrap();
        for chunk in [&b"0123456"[..], b"789", b"abcdef", b"ghijklmnopqrstuvwxyz"] {
            log.write(chunk).unwrap();
        }
        let now = std::fs::read_to_string(&path).unwrap();
        let old = std::fs::read_to_string(rotated(&path)).unwrap();
        assert_eq!(now, "qrstuvwxyz", "the newest bytes");
        assert_eq!(old, "abcdef");
        assert!(dropped.rotated_bytes() >= 10);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
