//! Reading a log of the state directory as it grows (`logs -f`, `events -f`): the launcher
//! appends to it, rotates it (`NAME` → `NAME.1`, `vmm::channel::CappedLog`) and, on the next
//! start, removes and makes it again. A follower keeps the file it has open until it has
//! read that to its end, then takes whatever file has the name now, from its start: no line
//! is lost to a rotation and a restart is followed.
//!
//! The bytes are the guest's: lines are bounded ([`MAX_LINE`]) and every read is.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The longest line handed on whole; a longer one is cut into pieces of this size.
pub const MAX_LINE: usize = 64 * 1024;
/// How often a follower looks for more.
pub const POLL: Duration = Duration::from_millis(200);

/// The last `n` lines of `text`.
pub fn last_lines(text: &str, n: usize) -> &str {
    if n == 0 {
        return "";
    }
    let body = text.strip_suffix('\n').unwrap_or(text);
    match body.rmatch_indices('\n').nth(n - 1) {
        Some((i, _)) => &text[i + 1..],
        None => text,
    }
}

/// What a log keeps (its rotated predecessor, then itself), and with `follow` a follower
/// from its end. The follower is made between the two reads, so that no line falls between
/// what is printed and what is followed (a line may be printed twice, never lost).
pub fn kept(path: &Path, follow: bool) -> crate::Result<(String, Option<Follower>)> {
    let mut text = crate::lifecycle::read(&vmm::channel::rotated(path))?;
    let follower = follow.then(|| Follower::from_end(path));
    text.push_str(&crate::lifecycle::read(path)?);
    Ok((text, follower))
}

/// A log file followed by name.
#[derive(Debug)]
pub struct Follower {
    path: PathBuf,
    file: Option<(File, u64)>,
    partial: Vec<u8>,
}

impl Follower {
    /// Follows `path` from its current end (what is there was printed already), or from
    /// the start of the next file that takes the name when there is none yet.
    pub fn from_end(path: &Path) -> Follower {
        let file = File::open(path).ok().and_then(|mut f| {
            let ino = f.metadata().ok()?.ino();
            std::io::Seek::seek(&mut f, std::io::SeekFrom::End(0)).ok()?;
            Some((f, ino))
        });
        Follower {
            path: path.to_path_buf(),
            file,
            partial: Vec::new(),
        }
    }

    /// The complete lines that came since the last call (each without its newline).
    pub fn poll(&mut self) -> Vec<Vec<u8>> {
        let mut lines = Vec::new();
        self.drain(&mut lines);
        let now = std::fs::metadata(&self.path).ok().map(|m| m.ino());
        let current = self.file.as_ref().map(|(_, ino)| *ino);
        if now.is_some() && now != current {
            // Rotated or made again: what the old file had is read above; now the new one.
            self.file = File::open(&self.path).ok().and_then(|f| Some((f, now?)));
            self.partial.clear();
            self.drain(&mut lines);
        }
        lines
    }

    fn drain(&mut self, lines: &mut Vec<Vec<u8>>) {
        let Some((f, _)) = self.file.as_mut() else {
            return;
        };
        let mut buf = [0u8; 16 * 1024];
        while let Ok(n) = f.read(&mut buf) {
            if n == 0 {
                break;
            }
            split(&mut self.partial, &buf[..n], lines);
        }
    }
}

/// Appends `bytes` to `partial`, moving each complete (or over-long) line to `lines`.
fn split(partial: &mut Vec<u8>, bytes: &[u8], lines: &mut Vec<Vec<u8>>) {
    for &b in bytes {
        if b == b'\n' {
            lines.push(std::mem::take(partial));
        } else {
            partial.push(b);
            if partial.len() >= MAX_LINE {
                lines.push(std::mem::take(partial));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_lines_counts_from_the_end() {
        assert_eq!(last_lines("a\nb\nc\n", 2), "b\nc\n");
        assert_eq!(last_lines("a\nb\nc", 2), "b\nc");
        assert_eq!(last_lines("a\nb\n", 5), "a\nb\n");
        assert_eq!(last_lines("a\nb\n", 0), "");
    }

    #[test]
    fn a_follower_reads_across_rotation_and_recreation() {
        use std::io::Write;
        let dir = std::env::temp_dir().join(format!("hl-tail-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("console.log");
        std::fs::write(&p, "old\n").unwrap();
        let mut f = Follower::from_end(&p);
        let mut w = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        w.write_all(b"one\ntw").unwrap();
        assert_eq!(f.poll(), [b"one".to_vec()]);
        w.write_all(b"o\nlast before rotation\n").unwrap();
        std::fs::rename(&p, dir.join("console.log.1")).unwrap();
        std::fs::write(&p, "after\n").unwrap();
        assert_eq!(
            f.poll(),
            [
                b"two".to_vec(),
                b"last before rotation".to_vec(),
                b"after".to_vec()
            ]
        );
        std::fs::remove_file(&p).unwrap();
        assert!(f.poll().is_empty(), "a removed file (a restart) is no line");
        std::fs::write(&p, format!("{}\n", "x".repeat(MAX_LINE + 1))).unwrap();
        let long = f.poll();
        assert_eq!(long.len(), 2, "an over-long line is cut");
        assert_eq!(long[0].len(), MAX_LINE);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
