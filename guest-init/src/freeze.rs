//! The host's snapshot requests (docs/contract.md, "Requests from the host"): the host
//! writes lines to the guest's `/dev/tty2`, `freeze BOUND_MS` and `thaw`. A freeze syncs and
//! freezes every data file system (FIFREEZE) and reports `frozen`; a thaw (FITHAW) comes on
//! the host's `thaw` or, so that a lost host never leaves the guest frozen, after the bound
//! at the latest, and reports `thawed` with the time frozen.
//!
//! With a quiesce command (`service.quiesce`, [`crate::quiesce`]) a `freeze` first runs it
//! (`quiescing`), and the sync and FIFREEZE follow when it ends, however it ends: a copy of
//! frozen file systems is better than none even when the service could not be quiesced,
//! and the `frozen` event says how the command went.
//!
//! The channel is optional: without `/dev/tty2` (a kernel or host without it) there is
//! nothing to read and nothing happens.

use crate::log::LineBuffer;
use crate::quiesce::{self, Ended};
use crate::service::ExitKind;
use crate::status::Event;
use nix::errno::Errno;
use nix::unistd::Pid;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

/// The guest's end of the request channel (UML's `con2`).
pub const REQUEST_TTY: &str = "/dev/tty2";

/// The longest a host may keep the guest frozen, whatever it asks: past it the service's
/// writes have waited long enough.
pub const MAX_BOUND: Duration = Duration::from_secs(60);

/// The bound of a `freeze` that names none.
pub const DEFAULT_BOUND: Duration = Duration::from_secs(10);

/// Longest request line; longer ones are split and refused.
const MAX_LINE: usize = 64;

// Linux's ioctls (include/uapi/linux/fs.h): _IOWR('X', 119 / 120, int).
const FIFREEZE: libc::c_ulong = 0xC004_5877;
const FITHAW: libc::c_ulong = 0xC004_5878;

/// One request from the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    Freeze { bound: Duration },
    Thaw,
}

/// A request line, or `None` for anything else (ignored: the host speaks this protocol or
/// nothing).
pub fn parse(line: &str) -> Option<Request> {
    let mut words = line.split_ascii_whitespace();
    let request = match (words.next()?, words.next()) {
        ("thaw", None) => Request::Thaw,
        ("freeze", None) => Request::Freeze {
            bound: DEFAULT_BOUND,
        },
        ("freeze", Some(ms)) => Request::Freeze {
            bound: Duration::from_millis(ms.parse().ok()?).min(MAX_BOUND),
        },
        _ => return None,
    };
    words.next().is_none().then_some(request)
}

/// What is frozen now.
#[derive(Debug)]
struct Frozen {
    since: Instant,
    until: Instant,
    /// Each frozen file system's root directory, to thaw it through.
    dirs: Vec<OwnedFd>,
}

/// A freeze waiting for its quiesce command.
#[derive(Debug)]
struct Quiescing {
    running: quiesce::Running,
    bound: Duration,
}

/// Where a line of the quiesce command's output goes: (pid, stderr, line).
pub type Emit<'a> = &'a mut dyn FnMut(Pid, bool, &str);

/// The request channel and the freeze it may hold.
#[derive(Debug)]
pub struct Freezer {
    tty: Option<OwnedFd>,
    lines: LineBuffer,
    mount_points: Vec<String>,
    frozen: Option<Frozen>,
    quiesce: Option<quiesce::Command>,
    quiescing: Option<Quiescing>,
}

impl Freezer {
    /// Opens the request channel (non-blocking) for the data disks at `mount_points`; a
    /// guest without it gets a freezer that never wakes.
    pub fn open(mount_points: Vec<String>) -> Freezer {
        use std::os::unix::fs::OpenOptionsExt;
        let tty = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(REQUEST_TTY)
            .ok()
            .map(OwnedFd::from);
        if let Some(t) = &tty {
            quiet(t);
        }
        Freezer {
            tty,
            lines: LineBuffer::new(MAX_LINE),
            mount_points,
            frozen: None,
            quiesce: None,
            quiescing: None,
        }
    }

    /// Runs `command` before each freeze.
    pub fn with_quiesce(mut self, command: Option<quiesce::Command>) -> Self {
        self.quiesce = command;
        self
    }

