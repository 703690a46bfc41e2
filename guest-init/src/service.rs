//! Starting the one service exactly as the contract says, and the small policies around it:
//! restart backoff, the stop signal and readiness probes.
//!
//! # How a service is started
//!
//! [`spawn`] does everything that can fail in an interesting way, or that allocates, *before*
//! `fork`: C strings for argv, env and workdir, the capability masks, the pipes, `/dev/null`.
//! Between `fork` and `execve` the child then only makes raw system calls. That is not a matter
//! of taste: PID 1 may have other threads (and the tests certainly do), and a forked child of a
//! threaded process owns a copy of memory in which another thread may have held the malloc
//! lock, a logger lock or a stdio lock at the moment of the fork. Only async-signal-safe calls
//! are safe there, so no allocation, no `log`, no `format!`, no panics.
//!
//! A failure in the child is not reported by an exit code (a silent 127 tells the operator
//! nothing) but through a close-on-exec "report" pipe: the child writes which step failed and
//! its errno, the parent reads it. End of file without a report means `execve` succeeded (the
//! kernel closed the pipe as part of the exec). This is the classic design of
//! `posix_spawn`, Python's `_posixsubprocess` and Rust's own `std::process`.

use contract::names::{capability_number, signal_number};
use contract::{Readiness, Restart, RestartPolicy, Service};
use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;
use std::convert::Infallible;
use std::ffi::CString;
use std::fmt;
use std::mem;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

