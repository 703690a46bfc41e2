//! `logs NAME [-f] [--tail N] [--since T] [--timestamps]` (alias `console`): the appliance's
//! console, the service's output and the guest's messages, the rotated part first. With
//! `--since` or `--timestamps` it is read from the console's timestamped copy
//! (`crate::stamped`: whole lines, each with the host time it arrived). The guest wrote those bytes:
//! control characters other than newline and tab are shown escaped, so that a guest cannot
//! drive the operator's terminal.

use crate::error::Result;
use crate::lifecycle::known;
use crate::tail::{self, Follower};
use std::io::Write;

/// What `logs` was asked for.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    pub follow: bool,
    pub tail: Option<usize>,
    /// Only lines that arrived at or after this time (milliseconds since the epoch).
    pub since: Option<u64>,
    /// Each line after its host time (RFC 3339).
    pub timestamps: bool,
}

impl Options {
    fn stamped(&self) -> bool {
        self.timestamps || self.since.is_some()
    }

    /// A line of the file read as shown (with its newline), or `None` when `--since` leaves
    /// it out.
    fn show(&self, line: &str) -> Option<String> {
        if !self.stamped() {
            return Some(escaped(line) + "\n");
        }
        let (ms, text) = crate::stamped::parse(line)?;
        if self.since.is_some_and(|s| ms < s) {
            return None;
        }
        let shown = if self.timestamps { line } else { text };
        Some(escaped(shown) + "\n")
    }
}

/// `logs NAME`.
pub fn logs(name: &str, opts: Options) -> Result<i32> {
    let e = known(name)?;
    let path = if opts.stamped() {
        e.dir.console_stamped()
    } else {
        e.dir.console()
    };
    let (text, follower) = tail::kept(&path, opts.follow)?;
    let shown: String = text.lines().filter_map(|l| opts.show(l)).collect();
    let shown = match opts.tail {
        Some(n) => tail::last_lines(&shown, n),
        None => &shown,
    };
    let mut out = std::io::stdout().lock();
    if out.write_all(shown.as_bytes()).is_err() {
        return Ok(0);
    }
    let _ = out.flush();
    drop(out);
    if let Some(f) = follower {
        follow(f, |line| {
            opts.show(&String::from_utf8_lossy(line))
                .unwrap_or_default()
        });
    }
    Ok(0)
}

/// Prints what `f` reads, each line as `show` makes it, until stdout is gone (or a signal).
pub fn follow(mut f: Follower, show: impl Fn(&[u8]) -> String) {
    let mut out = std::io::stdout();
    loop {
        for line in f.poll() {
            if out.write_all(show(&line).as_bytes()).is_err() {
                return;
            }
        }
        if out.flush().is_err() {
            return;
        }
        std::thread::sleep(tail::POLL);
    }
}

/// `text` with every control character but `\n` and `\t` escaped (`\r` before `\n` dropped).
pub fn escaped(text: &str) -> String {
    let text = text.replace("\r\n", "\n");
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() && c != '\n' && c != '\t' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn terminal_controls_are_escaped() {
        assert_eq!(
            super::escaped("ok\r\n\u{1b}[2J\tx\u{7}\n"),
            "ok\n\\u{1b}[2J\tx\\u{7}\n"
        );
    }
}
