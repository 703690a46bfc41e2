//! Starting UML in its jail, and the handle that waits for it and kills it.
//!
//! The launcher clones a child straight into new mount, PID, IPC and UTS namespaces
//! (`clone3`, with a pidfd). The child becomes PID 1 of its PID namespace, so when UML exits
//! or is killed the kernel kills every helper process UML started: nothing of a VM outlives
//! it. The child then builds the jail ([`crate::jail`]), drops every capability and becomes
//! the VM's uid, and executes UML. Between the clone and the exec it only makes system calls
//! on what [`crate::jail::setup`] prepared (the launcher has threads; allocating there could
//! deadlock). A step that fails writes its number and errno to a close-on-exec pipe, so the
//! launcher learns which step failed and why; the pipe's end-of-file means UML is running.

use crate::child::{child_main, step_name, Child, Step};
use crate::cmdline::{self, Machine};
use crate::jail::{self, cstring, Jail, JailError};
pub use crate::process::Process;
use std::ffi::c_char;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// `struct clone_args` up to `tls` (CLONE_ARGS_SIZE_VER0).
#[repr(C)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
}

/// A pipe whose ends are both close-on-exec and numbered above the standard descriptors and
/// [`STATUS_FD`], so the child's `dup2`s onto 0–3 never overwrite one it still needs.
fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 writes two descriptors into the array on success.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors are open and owned by nobody else.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    Ok((high(r)?, high(w)?))
}

fn high(fd: OwnedFd) -> std::io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC returns a new descriptor that only this OwnedFd owns.
    let n = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 10) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: as above.
    Ok(unsafe { OwnedFd::from_raw_fd(n) })
}

/// A started VM: its handle and the read ends of its console and status channel.
#[derive(Debug)]
pub struct Started {
    pub process: Process,
    pub console: OwnedFd,
    pub status: OwnedFd,
    /// The command line, for people.
    pub shown: String,
}

/// Why UML could not be started (nothing of it is left).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The machine's command line (its message names the field).
    #[error(transparent)]
    Cmdline(#[from] cmdline::CmdlineError),
    #[error(transparent)]
    Jail(#[from] JailError),
    #[error("{what}: {source}")]
    Pipe {
        what: &'static str,
        source: std::io::Error,
    },
    #[error(
        "starting the VM in new namespaces (clone3): {source}{}",
        root_hint(source)
    )]
    Clone { source: std::io::Error },
    #[error("clone3 returned the pid {0}")]
    Pid(i64),
    #[error(
        "starting {}: the VM's jail was not set up within {} s; killed it",
        kernel.display(),
        SET_UP_TIMEOUT.as_secs()
    )]
    Stuck { kernel: PathBuf },
    #[error("starting {}: {} failed: {}{}", kernel.display(), step_name(*step), std::io::Error::from_raw_os_error(*errno), hint(*step, *errno))]
    Step {
        kernel: PathBuf,
        step: u32,
        errno: i32,
    },
}

fn root_hint(e: &std::io::Error) -> &'static str {
    if e.raw_os_error() == Some(libc::EPERM) {
        "; making a VM's jail needs root"
    } else {
        ""
    }
}

/// The kernel's path, arguments and environment as `execve` takes them, made before the
/// clone (the child may not allocate).
struct Exec {
    kernel: std::ffi::CString,
    _strings: Vec<std::ffi::CString>,
    argv: Vec<*const c_char>,
    envp: Vec<*const c_char>,
}

impl Exec {
    fn new(machine: &Machine, args: &[String], jail: &Jail) -> Result<Exec, JailError> {
        let kernel = cstring(machine.kernel.as_os_str().as_bytes(), "the kernel path")?;
        let mut argv_c = vec![kernel.clone()];
        for a in args {
            argv_c.push(cstring(a, "a kernel argument")?);
        }
        let mut envp_c = vec![cstring(format!("TMPDIR={}", cmdline::JAIL_TMP), "TMPDIR")?];
        if jail.files.iter().any(|(_, a)| *a == jail::Access::Preload) {
            envp_c.push(cstring(crate::preload::env_entry(), "LD_PRELOAD")?);
        }
        let pointers = |v: &[std::ffi::CString]| -> Vec<*const c_char> {
            v.iter()
                .map(|s| s.as_ptr())
                .chain([std::ptr::null()])
                .collect()
        };
        // The pointers stay valid: the strings' buffers do not move with the vectors.
        let (argv, envp) = (pointers(&argv_c), pointers(&envp_c));
        argv_c.extend(envp_c);
        Ok(Exec {
            kernel,
            _strings: argv_c,
            argv,
            envp,
        })
    }
}

/// The three pipes of a start: console, status channel and set-up report (read, write).
struct Pipes {
    console: (OwnedFd, OwnedFd),
    status: (OwnedFd, OwnedFd),
    report: (OwnedFd, OwnedFd),
}

impl Pipes {
    fn new() -> Result<Pipes, StartError> {
        let make = |what: &'static str| pipe().map_err(|source| StartError::Pipe { what, source });
        Ok(Pipes {
            console: make("creating the console pipe")?,
            status: make("creating the status pipe")?,
            report: make("creating the set-up pipe")?,
        })
    }
}

