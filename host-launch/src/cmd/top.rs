//! `top [--sort KEY] [--interval SECONDS] [--iterations N]`: a live table of every appliance,
//! refreshed, as top and `podman stats` show theirs. On a terminal it draws on the alternate
//! screen and reads single keys (stdin without line editing, through nix's termios: no
//! terminal crate for a clear-and-redraw table); elsewhere it prints frames one after another.

use crate::cli::SortKey;
use crate::cmd::stats::{bytes, duration};
use crate::error::Result;
use crate::metrics::rates::{Previous, Rates};
use crate::metrics::{self, Digests, Sample};
use crate::state;
use std::io::Write;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

/// What `top` was asked for.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub sort: SortKey,
    pub interval: Duration,
    /// Refreshes before it ends by itself (none: until `q`).
    pub iterations: Option<u64>,
}

/// `top`: refreshes until `q` (or Ctrl-C) or `iterations`.
pub fn top(opts: &Options) -> Result<i32> {
    let term = Terminal::open();
    let mut sort = opts.sort;
    let mut previous = Previous::default();
    let mut last = Instant::now();
    // `top` shows no digest: it hashes no image.
    let mut digests = Digests::none();
    let mut frames = 0u64;
    let mut memory = Memory::default();
    loop {
        let entries = state::list(&state::base_dir());
        let pss = memory.due();
        let mut samples = metrics::sample::collect_with(&entries, &mut digests, pss);
        memory.keep_or_fill(&mut samples, pss);
        let rates = previous.rates(&samples, last.elapsed());
        last = Instant::now();
        let (width, height) = term.as_ref().map_or((200, usize::MAX), Terminal::size);
        let text = frame(&samples, &rates, sort, width, height);
        draw(&text, term.is_some());
        frames += 1;
        if opts.iterations.is_some_and(|n| frames >= n) {
            return Ok(0);
        }
        match term.as_ref() {
            Some(t) => match t.key_within(opts.interval) {
                Key::Quit => return Ok(0),
                Key::Sort(k) => sort = k,
                Key::None => {}
            },
            None => std::thread::sleep(opts.interval),
        }
    }
}

/// How often `top` reads the memory: a PSS costs the kernel a walk of every mapped page,
/// and memory moves slowly beside CPU and network.
const MEMORY_EVERY: Duration = Duration::from_secs(10);

/// Each appliance's PSS as last read, by name and run, shown until the next read.
#[derive(Debug, Default)]
struct Memory {
    read_at: Option<Instant>,
    last: std::collections::HashMap<(String, u64), u64>,
}

impl Memory {
    fn due(&self) -> bool {
        self.read_at.is_none_or(|t| t.elapsed() >= MEMORY_EVERY)
    }

    /// Remembers the memory just read, or puts the last read one into samples without it.
    fn keep_or_fill(&mut self, samples: &mut [Sample], read: bool) {
        if read {
            self.read_at = Some(Instant::now());
            self.last = samples
                .iter()
                .filter_map(|s| Some(((s.name.clone(), s.started_at_ms), s.usage?.memory_bytes)))
                .collect();
            return;
        }
        for s in samples.iter_mut() {
            let key = (s.name.clone(), s.started_at_ms);
            if let (Some(u), Some(m)) = (s.usage.as_mut(), self.last.get(&key)) {
                u.memory_bytes = *m;
            }
        }
    }
}

fn draw(text: &str, terminal: bool) {
    let mut out = std::io::stdout().lock();
    if terminal {
        // Home, the frame, then clear what an earlier, longer frame left below.
        let _ = write!(out, "\x1b[H{}\x1b[J", text.replace('\n', "\x1b[K\r\n"));
    } else {
        let _ = writeln!(out, "{text}");
    }
    let _ = out.flush();
}