    /// The running quiesce command's output pipes, to poll.
    pub fn quiesce_fds(&self) -> Vec<BorrowedFd<'_>> {
        self.quiescing
            .as_ref()
            .map(|q| q.running.fds())
            .unwrap_or_default()
    }

    /// Passes on what the quiesce command wrote.
    pub fn quiesce_output(&mut self, emit: Emit) {
        if let Some(q) = self.quiescing.as_mut() {
            q.running.drain(emit);
        }
    }

    /// Whether `pid` is the running quiesce command.
    pub fn is_quiesce(&self, pid: Pid) -> bool {
        self.quiescing
            .as_ref()
            .is_some_and(|q| q.running.pid() == pid)
    }

    /// The quiesce command was reaped: the freeze follows.
    pub fn quiesce_exited(&mut self, kind: ExitKind, emit: Emit) -> Option<Event> {
        let q = self.quiescing.take()?;
        let ended = q.running.exited(kind, emit);
        self.freeze_now(q.bound, Some(ended))
    }

    /// The channel to poll, if there is one.
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.tty.as_ref().map(|t| t.as_fd())
    }

    /// When a freeze runs out, or a quiesce command's timeout passes.
    pub fn deadline(&self) -> Option<Instant> {
        let quiesce = self.quiescing.as_ref().map(|q| q.running.deadline());
        self.frozen.as_ref().map(|f| f.until).or(quiesce)
    }

    /// Reads what the host wrote and acts on each request; the events to report.
    pub fn readable(&mut self, emit: Emit) -> Vec<Event> {
        let mut events = Vec::new();
        for line in self.read_lines() {
            match parse(&line) {
                Some(Request::Freeze { bound }) => events.extend(self.freeze(bound)),
                Some(Request::Thaw) => events.extend(self.thaw("request", emit)),
                None => events.push(Event::Warning {
                    reason: format!(
                        "request channel: ignored {:?} (expected `freeze MS` or `thaw`)",
                        line.chars().take(MAX_LINE).collect::<String>()
                    ),
                }),
            }
        }
        events
    }

    /// Thaws a freeze at once (the VM stops): `by` says why.
    pub fn thaw_now(&mut self, by: &str, emit: Emit) -> Option<Event> {
        self.thaw(by, emit)
    }

    /// Thaws a freeze whose bound has passed; freezes when a quiesce command's timeout has.
    pub fn tick(&mut self, now: Instant, emit: Emit) -> Option<Event> {
        if self.frozen.as_ref().is_some_and(|f| f.until <= now) {
            return self.thaw("bound", emit);
        }
        if self
            .quiescing
            .as_ref()
            .is_some_and(|q| q.running.deadline() <= now)
        {
            let q = self.quiescing.take()?;
            let ended = q.running.kill(emit);
            return self.freeze_now(q.bound, Some(ended));
        }
        None
    }

    /// Whole lines waiting on the channel (never blocks). A channel that fails is closed.
    fn read_lines(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        let Some(tty) = &self.tty else {
            return out;
        };
        let mut buf = [0u8; 256];
        loop {
            match nix::unistd::read(tty.as_raw_fd(), &mut buf) {
                Err(Errno::EAGAIN) => return out,
                Ok(n) if n > 0 => out.extend(self.lines.push(buf.get(..n).unwrap_or_default())),
                Err(Errno::EINTR) => {}
                // An end of file (a line with no host behind it) or an error: polling it
                // again would spin, so the channel is closed for this boot.
                Ok(_) | Err(_) => {
                    self.tty = None;
                    return out;
                }
            }
        }
    }

    /// Starts the quiesce command, or freezes at once without one; a second freeze only
    /// extends the bound (or, while quiescing, the bound to come).
    fn freeze(&mut self, bound: Duration) -> Option<Event> {
        if let Some(f) = self.frozen.as_mut() {
            f.until = Instant::now() + bound;
            return Some(self.frozen_event(bound, None));
        }
        if let Some(q) = self.quiescing.as_mut() {
            q.bound = bound;
            return None;
        }
        let Some(cmd) = &self.quiesce else {
            return self.freeze_now(bound, None);
        };
        match cmd.start() {
            Ok(running) => {
                let event = Event::Quiescing {
                    command: cmd.describe(),
                    timeout_ms: u64::try_from(cmd.timeout().as_millis()).unwrap_or(u64::MAX),
                };
                self.quiescing = Some(Quiescing { running, bound });
                Some(event)
            }
            Err(error) => self.freeze_now(
                bound,
                Some(Ended {
                    ms: 0,
                    error: Some(error),
                }),
            ),
        }
    }

    /// Syncs, then freezes each data file system, all or none.
    fn freeze_now(&mut self, bound: Duration, quiesced: Option<Ended>) -> Option<Event> {
        let now = Instant::now();
        nix::unistd::sync();
        let mut dirs = Vec::new();
        for mp in &self.mount_points {
            match freeze_one(mp) {
                Ok(dir) => dirs.push(dir),
                Err(e) => {
                    // All or nothing: a copy is consistent only if every disk is.
                    for d in &dirs {
                        let _ = ioctl(d, FITHAW);
                    }
                    return Some(Event::Thawed {
                        frozen_ms: 0,
                        by: format!("refused: freezing {mp}: {e}"),
                    });
                }
            }
        }
        self.frozen = Some(Frozen {
            since: now,
            until: now + bound,
            dirs,
        });
        Some(self.frozen_event(bound, quiesced))
    }

    fn frozen_event(&self, bound: Duration, quiesced: Option<Ended>) -> Event {
        Event::Frozen {
            mount_points: self.mount_points.clone(),
            bound_ms: u64::try_from(bound.as_millis()).unwrap_or(u64::MAX),
            quiesce_ms: quiesced.as_ref().map(|q| q.ms),
            quiesce_error: quiesced.and_then(|q| q.error),
        }
    }

    /// Thaws what is frozen, if anything; a quiesce command still running is killed and
    /// nothing freezes.
    fn thaw(&mut self, by: &str, emit: Emit) -> Option<Event> {
        if let Some(q) = self.quiescing.take() {
            let ended = q.running.kill(emit);
            return Some(Event::Thawed {
                frozen_ms: 0,
                by: format!(
                    "{by}: before the freeze, the quiesce command killed after {} ms",
                    ended.ms
                ),
            });
        }
        let f = self.frozen.take()?;
        let mut by = by.to_string();
        for d in &f.dirs {
            if let Err(e) = ioctl(d, FITHAW) {
                by = format!("{by} (thaw failed: {e})");
            }
        }
        Some(Event::Thawed {
            frozen_ms: u64::try_from(f.since.elapsed().as_millis()).unwrap_or(u64::MAX),
            by,
        })
    }
}