// ---------------------------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------------------------

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
    /// (non-blocking, close-on-exec); see [`read_notify`].
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
                "cannot start the service: {step} failed in guest-init: {} ({errno:?})",
                errno.desc()
            ),
            SpawnError::Exec { errno, context, .. } => {
                write!(f, "{context}: {} ({errno:?})", errno.desc())
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
fn reap(pid: Pid) {
    let _ = nix::sys::wait::waitpid(pid, None);
}

fn config_err(field: impl Into<String>, message: impl Into<String>) -> SpawnError {
    SpawnError::Config {
        field: field.into(),
        message: message.into(),
    }
}

/// Builds the error for a failure the child reported, with the contract value it concerned.
fn exec_error(svc: &Service, plan: &Plan, step: Step, errno: Errno) -> SpawnError {
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
// The plan: everything the child needs, allocated before fork
// ---------------------------------------------------------------------------------------------

/// `_LINUX_CAPABILITY_VERSION_3`: 64-bit capability sets in two 32-bit halves.
const CAP_V3: u32 = 0x2008_0522;

/// `struct __user_cap_header_struct` (linux/capability.h).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

/// `struct __user_cap_data_struct` (linux/capability.h); v3 uses two of them.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// The prepared program: no field is allocated, resized or freed after fork.
struct Plan {
    path: CString,
    // Owners of the strings `argv_ptrs` and `env_ptrs` point into; never read directly.
    _argv: Vec<CString>,
    argv_ptrs: Vec<*const libc::c_char>,
    _env: Vec<CString>,
    env_ptrs: Vec<*const libc::c_char>,
    workdir: CString,
    uid: libc::uid_t,
    gid: libc::gid_t,
    groups: Vec<libc::gid_t>,
    /// Bit n set: keep capability n.
    caps: u64,
    cap_last_cap: u32,
    notify_fd: Option<RawFd>,
    umask: libc::mode_t,
    /// Upper bound for the close() loop on kernels without close_range(2).
    fd_limit: RawFd,
}

impl Plan {
    fn new(svc: &Service, opts: &SpawnOptions) -> Result<Plan, SpawnError> {
        let argv = svc
            .argv
            .iter()
            .enumerate()
            .map(|(i, a)| c_string(&format!("service.argv[{i}]"), a))
            .collect::<Result<Vec<_>, _>>()?;
        let path = match argv.first() {
            Some(p) if p.as_bytes().starts_with(b"/") => p.clone(),
            Some(_) => return Err(config_err("service.argv[0]", "must be an absolute path")),
            None => return Err(config_err("service.argv", "is empty")),
        };
        let env = svc
            .env
            .iter()
            .map(|(k, v)| env_entry(k, v))
            .collect::<Result<Vec<_>, _>>()?;
        let workdir = c_string("service.workdir", svc.workdir.as_deref().unwrap_or("/"))?;
        let cap_last_cap = match opts.cap_last_cap {
            Some(n) => n,
            None => read_cap_last_cap(),
        }
        .min(63);
        let caps = capability_mask(&svc.capabilities, cap_last_cap)?;
        Ok(Plan {
            argv_ptrs: null_terminated(&argv),
            env_ptrs: null_terminated(&env),
            path,
            _argv: argv,
            _env: env,
            workdir,
            uid: svc.uid,
            gid: svc.gid,
            groups: svc.groups.clone(),
            caps,
            cap_last_cap,
            notify_fd: notify_fd(&svc.readiness)?,
            umask: opts.umask as libc::mode_t,
            fd_limit: fd_limit(),
        })
    }

    /// The v3 capset data: permitted = effective = inheritable = the kept capabilities.
    /// Inheritable is needed because the kernel only allows ambient capabilities that are
    /// both permitted and inheritable.
    fn cap_data(&self) -> [CapData; 2] {
        let half = |bits: u32| CapData {
            effective: bits,
            permitted: bits,
            inheritable: bits,
        };
        [half(self.caps as u32), half((self.caps >> 32) as u32)]
    }
}

fn c_string(field: &str, s: &str) -> Result<CString, SpawnError> {
    CString::new(s).map_err(|_| config_err(field, "contains a NUL character"))
}

fn env_entry(key: &str, value: &str) -> Result<CString, SpawnError> {
    if key.is_empty() || key.contains('=') {
        return Err(config_err(
            format!("service.env.{key}"),
            "a variable name must be non-empty and cannot contain '='",
        ));
    }
    c_string(&format!("service.env.{key}"), &format!("{key}={value}"))
}

/// The pointer array `execve` wants; the pointers stay valid as long as `strings` lives
/// (moving the Vec does not move the heap buffers of the CStrings).
fn null_terminated(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// Capability names to a bit mask, refusing names this kernel does not know.
fn capability_mask(names: &[String], cap_last_cap: u32) -> Result<u64, SpawnError> {
    let mut mask = 0u64;
    for (i, name) in names.iter().enumerate() {
        let field = format!("service.capabilities[{i}]");
        let n = capability_number(name)
            .ok_or_else(|| config_err(&field, format!("'{name}' is not a Linux capability")))?;
        if n > cap_last_cap {
            return Err(config_err(
                &field,
                format!(
                    "'{name}' is unknown to this kernel (its last capability is {cap_last_cap})"
                ),
            ));
        }
        mask |= 1u64.checked_shl(n).unwrap_or(0);
    }
    Ok(mask)
}

/// The highest capability number of the running kernel. Read before fork (file I/O
/// allocates). Without /proc, ask the kernel: PR_CAPBSET_READ fails with EINVAL for numbers
/// it does not know.
fn read_cap_last_cap() -> u32 {
    if let Some(n) = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
    {
        return n;
    }
    let mut last = 0;
    for cap in 0..64u32 {
        // SAFETY: PR_CAPBSET_READ only reads the calling thread's bounding set.
        let rc = unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap as libc::c_ulong, 0, 0, 0) };
        if rc < 0 {
            break;
        }
        last = cap;
    }
    last
}

fn notify_fd(readiness: &Readiness) -> Result<Option<RawFd>, SpawnError> {
    match readiness {
        Readiness::Notify { fd } => match RawFd::try_from(*fd) {
            // 0 to 2 are the service's stdio; validation refuses them too.
            Ok(n) if n >= 3 => Ok(Some(n)),
            _ => Err(config_err(
                "service.readiness.fd",
                format!("{fd} is not usable; use 3 or above"),
            )),
        },
        _ => Ok(None),
    }
}

/// The soft RLIMIT_NOFILE, capped so that the fallback close() loop stays short even when
/// the limit is huge; fds above the cap are close-on-exec anyway in guest-init.
fn fd_limit() -> RawFd {
    const CAP: libc::rlim_t = 65_536;
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        lim.rlim_cur.min(CAP) as RawFd
    } else {
        1024
    }
}

// ---------------------------------------------------------------------------------------------
// File descriptors
// ---------------------------------------------------------------------------------------------

/// All pipes and files of one spawn; child ends are moved to high numbers (see `Fds::new`).
struct Fds {
    devnull: OwnedFd,
    stdout: (OwnedFd, OwnedFd),
    stderr: (OwnedFd, OwnedFd),
    notify: Option<(OwnedFd, OwnedFd, RawFd)>,
    report: (OwnedFd, OwnedFd),
}

/// The child's view: plain numbers, since the child must not run destructors.
struct ChildRawFds {
    stdin: RawFd,
    stdout: RawFd,
    stderr: RawFd,
    /// (source, target) of the notify pipe's write end.
    notify: Option<(RawFd, RawFd)>,
    report: RawFd,
}

