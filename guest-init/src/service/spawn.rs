//! [`spawn`]: the fork/exec plumbing (see the module documentation of [`crate::service`]),
//! the pipes and the report of a failed step.

use super::child::*;
use super::plan::*;
use contract::Service;
use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use std::fmt;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Settings of [`spawn`] that are not part of the contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpawnOptions {
    /// The highest capability number the running kernel knows. `None`: read
    /// `/proc/sys/kernel/cap_last_cap` (or, without /proc, ask the kernel cap by cap).
    pub cap_last_cap: Option<u32>,
    /// File mode creation mask of the service. Set explicitly so that whatever umask PID 1
    /// happens to run with never leaks into the service.
    pub umask: u32,
}

impl Default for SpawnOptions {
    fn default() -> Self {
        SpawnOptions {
            cap_last_cap: None,
            umask: 0o022,
        }
    }
}

/// A started service.
#[derive(Debug)]
pub struct Child {
    pub pid: Pid,
    /// Read end of the service's stdout (non-blocking, close-on-exec).
    pub stdout: OwnedFd,
    /// Read end of the service's stderr (non-blocking, close-on-exec).
    pub stderr: OwnedFd,
    /// Read end of the readiness pipe when the contract asks for `notify` readiness
    /// (non-blocking, close-on-exec); see [`read_notify`](super::read_notify).
    pub ready: Option<OwnedFd>,
}

/// Why the service could not be started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpawnError {
    /// The contract asks for something that cannot be done (normally caught by validation).
    Config { field: String, message: String },
    /// A preparation step in guest-init itself failed (pipe, /dev/null, fork, ...).
    Setup { step: &'static str, errno: Errno },
    /// A step in the child, between fork and exec (or the exec itself), failed.
    Exec {
        step: &'static str,
        errno: Errno,
        /// What the step was about, e.g. "service.argv[0] '/usr/bin/nope'".
        context: String,
    },
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpawnError::Config { field, message } => write!(f, "{field}: {message}"),
            SpawnError::Setup { step, errno } => write!(
                f,
                "cannot start the service: {step} failed in guest-init: {}",
                crate::errno::text(*errno)
            ),
            SpawnError::Exec { errno, context, .. } => {
                write!(f, "{context}: {}", crate::errno::text(*errno))
            }
        }
    }
}

impl std::error::Error for SpawnError {}

