//! `logs NAME [-f] [--tail N]` (alias `console`): the appliance's console, the service's
//! output and the guest's messages, the rotated part first. The guest wrote those bytes:
//! control characters other than newline and tab are shown escaped, so that a guest cannot
//! drive the operator's terminal.

use crate::error::Result;
use crate::lifecycle::{known, read};
use crate::tail::{self, Follower};
use std::io::Write;

/// What `logs` was asked for.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    pub follow: bool,
    pub tail: Option<usize>,
}

/// `logs NAME`.
pub fn logs(name: &str, opts: Options) -> Result<i32> {
    let e = known(name)?;
    let path = e.dir.console();
    let mut text = read(&vmm::channel::rotated(&path))?;
    let follower = opts.follow.then(|| Follower::from_end(&path));
    text.push_str(&read(&path)?);
    let shown = match opts.tail {
        Some(n) => tail::last_lines(&text, n),
        None => &text,
    };
    let mut out = std::io::stdout().lock();
    if out.write_all(escaped(shown).as_bytes()).is_err() {
        return Ok(0);
    }
    let _ = out.flush();
    if let Some(f) = follower {
        follow(f, |line| escaped(&String::from_utf8_lossy(line)) + "\n");
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
