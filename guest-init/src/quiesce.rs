//! The snapshot's quiesce command (`service.quiesce`, contract version 4): on the host's
//! `freeze`, a program of the image runs before the sync and FIFREEZE, so the service's own
//! files are whole on disk (a database's checkpoint, a log's flush). It runs as the
//! service's uid and gid with the service's environment and working directory, its output
//! logged like the service's, and is SIGKILLed (its process group) at its timeout. It never
//! holds PID 1's loop: the supervisor polls its output and reaps it.

use crate::log::LineBuffer;
use crate::service::ExitKind;
use contract::{Quiesce, Service};
use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

/// Longest line taken from the command in one piece, as from the service.
const MAX_LINE: usize = 8192;

/// The path a command gets when the service's environment has none.
const DEFAULT_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// The quiesce command as the contract gives it, with the service's identity.
#[derive(Debug, Clone)]
pub struct Command {
    argv: Vec<String>,
    timeout: Duration,
    uid: u32,
    gid: u32,
    env: Vec<(String, String)>,
    workdir: String,
}

impl Command {
    /// The service's quiesce command, if the contract has one.
    pub fn of(service: &Service) -> Option<Command> {
        let Quiesce { argv, timeout_ms } = service.quiesce.clone()?;
        let mut env: Vec<(String, String)> = service
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if !service.env.contains_key("PATH") {
            env.push(("PATH".into(), DEFAULT_PATH.into()));
        }
        Some(Command {
            argv,
            timeout: Duration::from_millis(timeout_ms.max(1)),
            uid: service.uid,
            gid: service.gid,
            env,
            workdir: service.workdir.clone().unwrap_or_else(|| "/".into()),
        })
    }

    /// `/bin/flush --all`, for events.
    pub fn describe(&self) -> String {
        self.argv.join(" ")
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Starts it; the error says why it could not (the freeze then goes ahead without it).
    pub fn start(&self) -> Result<Running, String> {
        let (prog, args) = self
            .argv
            .split_first()
            .ok_or_else(|| "no program to run".to_string())?;
        let mut cmd = StdCommand::new(prog);
        cmd.args(args)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&self.workdir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .uid(self.uid)
            .gid(self.gid)
            .process_group(0);
        // SAFETY: the closure only calls sigprocmask, which is async-signal-safe; it undoes
        // PID 1's blocked signals (inherited across fork) so the command can be stopped.
        unsafe {
            cmd.pre_exec(|| {
                let _ = nix::sys::signal::sigprocmask(
                    nix::sys::signal::SigmaskHow::SIG_SETMASK,
                    Some(&nix::sys::signal::SigSet::empty()),
                    None,
                );
                Ok(())
            });
        }
        // std's spawn: the child is reaped by the supervisor's waitpid(-1), never by std.
        let mut child = cmd.spawn().map_err(|e| format!("cannot run {prog}: {e}"))?;
        let pid = i32::try_from(child.id()).map_err(|_| "pid out of range".to_string())?;
        let out = child.stdout.take().map(OwnedFd::from).and_then(nonblocking);
        let err = child.stderr.take().map(OwnedFd::from).and_then(nonblocking);
        let now = Instant::now();
        Ok(Running {
            pid: Pid::from_raw(pid),
            started: now,
            deadline: now + self.timeout,
            timeout: self.timeout,
            pipes: [out, err].map(|fd| fd.map(Output::new)),
        })
    }
}

fn nonblocking(fd: OwnedFd) -> Option<OwnedFd> {
    nix::fcntl::fcntl(
        fd.as_raw_fd(),
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )
    .ok()?;
    Some(fd)
}

/// One output pipe of the command with its partial line.
#[derive(Debug)]
struct Output {
    fd: OwnedFd,
    lines: LineBuffer,
}

impl Output {
    fn new(fd: OwnedFd) -> Self {
        Output {
            fd,
            lines: LineBuffer::new(MAX_LINE),
        }
    }
}

/// The command while it runs.
#[derive(Debug)]
pub struct Running {
    pid: Pid,
    started: Instant,
    deadline: Instant,
    timeout: Duration,
    /// stdout, stderr; `None` once closed.
    pipes: [Option<Output>; 2],
}

/// How a quiesce ended: how long it ran, and why it failed (`None`: exited 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    pub ms: u64,
    pub error: Option<String>,
}

impl Running {
    pub fn pid(&self) -> Pid {
        self.pid
    }

    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Its open output pipes, to poll.
    pub fn fds(&self) -> Vec<BorrowedFd<'_>> {
        self.pipes.iter().flatten().map(|o| o.fd.as_fd()).collect()
    }

    /// Hands each whole line it wrote to `emit(pid, stderr, line)` (never blocks).
    pub fn drain(&mut self, emit: &mut dyn FnMut(Pid, bool, &str)) {
        let pid = self.pid;
        for (i, slot) in self.pipes.iter_mut().enumerate() {
            let stderr = i == 1;
            let Some(o) = slot.as_mut() else { continue };
            if !drain_one(o, &mut |l| emit(pid, stderr, l)) {
                *slot = None;
            }
        }
    }

    /// It was reaped: its last output, then how it went.
    pub fn exited(mut self, kind: ExitKind, emit: &mut dyn FnMut(Pid, bool, &str)) -> Ended {
        self.drain(emit);
        Ended {
            ms: millis(self.started.elapsed()),
            error: (kind != ExitKind::Exited(0)).then(|| kind.to_string()),
        }
    }

    /// Its timeout passed (or the freeze is called off): its process group is killed (the
    /// exit, reaped later, no longer counts).
    pub fn kill(mut self, emit: &mut dyn FnMut(Pid, bool, &str)) -> Ended {
        let _ = kill(Pid::from_raw(-self.pid.as_raw()), Signal::SIGKILL);
        let _ = kill(self.pid, Signal::SIGKILL);
        self.drain(emit);
        Ended {
            ms: millis(self.started.elapsed()),
            error: Some(format!(
                "timed out after {} ms (killed)",
                millis(self.timeout)
            )),
        }
    }
}

/// Reads a pipe until it would block; false once it is closed.
fn drain_one(o: &mut Output, emit: &mut dyn FnMut(&str)) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match nix::unistd::read(o.fd.as_raw_fd(), &mut buf) {
            Ok(n) if n > 0 => {
                for line in o.lines.push(buf.get(..n).unwrap_or_default()) {
                    emit(&line);
                }
            }
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => return true,
            Ok(_) | Err(_) => {
                if let Some(rest) = o.lines.flush() {
                    emit(&rest);
                }
                return false;
            }
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