/// The parent's ends, once the child's ends are closed.
struct ParentFds {
    stdout: OwnedFd,
    stderr: OwnedFd,
    ready: Option<OwnedFd>,
    report: OwnedFd,
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

fn pipe(step: &'static str) -> Result<(OwnedFd, OwnedFd), SpawnError> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|errno| SpawnError::Setup { step, errno })
}

/// A pipe whose read end (ours) is non-blocking, so that a supervisor loop can poll it, and
/// whose write end (the service's) stays blocking: O_NONBLOCK belongs to the open file
/// description, and a service getting EAGAIN on its stdout would lose output.
fn output_pipe(floor: RawFd, step: &'static str) -> Result<(OwnedFd, OwnedFd), SpawnError> {
    let (r, w) = pipe(step)?;
    nix::fcntl::fcntl(
        r.as_raw_fd(),
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )
    .map_err(|errno| SpawnError::Setup { step, errno })?;
    Ok((r, relocate(w, floor)?))
}

/// Moves `fd` to the lowest free number at or above `floor`, keeping O_CLOEXEC.
fn relocate(fd: OwnedFd, floor: RawFd) -> Result<OwnedFd, SpawnError> {
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
struct SignalsBlocked {
    old: libc::sigset_t,
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
fn read_report(fd: &OwnedFd) -> Result<Option<(Step, Errno)>, Errno> {
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

fn encode_report(step: Step, errno: libc::c_int) -> [u8; 8] {
    let mut buf = [0u8; 8];
    let (a, b) = buf.split_at_mut(4);
    a.copy_from_slice(&(step as u32).to_ne_bytes());
    b.copy_from_slice(&errno.to_ne_bytes());
    buf
}

fn decode_report(buf: [u8; 8]) -> (Step, Errno) {
    let [a, b, c, d, e, f, g, h] = buf;
    let step = Step::from_u32(u32::from_ne_bytes([a, b, c, d]));
    let errno = Errno::from_raw(i32::from_ne_bytes([e, f, g, h]));
    (step, errno)
}

// ---------------------------------------------------------------------------------------------
// The child, between fork and exec: raw system calls only
// ---------------------------------------------------------------------------------------------

/// The steps of the child, in order; the number goes through the report pipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
enum Step {
    SigMask = 0,
    Setsid,
    Stdin,
    Stdout,
    Stderr,
    NotifyFd,
    CloseFds,
    BoundingDrop,
    KeepCaps,
    SetGroups,
    SetResGid,
    SetResUid,
    CapSet,
    AmbientClear,
    AmbientRaise,
    Chdir,
    NoNewPrivs,
    Exec,
    Unknown,
}

impl Step {
    const ALL: [Step; 19] = [
        Step::SigMask,
        Step::Setsid,
        Step::Stdin,
        Step::Stdout,
        Step::Stderr,
        Step::NotifyFd,
        Step::CloseFds,
        Step::BoundingDrop,
        Step::KeepCaps,
        Step::SetGroups,
        Step::SetResGid,
        Step::SetResUid,
        Step::CapSet,
        Step::AmbientClear,
        Step::AmbientRaise,
        Step::Chdir,
        Step::NoNewPrivs,
        Step::Exec,
        Step::Unknown,
    ];

    fn from_u32(n: u32) -> Step {
        Step::ALL.get(n as usize).copied().unwrap_or(Step::Unknown)
    }

    fn name(self) -> &'static str {
        match self {
            Step::SigMask => "sigprocmask",
            Step::Setsid => "setsid",
            Step::Stdin => "dup2 /dev/null to stdin",
            Step::Stdout => "dup2 stdout pipe",
            Step::Stderr => "dup2 stderr pipe",
            Step::NotifyFd => "dup2 readiness fd",
            Step::CloseFds => "close_range",
            Step::BoundingDrop => "PR_CAPBSET_DROP",
            Step::KeepCaps => "PR_SET_KEEPCAPS",
            Step::SetGroups => "setgroups",
            Step::SetResGid => "setresgid",
            Step::SetResUid => "setresuid",
            Step::CapSet => "capset",
            Step::AmbientClear => "PR_CAP_AMBIENT_CLEAR_ALL",
            Step::AmbientRaise => "PR_CAP_AMBIENT_RAISE",
            Step::Chdir => "chdir",
            Step::NoNewPrivs => "PR_SET_NO_NEW_PRIVS",
            Step::Exec => "execve",
            Step::Unknown => "unknown step",
        }
    }
}

type ChildResult = Result<(), (Step, libc::c_int)>;

/// A raw call's return value: negative means failure with errno set.
fn check(step: Step, rc: impl Into<i64>) -> ChildResult {
    if rc.into() < 0 {
        Err((step, Errno::last_raw()))
    } else {
        Ok(())
    }
}

// On 32-bit x86 and arm the plain uid/gid system calls take 16-bit ids; the "32" variants
// are the real ones. Raw system calls are used instead of libc's wrappers because glibc and
// musl implement set*id by signalling every thread of the process, machinery that must not
// be relied on in a forked child; a raw call changes exactly the calling (only) thread.
#[cfg(any(target_arch = "x86", target_arch = "arm"))]
mod sys {
    pub const SETGROUPS: libc::c_long = libc::SYS_setgroups32;
    pub const SETRESGID: libc::c_long = libc::SYS_setresgid32;
    pub const SETRESUID: libc::c_long = libc::SYS_setresuid32;
}
#[cfg(not(any(target_arch = "x86", target_arch = "arm")))]
mod sys {
    pub const SETGROUPS: libc::c_long = libc::SYS_setgroups;
    pub const SETRESGID: libc::c_long = libc::SYS_setresgid;
    pub const SETRESUID: libc::c_long = libc::SYS_setresuid;
}

/// The child's whole life: set up, exec; on failure report and exit. Never returns, so no
/// destructor of PID 1's data ever runs in the child.
fn run_child(plan: &Plan, fds: &ChildRawFds) -> ! {
    let (step, errno) = match child_setup(plan, fds) {
        Ok(never) => match never {},
        Err(failure) => failure,
    };
    let report = encode_report(step, errno);
    // SAFETY: write and _exit are async-signal-safe; `report` lives on this stack. A failed
    // write cannot be reported anywhere; the parent then sees EOF and a child exiting 127.
    unsafe {
        libc::write(fds.report, report.as_ptr().cast(), report.len());
        libc::_exit(127)
    }
}

fn child_setup(plan: &Plan, fds: &ChildRawFds) -> Result<Infallible, (Step, libc::c_int)> {
    reset_signals()?;
    // SAFETY: setsid has no preconditions; the child of fork is never a group leader.
    check(Step::Setsid, unsafe { libc::setsid() })?;
    place_fds(fds)?;
    close_other_fds(plan, fds)?;
    // SAFETY: umask cannot fail.
    unsafe { libc::umask(plan.umask) };
    set_credentials(plan)?;
    set_capabilities(plan)?;
    // chdir after the uid change: the service must be able to reach its own workdir, and
    // a permission problem shows up here, named, instead of later inside the service.
    // SAFETY: workdir is a NUL-terminated string prepared before fork.
    check(Step::Chdir, unsafe { libc::chdir(plan.workdir.as_ptr()) })?;
    // No setuid binary or file capability can give the service (or anything it runs) more
    // than it has now. Ambient capabilities still pass through exec.
    // SAFETY: prctl with integer arguments only.
    check(Step::NoNewPrivs, unsafe {
        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1 as libc::c_ulong, 0, 0, 0)
    })?;
    // execve, not execvpe: argv[0] is absolute and no PATH lookup is wanted.
    // SAFETY: all three pointers come from the plan: NUL-terminated strings and
    // null-terminated pointer arrays that outlive this call.
    unsafe {
        libc::execve(
            plan.path.as_ptr(),
            plan.argv_ptrs.as_ptr(),
            plan.env_ptrs.as_ptr(),
        )
    };
    Err((Step::Exec, Errno::last_raw()))
}

/// Size of the kernel's signal set, the `sigsetsize` argument of rt_sigaction and
/// rt_sigprocmask: 64 signals everywhere except MIPS (128).
#[cfg(not(any(target_arch = "mips", target_arch = "mips64")))]
const KERNEL_SIGSET_SIZE: usize = 8;
#[cfg(any(target_arch = "mips", target_arch = "mips64"))]
const KERNEL_SIGSET_SIZE: usize = 16;

/// Highest signal number of the kernel (`_NSIG`).
const KERNEL_NSIG: libc::c_int = (KERNEL_SIGSET_SIZE * 8) as libc::c_int;

/// An all-zero kernel `struct sigaction` (handler SIG_DFL, no flags, empty mask) or an
/// all-zero kernel signal set, large enough for every architecture's layout. All-zero is
/// what we want in every field, so the per-architecture field order does not matter.
const ZERO_KERNEL_STRUCT: [u64; 8] = [0; 8];

/// Default disposition for every signal, then an empty mask (see `SignalsBlocked`).
///
/// Handlers would be reset by execve anyway, but *ignored* signals survive exec (PID 1
/// ignores some, the Rust runtime ignores SIGPIPE, and whoever started us may have ignored
/// more), and until exec a handler of PID 1 could run in the child. Raw system calls rather
/// than libc's sigaction/sigprocmask: libc refuses to touch the real-time signals it reserves
/// for itself (32 and 33 in glibc), and an ignored signal 32 would then reach the service.
/// Errors of rt_sigaction are expected and ignored: SIGKILL and SIGSTOP cannot be changed.
fn reset_signals() -> ChildResult {
    let zero = ZERO_KERNEL_STRUCT;
    for sig in 1..=KERNEL_NSIG {
        // SAFETY: rt_sigaction reads a zeroed buffer larger than any kernel sigaction.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig as libc::c_long,
                zero.as_ptr(),
                std::ptr::null_mut::<u64>(),
                KERNEL_SIGSET_SIZE,
            )
        };
    }
    // SAFETY: rt_sigprocmask reads a zeroed set of at least KERNEL_SIGSET_SIZE bytes.
    check(Step::SigMask, unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK as libc::c_long,
            zero.as_ptr(),
            std::ptr::null_mut::<u64>(),
            KERNEL_SIGSET_SIZE,
        )
    })
}

