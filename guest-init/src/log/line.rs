//! Line splitting for the service's pipes: the buffer the supervisor feeds with what the
//! service writes.

/// Turns a byte stream (a pipe) into lines of at most `max` bytes.
///
/// Lines end at `\n`; one `\r` before it is removed. A line longer than `max` is cut into
/// pieces (on a UTF-8 boundary when possible) instead of being buffered without bound, so the
/// buffer never holds more than `max` bytes. Invalid UTF-8 becomes U+FFFD. Empty lines are
/// kept: deciding whether they are worth logging is the caller's business.
#[derive(Debug, Clone)]
pub struct LineBuffer {
    buf: Vec<u8>,
    max: usize,
}

impl LineBuffer {
    /// `max` is clamped to at least 4 bytes, so one UTF-8 character always fits.
    pub fn new(max: usize) -> LineBuffer {
        let max = max.max(4);
        LineBuffer {
            buf: Vec::with_capacity(max.min(4096)),
            max,
        }
    }

    /// Feeds bytes in; returns the lines they complete (or force out, when too long).
    pub fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut lines = Vec::new();
        for &b in bytes {
            if b == b'\n' {
                lines.push(self.take_line());
                continue;
            }
            if self.buf.len() >= self.max {
                lines.push(self.take_piece());
            }
            self.buf.push(b);
        }
        lines
    }

    /// The partial line left at end of stream, if any.
    pub fn flush(&mut self) -> Option<String> {
        if self.buf.is_empty() {
            None
        } else {
            Some(self.take_line())
        }
    }

    /// Bytes currently held (always at most `max`).
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    fn take_line(&mut self) -> String {
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        let line = String::from_utf8_lossy(&self.buf).into_owned();
        self.buf.clear();
        line
    }

    /// Cuts a full buffer, keeping an incomplete UTF-8 character for the next piece.
    fn take_piece(&mut self) -> String {
        let cut = utf8_cut(&self.buf);
        let rest = self.buf.split_off(cut);
        let piece = String::from_utf8_lossy(&self.buf).into_owned();
        self.buf = rest;
        piece
    }
}

/// Where to cut `buf` so that a UTF-8 character starting in its last 3 bytes is not split;
/// the whole length when there is no such character (or the data is not UTF-8).
fn utf8_cut(buf: &[u8]) -> usize {
    let len = buf.len();
    for back in 1..=3usize.min(len) {
        let i = len - back;
        let Some(&b) = buf.get(i) else { break };
        if b & 0xC0 == 0x80 {
            continue; // continuation byte: keep looking for the lead byte
        }
        let width = match b {
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => 1,
        };
        // Cut before the lead byte only if its character is incomplete and something stays.
        return if width > back && i > 0 { i } else { len };
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logsink_line_buffer_partial_and_crlf() {
        let mut lb = LineBuffer::new(100);
        assert!(lb.push(b"hel").is_empty());
        assert_eq!(lb.push(b"lo\r\nwor"), vec!["hello"]);
        assert_eq!(lb.push(b"ld\r"), Vec::<String>::new());
        assert_eq!(lb.push(b"\n\n"), vec!["world", ""]);
        assert_eq!(lb.push(b"tail"), Vec::<String>::new());
        assert_eq!(lb.flush(), Some("tail".to_string()));
        assert_eq!(lb.flush(), None);
    }

    #[test]
    fn logsink_line_buffer_splits_long_lines() {
        let mut lb = LineBuffer::new(4);
        assert_eq!(lb.push(b"abcdefghij\n"), vec!["abcd", "efgh", "ij"]);
        // Exactly `max` bytes then a newline is one line, not a piece and an empty line.
        assert_eq!(lb.push(b"abcd\n"), vec!["abcd"]);
        let mut lb = LineBuffer::new(10);
        let big = vec![b'x'; 1_000_000];
        let lines = lb.push(&big);
        assert_eq!(lines.len(), 99_999);
        assert!(lb.pending() <= 10);
        assert_eq!(lb.flush().map(|s| s.len()), Some(10));
    }

    #[test]
    fn logsink_line_buffer_keeps_utf8_whole() {
        let mut lb = LineBuffer::new(5);
        // "abcd" + "é" (2 bytes) would be cut inside the character at 5 bytes.
        let lines = lb.push("abcd\u{e9}f\n".as_bytes());
        assert_eq!(lines, vec!["abcd", "\u{e9}f"]);
        let mut lb = LineBuffer::new(4);
        assert_eq!(lb.push(b"ab\xff\xfecd\n"), vec!["ab\u{fffd}\u{fffd}", "cd"]);
    }

    #[test]
    fn logsink_utf8_cut() {
        assert_eq!(utf8_cut(b"abc"), 3);
        assert_eq!(utf8_cut("ab\u{e9}".as_bytes()), 4);
        assert_eq!(utf8_cut(&"ab\u{e9}".as_bytes()[..3]), 2);
        assert_eq!(utf8_cut(&"a\u{1F600}".as_bytes()[..4]), 1);
        assert_eq!(utf8_cut(&[0xF0, 0x9F]), 2); // nothing would stay: cut everything
    }
}
