//! The status channel to the host: one JSON object per line on a second console.
//!
//! The host wires the guest's `/dev/tty1` (UML `con1=`) to a pipe or file and reads lifecycle
//! events from it: contract loaded, network up, disk mounted, service started, ready, exited,
//! restarting, shutting down, fatal. Every event carries three clocks:
//! `ts_us` (host wall clock, µs since the Unix epoch), `boot_us` (CLOCK_MONOTONIC: time since the
//! kernel booted) and `init_us` (time since guest-init started), so the host can tell the
//! kernel's share of a boot from guest-init's.
//!
//! Writes never block PID 1: the tty is opened non-blocking, and an event the host does not
//! drain in time is dropped rather than stalling supervision.

pub use contract::status::{Clocks, Event};
use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;
use nix::sys::termios;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{SystemTime, UNIX_EPOCH};

/// Where the host expects status events.
pub const STATUS_TTY: &str = "/dev/tty1";

/// The status channel; events are silently skipped when the host wired no channel.
#[derive(Debug)]
pub struct Status {
    out: Option<OwnedFd>,
    started_us: u64,
}

impl Status {
    /// A channel that writes nowhere, for before `/dev` exists or when there is no tty1.
    pub fn disabled(started_us: u64) -> Self {
        Status {
            out: None,
            started_us,
        }
    }

    /// Opens the status tty in raw mode (no `\n` → `\r\n` translation, no echo).
    pub fn open(path: &str, started_us: u64) -> Self {
        let flags = OFlag::O_WRONLY | OFlag::O_NOCTTY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
        let out = open(path, flags, Mode::empty()).ok().map(|fd| {
            // SAFETY: `open` just returned this descriptor and nothing else owns it.
            let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
            make_raw(&fd);
            fd
        });
        // The channel is PID 1's alone: with its node gone, a service cannot open it (a
        // service with CAP_MKNOD could make one again; the host trusts the channel only for
        // this VM's own status either way, see host-launch/README.md).
        if out.is_some() {
            let _ = nix::unistd::unlink(path);
        }
        Status { out, started_us }
    }

    pub fn is_connected(&self) -> bool {
        self.out.is_some()
    }

    /// Emits `{"event": NAME, "ts_us": .., "boot_us": .., "init_us": .., ...fields}`.
    pub fn emit(&self, event: &Event) {
        let Some(fd) = &self.out else { return };
        let line = contract::status::render(event, now_clocks(self.started_us));
        write_all_nonblocking(fd, line.as_bytes());
    }
}

/// Reads the clocks now; `started_us` is [`monotonic_us`] at guest-init's start.
pub fn now_clocks(started_us: u64) -> Clocks {
    let boot_us = monotonic_us();
    Clocks {
        ts_us: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
            .unwrap_or(0),
        boot_us,
        init_us: boot_us.saturating_sub(started_us),
    }
}

/// CLOCK_MONOTONIC in microseconds (time since the kernel booted).
pub fn monotonic_us() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| {
            let secs = u64::try_from(t.tv_sec()).unwrap_or(0);
            let nanos = u64::try_from(t.tv_nsec()).unwrap_or(0);
            secs.saturating_mul(1_000_000).saturating_add(nanos / 1_000)
        })
        .unwrap_or(0)
}

fn make_raw(fd: &OwnedFd) {
    if let Ok(mut t) = termios::tcgetattr(fd) {
        termios::cfmakeraw(&mut t);
        let _ = termios::tcsetattr(fd, termios::SetArg::TCSANOW, &t);
    }
}

/// Writes what fits now; a full channel drops the rest of the line (the host is not reading).
fn write_all_nonblocking(fd: &OwnedFd, mut rest: &[u8]) {
    let mut spins = 0;
    while !rest.is_empty() && spins < 100 {
        // SAFETY: writing from a valid buffer of the given length to an open descriptor.
        let n = unsafe { libc::write(fd.as_raw_fd(), rest.as_ptr().cast(), rest.len()) };
        if n > 0 {
            rest = rest.get(n.unsigned_abs()..).unwrap_or_default();
            continue;
        }
        let errno = nix::errno::Errno::last();
        if n < 0 && errno == nix::errno::Errno::EINTR {
            continue;
        }
        if n < 0 && errno == nix::errno::Errno::EAGAIN {
            // A tty drains in small bursts: give it a moment, bounded, before giving up.
            spins += 1;
            std::thread::sleep(std::time::Duration::from_micros(200));
            continue;
        }
        return;
    }
}