/// stdin, stdout, stderr and the notify fd onto their numbers. The sources are all above
/// the targets (see `Fds::new`), and dup2 clears close-on-exec on the new fd.
fn place_fds(fds: &ChildRawFds) -> ChildResult {
    // SAFETY (all four): dup2 on fds that are open in this process.
    check(Step::Stdin, unsafe { libc::dup2(fds.stdin, 0) })?;
    check(Step::Stdout, unsafe { libc::dup2(fds.stdout, 1) })?;
    check(Step::Stderr, unsafe { libc::dup2(fds.stderr, 2) })?;
    if let Some((source, target)) = fds.notify {
        check(Step::NotifyFd, unsafe { libc::dup2(source, target) })?;
    }
    Ok(())
}

/// Closes every fd above 2 except the notify fd and the report pipe (which exec closes).
/// PID 1 opens everything close-on-exec, but a leaked fd (a console, a disk, the contract)
/// in the service would be a hole, so this does not rely on it.
fn close_other_fds(plan: &Plan, fds: &ChildRawFds) -> ChildResult {
    // The notify target is below the report fd (see `Fds::new`), so the kept fds are sorted.
    let keep = [fds.notify.map_or(-1, |(_, t)| t), fds.report];
    let mut from: RawFd = 3;
    for k in keep {
        if k >= from {
            // Saturating: a panic (debug overflow check) in the forked child must be impossible.
            close_range(from, k.saturating_sub(1), plan.fd_limit)?;
            from = k.saturating_add(1);
        }
    }
    close_range(from, RawFd::MAX, plan.fd_limit)
}