impl SpawnError {
    /// The contract field at fault as a JSON path (e.g. `service.argv[0]`), when the error
    /// concerns one.
    pub fn field(&self) -> Option<String> {
        match self {
            SpawnError::Config { field, .. } => Some(field.clone()),
            SpawnError::Setup { .. } => None,
            // The context starts with the path: "service.argv[0] '/usr/bin/nope'".
            SpawnError::Exec { context, .. } => context
                .split([' ', ':'])
                .next()
                .filter(|f| f.starts_with("service."))
                .map(str::to_string),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// spawn
// ---------------------------------------------------------------------------------------------

/// Starts the service as `svc` describes; see the module documentation for the design.
///
/// In the child, in this order: default signal handlers, empty signal mask, new session,
/// stdin from /dev/null, stdout/stderr/notify pipes in place, every other fd closed, umask,
/// capability bounding set reduced, keep-caps on, supplementary groups, gid, uid, capability
/// sets (permitted, effective, inheritable, ambient) set to exactly the kept ones, workdir,
/// no-new-privs, `execve` with exactly the contract's environment.
pub fn spawn(svc: &Service, opts: &SpawnOptions) -> Result<Child, SpawnError> {
    let plan = Plan::new(svc, opts)?;
    let fds = Fds::new(plan.notify_fd)?;
    let raw = fds.child_raw();
    let mask = SignalsBlocked::all()?;
    // SAFETY: the child branch only runs `run_child`, which makes async-signal-safe raw
    // system calls on memory prepared before the fork and never returns (exec or _exit).
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        run_child(&plan, &raw);
    }
    // Taken before restoring the signal mask, which could overwrite errno.
    let fork_errno = Errno::last();
    drop(mask);
    if pid < 0 {
        return Err(SpawnError::Setup {
            step: "fork",
            errno: fork_errno,
        });
    }
    let pid = Pid::from_raw(pid);
    // The parent must not hold the child's ends: the report pipe would never reach end of
    // file, and the service's stdout/stderr would never report EOF when it exits.
    let parent = fds.into_parent();
    match read_report(&parent.report) {
        Ok(None) => Ok(Child {
            pid,
            stdout: parent.stdout,
            stderr: parent.stderr,
            ready: parent.ready,
        }),
        Ok(Some((step, errno))) => {
            reap(pid);
            Err(exec_error(svc, &plan, step, errno))
        }
        Err(errno) => {
            // We cannot tell whether the service is running: do not leave an unsupervised
            // half-started process behind.
            let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
            reap(pid);
            Err(SpawnError::Setup {
                step: "reading the exec report pipe",
                errno,
            })
        }
    }
}

/// Reaps a child that failed before exec. Errors are ignored: PID 1's general reaper
/// (`waitpid(-1)`) may have collected it already (ECHILD), which is just as good.
pub(super) fn reap(pid: Pid) {
    let _ = nix::sys::wait::waitpid(pid, None);
}

pub(super) fn config_err(field: impl Into<String>, message: impl Into<String>) -> SpawnError {
    SpawnError::Config {
        field: field.into(),
        message: message.into(),
    }
}

/// Builds the error for a failure the child reported, with the contract value it concerned.
pub(super) fn exec_error(svc: &Service, plan: &Plan, step: Step, errno: Errno) -> SpawnError {
    let argv0 = svc.argv.first().map(String::as_str).unwrap_or("");
    let context = match step {
        Step::Exec => format!("service.argv[0] '{argv0}'"),
        Step::Chdir => format!("service.workdir '{}'", plan.workdir.to_string_lossy()),
        Step::SetResUid => format!("service.uid {}: setresuid", plan.uid),
        Step::SetResGid => format!("service.gid {}: setresgid", plan.gid),
        Step::SetGroups => format!("service.groups {:?}: setgroups", plan.groups),
        Step::NotifyFd => format!(
            "service.readiness.fd {}: dup2",
            plan.notify_fd.unwrap_or(-1)
        ),
        Step::CapSet | Step::AmbientRaise | Step::BoundingDrop => {
            format!(
                "service.capabilities {:?}: {}",
                svc.capabilities,
                step.name()
            )
        }
        other => format!("starting the service: {}", other.name()),
    };
    SpawnError::Exec {
        step: step.name(),
        errno,
        context,
    }
}

// ---------------------------------------------------------------------------------------------
// File descriptors
// ---------------------------------------------------------------------------------------------

/// All pipes and files of one spawn; child ends are moved to high numbers (see `Fds::new`).
pub(super) struct Fds {
    pub(super) devnull: OwnedFd,
    pub(super) stdout: (OwnedFd, OwnedFd),
    pub(super) stderr: (OwnedFd, OwnedFd),
    pub(super) notify: Option<(OwnedFd, OwnedFd, RawFd)>,
    pub(super) report: (OwnedFd, OwnedFd),
}

/// The child's view: plain numbers, since the child must not run destructors.
pub(super) struct ChildRawFds {
    pub(super) stdin: RawFd,
    pub(super) stdout: RawFd,
    pub(super) stderr: RawFd,
    /// (source, target) of the notify pipe's write end.
    pub(super) notify: Option<(RawFd, RawFd)>,
    pub(super) report: RawFd,
}

/// The parent's ends, once the child's ends are closed.
pub(super) struct ParentFds {
    pub(super) stdout: OwnedFd,
    pub(super) stderr: OwnedFd,
    pub(super) ready: Option<OwnedFd>,
    pub(super) report: OwnedFd,
}

impl Fds {
    /// Opens everything with O_CLOEXEC, so that a concurrent fork+exec elsewhere in PID 1
    /// cannot leak these fds into another program.
    ///
    /// The child-side ends are then moved above fd 2 and above the notify fd. The child's
    /// dup2() calls onto 0, 1, 2 and the notify fd can then never overwrite a source that is
    /// still needed, whatever fds PID 1 had free (if PID 1 ran with fd 1 closed, pipe() could
    /// hand out fd 1 itself).
    fn new(notify_fd: Option<RawFd>) -> Result<Fds, SpawnError> {
        let floor = notify_fd.map_or(3, |n| n.saturating_add(1).max(3));
        let devnull = nix::fcntl::open(
            "/dev/null",
            nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|errno| SpawnError::Setup {
            step: "open /dev/null",
            errno,
        })?;
        // SAFETY: open returned a new fd that nothing else owns.
        let devnull = relocate(unsafe { OwnedFd::from_raw_fd(devnull) }, floor)?;
        let stdout = output_pipe(floor, "stdout pipe")?;
        let stderr = output_pipe(floor, "stderr pipe")?;
        let notify = match notify_fd {
            Some(target) => {
                let (r, w) = output_pipe(floor, "readiness pipe")?;
                Some((r, w, target))
            }
            None => None,
        };
        let (r, w) = pipe("exec report pipe")?;
        let report = (r, relocate(w, floor)?);
        Ok(Fds {
            devnull,
            stdout,
            stderr,
            notify,
            report,
        })
    }

    fn child_raw(&self) -> ChildRawFds {
        ChildRawFds {
            stdin: self.devnull.as_raw_fd(),
            stdout: self.stdout.1.as_raw_fd(),
            stderr: self.stderr.1.as_raw_fd(),
            notify: self.notify.as_ref().map(|(_, w, t)| (w.as_raw_fd(), *t)),
            report: self.report.1.as_raw_fd(),
        }
    }

    /// Closes the child's ends (by dropping them) and keeps the parent's.
    fn into_parent(self) -> ParentFds {
        ParentFds {
            stdout: self.stdout.0,
            stderr: self.stderr.0,
            ready: self.notify.map(|(r, _, _)| r),
            report: self.report.0,
        }
    }
}

pub(super) fn pipe(step: &'static str) -> Result<(OwnedFd, OwnedFd), SpawnError> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|errno| SpawnError::Setup { step, errno })
}

/// A pipe whose read end (ours) is non-blocking, so that a supervisor loop can poll it, and
/// whose write end (the service's) stays blocking: O_NONBLOCK belongs to the open file
/// description, and a service getting EAGAIN on its stdout would lose output.
pub(super) fn output_pipe(
    floor: RawFd,
    step: &'static str,
) -> Result<(OwnedFd, OwnedFd), SpawnError> {
    let (r, w) = pipe(step)?;
    nix::fcntl::fcntl(
        r.as_raw_fd(),
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )
    .map_err(|errno| SpawnError::Setup { step, errno })?;
    Ok((r, relocate(w, floor)?))
}

/// Moves `fd` to the lowest free number at or above `floor`, keeping O_CLOEXEC.
pub(super) fn relocate(fd: OwnedFd, floor: RawFd) -> Result<OwnedFd, SpawnError> {
    if fd.as_raw_fd() >= floor {
        return Ok(fd);
    }
    let new = nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(floor))
        .map_err(|errno| SpawnError::Setup {
            step: "moving a pipe above the notify fd (F_DUPFD_CLOEXEC)",
            errno,
        })?;
    // SAFETY: F_DUPFD_CLOEXEC returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// Blocks every signal in the calling thread until dropped.
///
/// Held across fork so that no signal handler of PID 1 can run in the child before the child
/// has reset the handlers to their defaults; the child then unblocks everything itself.
pub(super) struct SignalsBlocked {
    pub(super) old: libc::sigset_t,
}

impl SignalsBlocked {
    fn all() -> Result<SignalsBlocked, SpawnError> {
        // SAFETY: the sets are initialised by sigfillset / pthread_sigmask before being read.
        unsafe {
            let mut all: libc::sigset_t = mem::zeroed();
            let mut old: libc::sigset_t = mem::zeroed();
            libc::sigfillset(&mut all);
            let rc = libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
            if rc != 0 {
                return Err(SpawnError::Setup {
                    step: "blocking signals around fork",
                    errno: Errno::from_raw(rc),
                });
            }
            Ok(SignalsBlocked { old })
        }
    }
}

impl Drop for SignalsBlocked {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved in `all`; cannot fail with a valid `how`.
        unsafe {
            libc::pthread_sigmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut());
        }
    }
}