/// The header lines and one row per appliance, sorted, cut to the terminal.
pub fn frame(
    samples: &[Sample],
    rates: &[Rates],
    sort: SortKey,
    width: usize,
    height: usize,
) -> String {
    let mut rows: Vec<(&Sample, &Rates)> = samples.iter().zip(rates).collect();
    rows.sort_by(|a, b| order(a, b, sort));
    let running = samples.iter().filter(|s| s.running).count();
    let ready = samples.iter().filter(|s| s.ready).count();
    let mut lines = vec![
        format!(
            "host-launch top  {}  {} appliances, {running} running, {ready} ready  sorted by {}",
            crate::cmd::view::rfc3339(state::now_ms())
                .get(11..19)
                .unwrap_or(""),
            samples.len(),
            sort.word()
        ),
        "keys: c CPU  m memory  i net in  o net out  r restarts  u uptime  a name  q quit".into(),
        String::new(),
        format!(
            "{:<20} {:<9} {:<5} {:>6} {:>8} {:>10} {:>10} {:>8} {:>8}",
            "NAME",
            "STATE",
            "READY",
            "CPU%",
            "MEM MiB",
            "NET IN/s",
            "NET OUT/s",
            "RESTARTS",
            "UPTIME"
        ),
    ];
    let room = height.saturating_sub(lines.len());
    lines.extend(rows.iter().take(room).map(|(s, r)| row(s, r)));
    lines
        .iter()
        .map(|l| l.chars().take(width).collect::<String>())
        .collect::<Vec<_>>()
        .join("\n")
}

fn row(s: &Sample, r: &Rates) -> String {
    let dash = || "-".to_string();
    let rate = |v: Option<u64>| v.map_or_else(dash, bytes);
    format!(
        "{:<20} {:<9} {:<5} {:>6} {:>8} {:>10} {:>10} {:>8} {:>8}",
        s.name,
        s.state,
        if s.ready { "yes" } else { "no" },
        r.cpu_percent.map_or_else(dash, |c| format!("{c:.1}")),
        s.usage
            .map_or_else(dash, |u| format!("{:.1}", mib(u.memory_bytes))),
        rate(r.net_in),
        rate(r.net_out),
        s.service.restarts,
        s.uptime_s.map_or_else(dash, duration),
    )
}

#[allow(clippy::cast_precision_loss)] // a display to one decimal
fn mib(b: u64) -> f64 {
    b as f64 / f64::from(1u32 << 20)
}

/// Biggest first by the key (what is not known last), the name for equal ones.
fn order(a: &(&Sample, &Rates), b: &(&Sample, &Rates), key: SortKey) -> std::cmp::Ordering {
    let by_name = state::natural_cmp(&a.0.name, &b.0.name);
    let value = |(s, r): &(&Sample, &Rates)| -> Option<f64> {
        match key {
            SortKey::Cpu => r.cpu_percent,
            SortKey::Mem => s.usage.map(|u| mib(u.memory_bytes)),
            #[allow(clippy::cast_precision_loss)]
            SortKey::NetIn => r.net_in.map(|b| b as f64),
            #[allow(clippy::cast_precision_loss)]
            SortKey::NetOut => r.net_out.map(|b| b as f64),
            #[allow(clippy::cast_precision_loss)]
            SortKey::Restarts => Some(s.service.restarts as f64),
            #[allow(clippy::cast_precision_loss)]
            SortKey::Uptime => s.uptime_s.map(|u| u as f64),
            SortKey::Name => None,
        }
    };
    match (value(a), value(b)) {
        (Some(x), Some(y)) => y.total_cmp(&x).then(by_name),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => by_name,
    }
}

/// A key pressed while waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    None,
    Quit,
    Sort(SortKey),
}

fn key_of(b: u8) -> Key {
    match b {
        b'q' | b'Q' | 3 | 4 => Key::Quit, // q, Ctrl-C, Ctrl-D
        b'c' => Key::Sort(SortKey::Cpu),
        b'm' => Key::Sort(SortKey::Mem),
        b'i' => Key::Sort(SortKey::NetIn),
        b'o' => Key::Sort(SortKey::NetOut),
        b'r' => Key::Sort(SortKey::Restarts),
        b'u' => Key::Sort(SortKey::Uptime),
        b'a' => Key::Sort(SortKey::Name),
        _ => Key::None,
    }
}

/// The terminal while `top` draws on it: single keys without echo (Ctrl-C is a key, so the
/// settings are always put back), the alternate screen, no cursor; restored on drop.
struct Terminal {
    saved: nix::sys::termios::Termios,
}