/// Closes fds `first..=last`: close_range(2) (Linux 5.9), or one by one up to `limit`.
fn close_range(first: RawFd, last: RawFd, limit: RawFd) -> ChildResult {
    if first > last {
        return Ok(());
    }
    // SAFETY: close_range takes plain integers.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            last as libc::c_uint,
            0 as libc::c_uint,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    if Errno::last_raw() != libc::ENOSYS {
        return Err((Step::CloseFds, Errno::last_raw()));
    }
    let mut fd = first;
    while fd <= last && fd < limit {
        // SAFETY: closing a number that may or may not be open; EBADF is fine.
        unsafe { libc::close(fd) };
        fd += 1;
    }
    Ok(())
}

/// Groups, gid, uid, in that order: setgroups and setresgid need CAP_SETGID, which is gone
/// once the uid is no longer 0. The bounding set is reduced first, while CAP_SETPCAP is
/// still effective, and PR_SET_KEEPCAPS keeps the permitted set across the uid change (the
/// flag itself is cleared by execve).
fn set_credentials(plan: &Plan) -> ChildResult {
    for cap in 0..=plan.cap_last_cap {
        if plan.caps & 1u64.checked_shl(cap).unwrap_or(0) == 0 {
            // SAFETY: prctl with integer arguments only.
            check(Step::BoundingDrop, unsafe {
                libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0)
            })?;
        }
    }
    // SAFETY: prctl with integer arguments only.
    check(Step::KeepCaps, unsafe {
        libc::prctl(libc::PR_SET_KEEPCAPS, 1 as libc::c_ulong, 0, 0, 0)
    })?;
    // SAFETY: the group list was prepared before fork; its length matches the pointer.
    check(Step::SetGroups, unsafe {
        libc::syscall(sys::SETGROUPS, plan.groups.len(), plan.groups.as_ptr())
    })?;
    // Passed as longs, the width a system call argument has.
    let (g, u) = (plan.gid as libc::c_long, plan.uid as libc::c_long);
    // SAFETY: integer arguments only.
    check(Step::SetResGid, unsafe {
        libc::syscall(sys::SETRESGID, g, g, g)
    })?;
    // SAFETY: integer arguments only.
    check(Step::SetResUid, unsafe {
        libc::syscall(sys::SETRESUID, u, u, u)
    })
}

