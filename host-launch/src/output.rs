//! What the launcher prints: its own lines, and what it shows of a guest's, escaped and
//! rate-limited (a guest controls those bytes and must not drive the operator's terminal or
//! grow the launcher's log without bound).

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;
use vmm::channel::{Dropped, LineSplitter};

/// Prints `[NAME] text` on standard output.
pub fn say(name: &str, text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "[{name}] {text}");
    let _ = out.flush();
}

/// A console or status line as the launcher prints it: bounded, control characters escaped
/// (a guest must not drive the operator's terminal).
pub fn shown_line(line: &str) -> String {
    let mut out: String = line
        .chars()
        .take(300)
        .flat_map(|c| {
            if c.is_control() && c != '\t' {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect();
    if line.chars().count() > 300 {
        out.push('…');
    }
    out
}

/// Rate limit on what a guest makes the launcher print: a burst, then one line a second.
/// Each line costs a write to the launcher's output (a file under `start`), so a guest
/// flooding valid events must not turn into an unbounded log.
#[derive(Debug)]
pub struct Printer {
    tokens: f64,
    last: Instant,
    pub skipped: u64,
}

pub const PRINT_BURST: f64 = 200.0;
pub const PRINT_PER_SECOND: f64 = 1.0;

impl Default for Printer {
    fn default() -> Printer {
        Printer {
            tokens: PRINT_BURST,
            last: Instant::now(),
            skipped: 0,
        }
    }
}

impl Printer {
    pub fn allow(&mut self) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() * PRINT_PER_SECOND;
        self.tokens = (self.tokens + refill).min(PRINT_BURST);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            self.skipped += 1;
            false
        }
    }
}

/// What the console thread does with each chunk besides logging it: under systemd, whole
/// lines printed as `[NAME] console: LINE`, escaped, bounded and rate-limited like events.
pub fn console_echo(
    echo: bool,
    name: &str,
    max_line: usize,
    dropped: &Arc<Dropped>,
) -> impl FnMut(&[u8]) + Send + 'static {
    let name = name.to_string();
    let mut split = LineSplitter::new(max_line, dropped.clone());
    let mut printer = Printer::default();
    move |bytes: &[u8]| {
        if !echo {
            return;
        }
        split.feed(bytes, &mut |l| {
            let line = String::from_utf8_lossy(l);
            let line = line.trim_end_matches('\r');
            if !line.trim().is_empty() && printer.allow() {
                say(&name, &format!("console: {}", shown_line(line)));
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printed_guest_lines_are_escaped_and_bounded() {
        assert_eq!(shown_line("a\u{1b}[2Jb\0c"), "a\\u{1b}[2Jb\\u{0}c");
        let long = "x".repeat(1000);
        assert_eq!(shown_line(&long).chars().count(), 301);
    }

    #[test]
    fn printing_is_rate_limited() {
        let mut p = Printer::default();
        let allowed = (0..1000).filter(|_| p.allow()).count();
        // PRINT_BURST is 200 tokens.
        assert_eq!(PRINT_BURST, 200.0);
        assert_eq!(allowed, 200);
        assert_eq!(p.skipped, 1000 - 200);
    }
}
