//! `console NAME`: the guest console of the last run, the rotated part first. The guest wrote
//! those bytes: control characters other than newline and tab are shown escaped, so that a
//! guest cannot drive the operator's terminal.

use crate::error::Result;
use crate::lifecycle::{known, read};
use std::io::Write;

/// `console NAME`.
pub fn console(name: &str) -> Result<i32> {
    let e = known(name)?;
    let older = read(&vmm::channel::rotated(&e.dir.console()))?;
    let text = read(&e.dir.console())?;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(escaped(&older).as_bytes());
    let _ = out.write_all(escaped(&text).as_bytes());
    Ok(0)
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
