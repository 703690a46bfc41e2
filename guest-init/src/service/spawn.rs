//! [`spawn`]: the fork/exec plumbing (see the module documentation of [`crate::service`]),
//! the pipes and the report of a failed step.

use super::child::run_child;
use super::error::SpawnError;
use super::prepared::{ChildRawFds, Prepared, SpawnOptions};
use super::report::{read_report, Step};
use contract::names::Capability;
use contract::Service;
use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

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

// ---------------------------------------------------------------------------------------------
// spawn
// ---------------------------------------------------------------------------------------------

/// Starts the service as `svc` describes; see the module documentation for the design.
///
/// In the child, in this order: default signal handlers, empty signal mask, new session,
/// stdin from /dev/null, stdout/stderr/notify pipes in place, every other fd closed, umask,
/// resource limits, capability bounding set reduced, keep-caps on, supplementary groups, gid, uid, capability
/// sets (permitted, effective, inheritable, ambient) set to exactly the kept ones, workdir,
/// no-new-privs, `execve` with exactly the contract's environment.
pub fn spawn(
    svc: &Service,
    capabilities: &[Capability],
    opts: &SpawnOptions,
) -> Result<Child, SpawnError> {
    let prep = Prepared::new(svc, capabilities, opts)?;
    let fds = Fds::new(prep.notify_fd)?;
    let raw = fds.child_raw();
    let mut stack = vec![0u8; CHILD_STACK];
    let mask = SignalsBlocked::all()?;
    let pid = clone_vfork(
        &mut stack,
        &ChildArgs {
            prep: &prep,
            raw: &raw,
        },
    );
    // Taken before restoring the signal mask, which could overwrite errno.
    let fork_errno = Errno::last();
    drop(mask);
    if pid < 0 {
        return Err(SpawnError::Setup {
            step: "clone (fork)",
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
            Err(exec_error(svc, &prep, step, errno))
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

/// The child's own stack while it shares guest-init's memory: `run_child` keeps a few
/// hundred bytes of locals and calls nothing that recurses.
const CHILD_STACK: usize = 64 * 1024;

/// What the child runs on: the parent's prepared service and fds, alive on the parent's stack, which
/// `CLONE_VFORK` keeps suspended until the child has exec'd or exited.
struct ChildArgs<'a> {
    prep: &'a Prepared,
    raw: &'a ChildRawFds,
}

extern "C" fn child_entry(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `ChildArgs` that `clone_vfork` passed; see there.
    let args = unsafe { &*(arg as *const ChildArgs<'_>) };
    run_child(args.prep, args.raw)
}

/// Starts the child as posix_spawn does: `clone(CLONE_VM | CLONE_VFORK)`, the child on its own
/// stack in guest-init's memory until its `execve`. A `fork` would copy guest-init's address
/// space, which under UML means a host process and page tables to build for it (and a second
/// host process at the exec), then copy-on-write faults in guest-init; this is one exec.
/// Returns the child's pid, or -1 with errno set.
fn clone_vfork(stack: &mut [u8], args: &ChildArgs<'_>) -> libc::pid_t {
    // The stack grows down from its end, 16-byte aligned as the ABI wants.
    let end = stack.as_mut_ptr_range().end as usize & !0xf;
    let flags = libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD;
    // SAFETY: the child runs `run_child` only, which makes async-signal-safe raw system calls
    // on memory prepared before this call, writes nothing of the parent's but errno, and never
    // returns (execve or _exit). Every signal is blocked (SignalsBlocked) until it resets
    // them, so no handler of guest-init runs on the shared memory. `stack` and `args` outlive
    // the child's use of them: this thread is suspended until the child has exec'd or exited.
    unsafe {
        libc::clone(
            child_entry,
            end as *mut libc::c_void,
            flags,
            args as *const ChildArgs<'_> as *mut libc::c_void,
        )
    }
}

/// Reaps a child that failed before exec. Errors are ignored: PID 1's general reaper
/// (`waitpid(-1)`) may have collected it already (ECHILD), which is just as good.
pub(super) fn reap(pid: Pid) {
    let _ = nix::sys::wait::waitpid(pid, None);
}

/// Builds the error for a failure the child reported, with the contract value it concerned.
pub(super) fn exec_error(svc: &Service, prep: &Prepared, step: Step, errno: Errno) -> SpawnError {
    let argv0 = svc.argv.first().map(String::as_str).unwrap_or("");
    let context = match step {
        Step::Exec => format!("service.argv[0] '{argv0}'"),
        Step::Chdir => format!("service.workdir '{}'", prep.workdir.to_string_lossy()),
        Step::SetResUid => format!("service.uid {}: setresuid", prep.uid),
        Step::SetResGid => format!("service.gid {}: setresgid", prep.gid),
        Step::SetGroups => format!("service.groups {:?}: setgroups", prep.groups),
        Step::Rlimit => format!(
            "service.rlimits {:?}: prlimit64",
            svc.rlimits.keys().collect::<Vec<_>>()
        ),
        Step::OomScoreAdj => format!(
            "service.oom_score_adj {}: {}",
            svc.oom_score_adj.unwrap_or_default(),
            step.name()
        ),
        Step::NotifyFd => format!(
            "service.readiness.fd {}: dup2",
            prep.notify_fd.unwrap_or(-1)
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

#[cfg(test)]
mod tests {
    use super::*;

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