/// Permitted, effective and inheritable set to exactly the kept capabilities, then the
/// ambient set: that is what makes a non-root service still hold them after execve.
fn set_capabilities(plan: &Plan) -> ChildResult {
    let mut header = CapHeader {
        version: CAP_V3,
        pid: 0,
    };
    let data = plan.cap_data();
    // SAFETY: header and two data structs, the v3 layout, live on this stack.
    check(Step::CapSet, unsafe {
        libc::syscall(
            libc::SYS_capset,
            &mut header as *mut CapHeader,
            data.as_ptr(),
        )
    })?;
    // SAFETY: prctl with integer arguments only.
    check(Step::AmbientClear, unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    })?;
    for cap in 0..=plan.cap_last_cap {
        if plan.caps & 1u64.checked_shl(cap).unwrap_or(0) != 0 {
            // SAFETY: prctl with integer arguments only.
            check(Step::AmbientRaise, unsafe {
                libc::prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                    cap as libc::c_ulong,
                    0 as libc::c_ulong,
                    0 as libc::c_ulong,
                )
            })?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Restart policy and backoff
// ---------------------------------------------------------------------------------------------

/// How a service process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    /// It called exit with this code.
    Exited(i32),
    /// It was killed by this signal number (a number, since real-time signals have no
    /// `Signal` variant).
    Signaled(i32),
}

impl ExitKind {
    /// The end of a process from a wait status; `None` for stops and continues.
    pub fn from_wait_status(status: WaitStatus) -> Option<ExitKind> {
        match status {
            WaitStatus::Exited(_, code) => Some(ExitKind::Exited(code)),
            WaitStatus::Signaled(_, sig, _) => Some(ExitKind::Signaled(sig as i32)),
            _ => None,
        }
    }

    /// Did it end well (exit code 0)?
    pub fn success(self) -> bool {
        self == ExitKind::Exited(0)
    }
}

impl fmt::Display for ExitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitKind::Exited(code) => write!(f, "exited with code {code}"),
            ExitKind::Signaled(sig) => match Signal::try_from(*sig) {
                Ok(s) => write!(f, "killed by {s}"),
                Err(_) => write!(f, "killed by signal {sig}"),
            },
        }
    }
}

/// Whether the policy restarts a service that ended this way. A death by any signal is a
/// failure; when guest-init itself stopped the service (shutdown) the supervisor does not
/// ask this question at all.
pub fn should_restart(policy: RestartPolicy, status: ExitKind) -> bool {
    match policy {
        RestartPolicy::Never => false,
        RestartPolicy::OnFailure => !status.success(),
        RestartPolicy::Always => true,
    }
}

/// Delay before restarting, doubling after each quick failure.
///
/// A run counts as healthy, and resets the delay to the minimum, when it lasted at least
/// ten times the last delay (so a service that crashes after a while but restarts cheaply
/// is not throttled), but never less than one second (a service dying every second is
/// crash-looping whatever the minimum) and never more than `backoff_max` (a service that ran
/// for the longest delay we would ever impose has earned a fresh start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
    last: Option<Duration>,
}

impl Backoff {
    /// Shortest run that counts as healthy, before the `backoff_max` cap.
    pub const HEALTHY_FLOOR: Duration = Duration::from_secs(1);

    pub fn new(restart: &Restart) -> Backoff {
        // Validation guarantees 1 <= min <= max; be safe anyway rather than spin or panic.
        let min = Duration::from_millis(restart.backoff_min_ms.max(1));
        let max = Duration::from_millis(restart.backoff_max_ms).max(min);
        Backoff {
            min,
            max,
            next: min,
            last: None,
        }
    }

    /// The delay to wait now; the following one is twice as long, up to the maximum.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = delay.saturating_mul(2).min(self.max);
        self.last = Some(delay);
        delay
    }

    /// Back to the minimum delay.
    pub fn reset(&mut self) {
        self.next = self.min;
        self.last = None;
    }

    /// How long a run must last to count as healthy (see the type's documentation).
    pub fn healthy_after(&self) -> Duration {
        let last = self.last.unwrap_or(self.min);
        last.saturating_mul(10)
            .max(Self::HEALTHY_FLOOR)
            .min(self.max)
    }

    /// Records how long the service ran before it ended; resets the delay if that was long
    /// enough. Returns whether it reset.
    pub fn record_run(&mut self, ran: Duration) -> bool {
        let healthy = ran >= self.healthy_after();
        if healthy {
            self.reset();
        }
        healthy
    }
}

// ---------------------------------------------------------------------------------------------
// Stop signal
// ---------------------------------------------------------------------------------------------

/// The signal that asks the service to stop. The contract is validated, so an unknown name
/// cannot normally happen; should it anyway, SIGTERM is the conventional request.
pub fn stop_signal(svc: &Service) -> Signal {
    signal_number(&svc.stop_signal)
        .and_then(|n| Signal::try_from(n).ok())
        .unwrap_or(Signal::SIGTERM)
}