impl Terminal {
    /// Some when standard input and output are both a terminal.
    fn open() -> Option<Terminal> {
        use nix::sys::termios::{
            tcgetattr, tcsetattr, LocalFlags, SetArg, SpecialCharacterIndices,
        };
        let stdin = std::io::stdin();
        if !nix::unistd::isatty(libc::STDOUT_FILENO).unwrap_or(false) {
            return None;
        }
        let saved = tcgetattr(stdin.as_fd()).ok()?;
        let mut raw = saved.clone();
        raw.local_flags
            .remove(LocalFlags::ICANON | LocalFlags::ECHO | LocalFlags::ISIG);
        raw.control_chars[SpecialCharacterIndices::VMIN as usize] = 1;
        raw.control_chars[SpecialCharacterIndices::VTIME as usize] = 0;
        tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw).ok()?;
        print!("\x1b[?1049h\x1b[?25l");
        Some(Terminal { saved })
    }

    /// Columns and rows.
    fn size(&self) -> (usize, usize) {
        let mut ws = libc::winsize {
            ws_row: 0,
            ws_col: 0,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCGWINSZ writes one winsize into the struct it is given.
        let rc = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) };
        if rc != 0 || ws.ws_col == 0 {
            return (80, 24);
        }
        (usize::from(ws.ws_col), usize::from(ws.ws_row))
    }

    /// The first key pressed within `wait`, if any.
    fn key_within(&self, wait: Duration) -> Key {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        use std::io::Read;
        let stdin = std::io::stdin();
        let ms = u16::try_from(wait.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(stdin.as_fd(), PollFlags::POLLIN)];
        if !matches!(poll(&mut fds, PollTimeout::from(ms)), Ok(n) if n > 0) {
            return Key::None;
        }
        let mut b = [0u8; 1];
        match stdin.lock().read(&mut b) {
            Ok(1) => key_of(b[0]),
            // Its input closed: nobody can press q any more.
            _ => Key::Quit,
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        use nix::sys::termios::{tcsetattr, SetArg};
        print!("\x1b[?25h\x1b[?1049l");
        let _ = std::io::stdout().flush();
        let _ = tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, &self.saved);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str, mem: u64, restarts: u64) -> Sample {
        let mut s = crate::metrics::sample::test_sample(name);
        s.service.restarts = restarts;
        s.usage = Some(crate::metrics::procfs::Usage {
            memory_bytes: mem,
            ..Default::default()
        });
        s.tap = None;
        s
    }

    #[test]
    fn memory_is_read_now_and_then_and_shown_between() {
        let mut m = Memory::default();
        assert!(m.due());
        m.keep_or_fill(&mut [sample("d1", 5 << 20, 0)], true);
        assert!(!m.due());
        let mut later = [sample("d1", 0, 0), sample("d2", 0, 0)];
        m.keep_or_fill(&mut later, false);
        assert_eq!(later[0].usage.unwrap().memory_bytes, 5 << 20);
        assert_eq!(later[1].usage.unwrap().memory_bytes, 0, "not read yet");
    }

    #[test]
    fn rows_sort_by_the_key_and_fit_the_terminal() {
        let s = [
            sample("d2", 10 << 20, 0),
            sample("d10", 30 << 20, 5),
            sample("d1", 20 << 20, 1),
        ];
        let r = [
            Rates {
                cpu_percent: Some(1.0),
                ..Default::default()
            },
            Rates {
                cpu_percent: None,
                ..Default::default()
            },
            Rates {
                cpu_percent: Some(7.5),
                ..Default::default()
            },
        ];
        let names = |k, h| -> Vec<String> {
            frame(&s, &r, k, 200, h)
                .lines()
                .skip(4)
                .map(|l| l.split(' ').next().unwrap().to_string())
                .collect()
        };
        assert_eq!(names(SortKey::Cpu, 99), ["d1", "d2", "d10"]);
        assert_eq!(names(SortKey::Mem, 99), ["d10", "d1", "d2"]);
        assert_eq!(names(SortKey::Restarts, 99), ["d10", "d1", "d2"]);
        assert_eq!(names(SortKey::Name, 99), ["d1", "d2", "d10"]);
        assert_eq!(
            names(SortKey::Cpu, 6),
            ["d1", "d2"],
            "two rows fit under the header"
        );
        let f = frame(&s, &r, SortKey::Cpu, 30, 99);
        assert!(f.lines().all(|l| l.chars().count() <= 30), "{f}");
        let full = frame(&s, &r, SortKey::Cpu, 200, 99);
        assert!(full.contains("CPU%") && full.contains("RESTARTS") && full.contains("UPTIME"));
        assert!(full.lines().nth(4).unwrap().contains("   7.5 "), "{full}");
        assert_eq!(key_of(b'm'), Key::Sort(SortKey::Mem));
        assert_eq!(key_of(3), Key::Quit);
    }
}