/// Whole lines, no echo: the line's output goes nowhere (UML's `null`), and echoes it
/// cannot write would stall the line's input.
fn quiet(tty: &OwnedFd) {
    use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
    if let Ok(mut t) = tcgetattr(tty) {
        t.local_flags
            .remove(LocalFlags::ECHO | LocalFlags::ECHOE | LocalFlags::ECHOK | LocalFlags::ECHONL);
        t.local_flags.insert(LocalFlags::ICANON);
        let _ = tcsetattr(tty, SetArg::TCSANOW, &t);
    }
}

/// Opens the mount point and freezes its file system.
fn freeze_one(mount_point: &str) -> Result<OwnedFd, Errno> {
    let dir = std::fs::File::open(mount_point)
        .map(OwnedFd::from)
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
    ioctl(&dir, FIFREEZE)?;
    Ok(dir)
}

fn ioctl(fd: &OwnedFd, request: libc::c_ulong) -> Result<(), Errno> {
    let mut zero: libc::c_int = 0;
    // SAFETY: FIFREEZE and FITHAW take a pointer to an int they do not keep.
    Errno::result(unsafe { libc::ioctl(fd.as_raw_fd(), request as _, &mut zero) }).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_parsed_strictly_and_bounded() {
        assert_eq!(parse("thaw"), Some(Request::Thaw));
        assert_eq!(
            parse("freeze 2500"),
            Some(Request::Freeze {
                bound: Duration::from_millis(2500)
            })
        );
        assert_eq!(
            parse("freeze"),
            Some(Request::Freeze {
                bound: DEFAULT_BOUND
            })
        );
        assert_eq!(
            parse("freeze 999999999"),
            Some(Request::Freeze { bound: MAX_BOUND })
        );
        for bad in [
            "",
            "thaw now",
            "freeze -1",
            "freeze 1 2",
            "FREEZE",
            "freeze x",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn without_a_channel_nothing_happens() {
        let mut f = Freezer {
            tty: None,
            lines: LineBuffer::new(MAX_LINE),
            mount_points: vec!["/data".into()],
            frozen: None,
            quiesce: None,
            quiescing: None,
        };
        let mut emit = |_: Pid, _: bool, _: &str| {};
        assert!(f.fd().is_none());
        assert!(f.readable(&mut emit).is_empty());
        assert_eq!(f.deadline(), None);
        assert_eq!(f.tick(Instant::now(), &mut emit), None);
    }
}