/// Waits for the child's verdict: `None` once the exec succeeded (end of file, the kernel
/// closed the close-on-exec write end), or the failing step and its errno.
pub(super) fn read_report(fd: &OwnedFd) -> Result<Option<(Step, Errno)>, Errno> {
    let mut buf = [0u8; 8];
    let mut got = 0;
    while got < buf.len() {
        let rest = buf.get_mut(got..).unwrap_or_default();
        match nix::unistd::read(fd.as_raw_fd(), rest) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
    match got {
        0 => Ok(None),
        8 => {
            let (step, errno) = decode_report(buf);
            Ok(Some((step, errno)))
        }
        // Writes of 8 bytes to a pipe are atomic, so this means a broken child.
        _ => Err(Errno::EIO),
    }
}

pub(super) fn encode_report(step: Step, errno: libc::c_int) -> [u8; 8] {
    let mut buf = [0u8; 8];
    let (a, b) = buf.split_at_mut(4);
    a.copy_from_slice(&(step as u32).to_ne_bytes());
    b.copy_from_slice(&errno.to_ne_bytes());
    buf
}

pub(super) fn decode_report(buf: [u8; 8]) -> (Step, Errno) {
    let [a, b, c, d, e, f, g, h] = buf;
    let step = Step::from_u32(u32::from_ne_bytes([a, b, c, d]));
    let errno = Errno::from_raw(i32::from_ne_bytes([e, f, g, h]));
    (step, errno)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_round_trip() {
        for step in Step::ALL {
            let (s, e) = decode_report(encode_report(step, libc::EPERM));
            assert_eq!((s, e), (step, Errno::EPERM));
        }
        assert_eq!(Step::from_u32(999), Step::Unknown);
    }

    #[test]
    fn exec_error_names_the_path() {
        let e = SpawnError::Exec {
            step: "execve",
            errno: Errno::ENOENT,
            context: "service.argv[0] '/usr/bin/nope'".into(),
        };
        assert_eq!(
            e.to_string(),
            "service.argv[0] '/usr/bin/nope': No such file or directory (ENOENT)"
        );
        assert_eq!(e.field().as_deref(), Some("service.argv[0]"));
        let uid = SpawnError::Exec {
            step: "setresuid",
            errno: Errno::EPERM,
            context: "service.uid 7: setresuid".into(),
        };
        assert_eq!(uid.field().as_deref(), Some("service.uid"));
        let other = SpawnError::Exec {
            step: "setsid",
            errno: Errno::EPERM,
            context: "starting the service: setsid".into(),
        };
        assert_eq!(other.field(), None);
    }
}
