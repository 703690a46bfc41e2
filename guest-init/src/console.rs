//! The console: making sure PID 1 has one on fds 0, 1 and 2, and printing to it.
//!
//! Printing never panics (unlike `println!`, which panics when the write fails): messages are
//! written with plain `write(2)` calls and errors are ignored, since there is nowhere else to
//! report them.
//!
//! It is also the backend of the `log` facade ([`install_logger`]): code that has no
//! [`crate::boot::Reporter`] at hand (the first boot lines, the power-off) logs with
//! `::log::info!` and `::log::error!`.

use nix::errno::Errno;
use nix::fcntl::{fcntl, open, FcntlArg, OFlag};
use nix::mount::{mount, MsFlags};
use nix::sys::stat::Mode;
use nix::unistd::dup2;
use std::os::fd::RawFd;
use std::path::Path;

/// Every line guest-init prints starts with this.
pub const PREFIX: &str = "guest-init: ";

/// Why the console could not be set up (written by hand: PID 1 stays small).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleError {
    MountDev(Errno),
    Open(Errno),
    /// Pointing this fd at the console failed.
    Dup(RawFd, Errno),
}

impl std::fmt::Display for ConsoleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConsoleError::MountDev(e) => write!(f, "cannot mount devtmpfs on /dev: {e}"),
            ConsoleError::Open(e) => write!(f, "cannot open /dev/console: {e}"),
            ConsoleError::Dup(target, e) => {
                write!(f, "cannot dup /dev/console to fd {target}: {e}")
            }
        }
    }
}

/// Gives the process a console on fds 0, 1 and 2.
///
/// The kernel normally opens `/dev/console` for init (it mounts devtmpfs on `/dev` first when
/// built with `DEVTMPFS_MOUNT`). If `/dev/console` is missing, devtmpfs is mounted on `/dev`
/// here (the root file system is read-only, so no device node can be created). Any of fds 0, 1
/// and 2 that is not open is then pointed at `/dev/console`.
///
/// Returns a description of what went wrong, if the console could not be set up; the caller
/// can still try to print it (a partly set up console may work).
pub fn setup() -> Result<(), ConsoleError> {
    if !Path::new("/dev/console").exists() {
        match mount(
            Some("devtmpfs"),
            "/dev",
            Some("devtmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
            Some("mode=0755"),
        ) {
            Ok(()) | Err(Errno::EBUSY) => {}
            Err(e) => return Err(ConsoleError::MountDev(e)),
        }
    }
    let missing: Vec<RawFd> = (0..=2).filter(|fd| !is_open(*fd)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let fd = open(
        "/dev/console",
        OFlag::O_RDWR | OFlag::O_NOCTTY,
        Mode::empty(),
    )
    .map_err(ConsoleError::Open)?;
    for target in missing {
        if target != fd {
            dup2(fd, target).map_err(|e| ConsoleError::Dup(target, e))?;
        }
    }
    if fd > 2 {
        let _ = nix::unistd::close(fd);
    }
    Ok(())
}

fn is_open(fd: RawFd) -> bool {
    fcntl(fd, FcntlArg::F_GETFD).is_ok()
}

/// Prints `guest-init: MESSAGE` on the console.
pub fn say(message: &str) {
    write_line(&format!("{PREFIX}{message}\n"));
}

/// Prints `guest-init: fatal: MESSAGE` on the console.
pub fn fatal(message: &str) {
    say(&format!("fatal: {message}"));
}

/// Writes all of `text` to fd 1, retrying on `EINTR` and short writes, ignoring errors.
fn write_line(text: &str) {
    let mut rest = text.as_bytes();
    while !rest.is_empty() {
        // SAFETY: writing from a valid buffer of the given length to a file descriptor.
        let n = unsafe { libc::write(1, rest.as_ptr().cast(), rest.len()) };
        if n < 0 {
            if Errno::last() == Errno::EINTR {
                continue;
            }
            return;
        }
        if n == 0 {
            return;
        }
        rest = rest.get(n.unsigned_abs()..).unwrap_or_default();
    }
}

/// The `log` facade's backend: `info!` and above are printed like [`say`]; `error!` like
/// [`fatal`], because every error guest-init logs that way ends the VM. Records do not go to
/// the remote log: the boot's [`crate::boot::Reporter`] does that for the messages it says,
/// with their status events.
struct ConsoleLogger;

static LOGGER: ConsoleLogger = ConsoleLogger;

impl ::log::Log for ConsoleLogger {
    fn enabled(&self, metadata: &::log::Metadata<'_>) -> bool {
        metadata.level() <= ::log::Level::Info
    }

    fn log(&self, record: &::log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let text = record.args().to_string();
        if record.level() == ::log::Level::Error {
            fatal(&text);
        } else {
            say(&text);
        }
    }

    fn flush(&self) {}
}

/// Makes the console the `log` facade's backend. A second call keeps the first logger.
pub fn install_logger() {
    if ::log::set_logger(&LOGGER).is_ok() {
        ::log::set_max_level(::log::LevelFilter::Info);
    }
}