// ---------------------------------------------------------------------------------------------
// Readiness
// ---------------------------------------------------------------------------------------------

/// How long one TCP readiness attempt may take.
pub const TCP_PROBE_TIMEOUT: Duration = Duration::from_millis(250);

/// The address a `tcp` readiness probe connects to; `None` for other readiness kinds or an
/// unparsable address (validation rejects those).
pub fn tcp_probe_addr(readiness: &Readiness) -> Option<SocketAddr> {
    match readiness {
        Readiness::Tcp { port, address } => {
            let ip = match address {
                Some(a) => a.parse::<IpAddr>().ok()?,
                None => IpAddr::V4(Ipv4Addr::LOCALHOST),
            };
            Some(SocketAddr::new(ip, *port))
        }
        _ => None,
    }
}

/// One readiness attempt: does a TCP connection to `addr` succeed within
/// [`TCP_PROBE_TIMEOUT`]? The connection is closed right away.
pub fn tcp_ready(addr: SocketAddr) -> bool {
    tcp_ready_within(addr, TCP_PROBE_TIMEOUT)
}

/// [`tcp_ready`] with a chosen timeout. `connect_timeout` is a non-blocking connect plus
/// poll, so a service that accepts slowly cannot stall the supervisor longer than this.
pub fn tcp_ready_within(addr: SocketAddr, timeout: Duration) -> bool {
    let timeout = timeout.max(Duration::from_millis(1));
    TcpStream::connect_timeout(&addr, timeout).is_ok()
}

/// State of `notify` readiness after reading what is available on the pipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notify {
    /// Nothing conclusive yet: keep polling.
    Pending,
    /// A newline arrived: the service is ready.
    Ready,
    /// The service closed the fd (or exited) without writing a newline: it will never
    /// report ready; stop polling the fd.
    Never,
}

/// Reads whatever is available on the (non-blocking) readiness pipe and says what it means.
/// s6 semantics: a newline means ready; bytes before it are ignored; end of file before a
/// newline means never. Read errors other than EAGAIN/EINTR count as never.
pub fn read_notify(fd: BorrowedFd<'_>) -> Notify {
    let mut buf = [0u8; 64];
    loop {
        match nix::unistd::read(fd.as_raw_fd(), &mut buf) {
            Ok(0) => return Notify::Never,
            Ok(n) => {
                if notify_chunk_is_ready(buf.get(..n).unwrap_or_default()) {
                    return Notify::Ready;
                }
            }
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN) => return Notify::Pending,
            Err(_) => return Notify::Never,
        }
    }
}