/// Starts `machine` in `jail`. `Err` means UML never ran (and nothing of it is left).
pub fn start(machine: &Machine, jail: &Jail) -> Result<Started, StartError> {
    let machine = &machine.normalized();
    let args = cmdline::command_line(machine)?;
    let shown = cmdline::shown(&machine.kernel, &args);
    let setup = jail::setup(jail)?;
    let exec = Exec::new(machine, &args, jail)?;
    let Pipes {
        console: (console_r, console_w),
        status: (status_r, status_w),
        report: (report_r, report_w),
    } = Pipes::new()?;
    let child = Child {
        setup: &setup,
        jail,
        kernel: &exec.kernel,
        argv: &exec.argv,
        envp: &exec.envp,
        console: console_w.as_raw_fd(),
        status: status_w.as_raw_fd(),
        report: report_w.as_raw_fd(),
    };
    let (pid, pidfd) = clone_child(&child)?;
    drop((console_w, status_w, report_w));
    let mut process = Process {
        pid,
        pidfd,
        status: None,
    };
    check_set_up(&mut process, report_r, &machine.kernel)?;
    Ok(Started {
        process,
        console: console_r,
        status: status_r,
        shown,
    })
}

/// Clones the child into new namespaces (it runs [`child_main`] and never returns): its pid
/// and pidfd.
fn clone_child(child: &Child) -> Result<(u32, OwnedFd), StartError> {
    let mut pidfd: libc::c_int = -1;
    let args = CloneArgs {
        flags: (libc::CLONE_NEWNS
            | libc::CLONE_NEWPID
            | libc::CLONE_NEWIPC
            | libc::CLONE_NEWUTS
            | libc::CLONE_PIDFD) as u64,
        pidfd: &mut pidfd as *mut libc::c_int as u64,
        child_tid: 0,
        parent_tid: 0,
        exit_signal: libc::SIGCHLD as u64,
        stack: 0,
        stack_size: 0,
        tls: 0,
    };
    // SAFETY: clone3 without CLONE_VM copies the address space like fork; the child runs only
    // child_main, which never returns and makes system calls on data prepared above.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if pid == 0 {
        // SAFETY: this is the child, right after the clone.
        unsafe { child_main(child) }
    }
    if pid < 0 {
        let source = std::io::Error::last_os_error();
        return Err(StartError::Clone { source });
    }
    // SAFETY: clone3 stored a new pidfd that nothing else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    // A pid is positive (checked above) and below pid_max (2^22 at most): it fits.
    let pid = u32::try_from(pid).map_err(|_| StartError::Pid(pid))?;
    Ok((pid, pidfd))
}

/// Waits for the child's set-up report: its end of file means UML runs; a failed step or a
/// stuck child is an error, the child reaped.
fn check_set_up(process: &mut Process, report: OwnedFd, kernel: &Path) -> Result<(), StartError> {
    let Some(msg) = set_up_report(report, SET_UP_TIMEOUT) else {
        let _ = process.kill();
        let _ = process.wait();
        return Err(StartError::Stuck {
            kernel: kernel.to_path_buf(),
        });
    };
    if msg.len() >= 8 {
        let step = u32::from_ne_bytes([msg[0], msg[1], msg[2], msg[3]]);
        let errno = i32::from_ne_bytes([msg[4], msg[5], msg[6], msg[7]]);
        let _ = process.wait();
        return Err(StartError::Step {
            kernel: kernel.to_path_buf(),
            step,
            errno,
        });
    }
    Ok(())
}

/// How long the child may take from the clone to the exec: a few milliseconds normally (see
/// `benches/jail.rs`); past this it is stuck, and killed rather than waited for.
const SET_UP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// What the child wrote on the set-up pipe before its end of file (empty: UML runs), or `None`
/// if the pipe stayed open past `timeout`.
fn set_up_report(r: OwnedFd, timeout: std::time::Duration) -> Option<Vec<u8>> {
    let deadline = std::time::Instant::now() + timeout;
    let mut file = std::fs::File::from(r);
    let mut msg = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let mut fd = libc::pollfd {
            fd: file.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll on one descriptor we own.
        let n = unsafe { libc::poll(&mut fd, 1, left.as_millis().min(60_000) as libc::c_int) };
        if n == 0 {
            return None;
        }
        if n < 0 {
            continue; // interrupted: poll again until the deadline
        }
        let mut buf = [0u8; 64];
        match file.read(&mut buf) {
            Ok(0) => return Some(msg),
            Ok(k) => msg.extend_from_slice(buf.get(..k).unwrap_or_default()),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return Some(msg),
        }
        if msg.len() > 64 {
            return Some(msg);
        }
    }
}

fn hint(step: u32, err: i32) -> &'static str {
    if err == libc::EPERM && step <= Step::PivotRoot as u32 {
        "; making a VM's jail needs root"
    } else if step == Step::Tap as u32 && err == libc::EBUSY {
        "; another program has the TAP device open"
    } else if step == Step::Tap as u32 && err == libc::ENODEV {
        "; the TAP device does not exist in the VM's network namespace"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_set_up_that_never_ends_is_noticed() {
        let (r, w) = pipe().unwrap();
        assert_eq!(
            set_up_report(r, std::time::Duration::from_millis(100)),
            None
        );
        drop(w);
        let (r, w) = pipe().unwrap();
        std::fs::File::from(w)
            .write_all(&[1, 0, 0, 0, 2, 0, 0, 0])
            .unwrap();
        assert_eq!(
            set_up_report(r, std::time::Duration::from_secs(5)),
            Some(vec![1, 0, 0, 0, 2, 0, 0, 0])
        );
    }
}