/// The pure part of [`read_notify`]: does this chunk complete the notification?
pub fn notify_chunk_is_ready(chunk: &[u8]) -> bool {
    chunk.contains(&b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn restart(policy: RestartPolicy, min: u64, max: u64) -> Restart {
        Restart {
            policy,
            backoff_min_ms: min,
            backoff_max_ms: max,
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let mut b = Backoff::new(&restart(RestartPolicy::Always, 100, 1000));
        let got: Vec<_> = (0..7).map(|_| b.next_delay()).collect();
        assert_eq!(got, [100, 200, 400, 800, 1000, 1000, 1000].map(ms));
    }

    #[test]
    fn backoff_reset_goes_back_to_the_minimum() {
        let mut b = Backoff::new(&restart(RestartPolicy::Always, 100, 1000));
        b.next_delay();
        b.next_delay();
        b.reset();
        assert_eq!(b.next_delay(), ms(100));
    }

    #[test]
    fn a_long_run_resets_a_short_one_does_not() {
        let mut b = Backoff::new(&restart(RestartPolicy::Always, 100, 30_000));
        for _ in 0..4 {
            b.next_delay(); // 100, 200, 400, 800
        }
        // 10 × 800 ms = 8 s is the bar.
        assert_eq!(b.healthy_after(), ms(8_000));
        assert!(!b.record_run(ms(7_999)));
        assert_eq!(b.next_delay(), ms(1_600));
        assert!(b.record_run(ms(16_000)));
        assert_eq!(b.next_delay(), ms(100));
    }

    #[test]
    fn healthy_bar_has_a_floor_and_a_ceiling() {
        let mut b = Backoff::new(&restart(RestartPolicy::Always, 10, 30_000));
        b.next_delay();
        assert_eq!(b.healthy_after(), Backoff::HEALTHY_FLOOR);
        for _ in 0..20 {
            b.next_delay();
        }
        assert_eq!(b.healthy_after(), ms(30_000));
        // A max below the floor wins over the floor.
        let b = Backoff::new(&restart(RestartPolicy::Always, 10, 500));
        assert_eq!(b.healthy_after(), ms(500));
    }

    #[test]
    fn backoff_survives_nonsense_bounds() {
        let mut b = Backoff::new(&restart(RestartPolicy::Always, 0, 0));
        assert_eq!(b.next_delay(), ms(1));
        let mut b = Backoff::new(&restart(RestartPolicy::Always, u64::MAX, 5));
        b.next_delay();
        b.next_delay();
        let mut b = Backoff::new(&restart(RestartPolicy::Always, 1, u64::MAX));
        for _ in 0..200 {
            b.next_delay();
        }
    }

    #[test]
    fn restart_policies() {
        use ExitKind::*;
        use RestartPolicy::*;
        let cases = [
            (Never, Exited(0), false),
            (Never, Exited(1), false),
            (Never, Signaled(9), false),
            (OnFailure, Exited(0), false),
            (OnFailure, Exited(3), true),
            (OnFailure, Signaled(15), true),
            (Always, Exited(0), true),
            (Always, Signaled(11), true),
        ];
        for (policy, status, want) in cases {
            assert_eq!(
                should_restart(policy, status),
                want,
                "{policy:?} {status:?}"
            );
        }
    }

    #[test]
    fn exit_kind_from_wait_status() {
        let pid = Pid::from_raw(1);
        assert_eq!(
            ExitKind::from_wait_status(WaitStatus::Exited(pid, 2)),
            Some(ExitKind::Exited(2))
        );
        assert_eq!(
            ExitKind::from_wait_status(WaitStatus::Signaled(pid, Signal::SIGKILL, false)),
            Some(ExitKind::Signaled(9))
        );
        assert_eq!(ExitKind::from_wait_status(WaitStatus::StillAlive), None);
        assert_eq!(ExitKind::Signaled(9).to_string(), "killed by SIGKILL");
        assert_eq!(ExitKind::Signaled(40).to_string(), "killed by signal 40");
    }

    fn service(json: &str) -> Service {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn stop_signal_from_contract_names() {
        let mut s = service(r#"{"argv": ["/bin/true"]}"#);
        assert_eq!(stop_signal(&s), Signal::SIGTERM);
        s.stop_signal = "SIGQUIT".into();
        assert_eq!(stop_signal(&s), Signal::SIGQUIT);
        s.stop_signal = "int".into();
        assert_eq!(stop_signal(&s), Signal::SIGINT);
        s.stop_signal = "SIGBOGUS".into();
        assert_eq!(stop_signal(&s), Signal::SIGTERM);
    }

    #[test]
    fn tcp_probe_address() {
        let r = Readiness::Tcp {
            port: 8080,
            address: None,
        };
        assert_eq!(tcp_probe_addr(&r), Some("127.0.0.1:8080".parse().unwrap()));
        let r = Readiness::Tcp {
            port: 80,
            address: Some("::1".into()),
        };
        assert_eq!(tcp_probe_addr(&r), Some("[::1]:80".parse().unwrap()));
        assert_eq!(tcp_probe_addr(&Readiness::None), None);
    }

    #[test]
    fn notify_chunks() {
        assert!(!notify_chunk_is_ready(b""));
        assert!(!notify_chunk_is_ready(b"ready"));
        assert!(notify_chunk_is_ready(b"\n"));
        assert!(notify_chunk_is_ready(b"x\ny"));
    }

    #[test]
    fn report_round_trip() {
        for step in Step::ALL {
            let (s, e) = decode_report(encode_report(step, libc::EPERM));
            assert_eq!((s, e), (step, Errno::EPERM));
        }
        assert_eq!(Step::from_u32(999), Step::Unknown);
    }

    #[test]
    fn capability_masks() {
        let caps = vec!["CAP_NET_BIND_SERVICE".to_string(), "chown".to_string()];
        assert_eq!(capability_mask(&caps, 40).unwrap(), (1 << 10) | 1);
        let err = capability_mask(&["CAP_BPF".to_string()], 38).unwrap_err();
        assert!(err.to_string().contains("unknown to this kernel"), "{err}");
        assert!(capability_mask(&["CAP_FLY".to_string()], 40).is_err());
    }

    #[test]
    fn plan_rejects_what_cannot_be_executed() {
        let opts = SpawnOptions::default();
        let empty = service(r#"{"argv": []}"#);
        assert!(matches!(
            Plan::new(&empty, &opts),
            Err(SpawnError::Config { .. })
        ));
        let relative = service(r#"{"argv": ["sh"]}"#);
        assert!(matches!(
            Plan::new(&relative, &opts),
            Err(SpawnError::Config { .. })
        ));
        let low_fd = service(r#"{"argv": ["/bin/sh"], "readiness": {"type": "notify", "fd": 2}}"#);
        assert!(matches!(
            Plan::new(&low_fd, &opts),
            Err(SpawnError::Config { .. })
        ));
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
