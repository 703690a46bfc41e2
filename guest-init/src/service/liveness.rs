//! The liveness check (`service.liveness`): once the service is ready, a check every
//! `interval_ms`; `failure_threshold` failures in a row and the supervisor restarts the
//! service. Readiness says when a service first works; liveness whether it still does.
//!
//! Neither kind holds the supervisor's loop: a `tcp` check is a non-blocking connect, looked
//! at every [`TCP_POLL`] until it completes or `timeout_ms` passes; an `exec` check is a child
//! process, run as the service's uid and gid with only `PATH` set, reaped by the supervisor's
//! `waitpid(-1)` and SIGKILLed at its timeout.

use contract::liveness::Target;
use contract::Liveness;
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::sys::socket::{self, sockopt, AddressFamily, SockFlag, SockType, SockaddrStorage};
use nix::unistd::Pid;
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What a check found, when it is over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    /// Failed, and how (`timed out after 2000 ms`, `exited with code 1`, `connect: ...`).
    Failed(String),
}

/// What the supervisor is to do after a check ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing (passed, or failed below the threshold).
    Fine,
    /// Failed `failures` times in a row; `restart` when that reaches the threshold.
    Failed {
        error: String,
        failures: u32,
        restart: bool,
    },
}

/// How often a TCP check in flight is looked at (a wake-up of the loop only while one is).
pub const TCP_POLL: Duration = Duration::from_millis(20);

/// A check in flight: an `exec` child, or a TCP connect.
#[derive(Debug)]
enum Running {
    Exec(Pid),
    Tcp(OwnedFd, SocketAddr),
}

#[derive(Debug)]
struct Probe {
    running: Running,
    deadline: Instant,
}

/// The check's state for one run of the service.
#[derive(Debug)]
pub struct Checker {
    cfg: Liveness,
    target: Target,
    uid: u32,
    gid: u32,
    next_at: Option<Instant>,
    probe: Option<Probe>,
    failures: u32,
}

impl Checker {
    /// The service's check (`target` typed by `contract::checked`), run as `uid`/`gid`;
    /// disarmed until [`Checker::arm`].
    pub fn new(cfg: Liveness, target: Target, uid: u32, gid: u32) -> Self {
        Checker {
            cfg,
            target,
            uid,
            gid,
            next_at: None,
            probe: None,
            failures: 0,
        }
    }

    /// `exec /bin/check` or `tcp 127.0.0.1:53`, for events.
    pub fn describe(&self) -> String {
        match &self.target {
            Target::Exec(argv) => format!("exec {}", argv.join(" ")),
            Target::Tcp(a) => format!("tcp {a}"),
        }
    }

    pub fn threshold(&self) -> u32 {
        self.cfg.failure_threshold
    }

    /// The service is ready: the first check comes one interval from now.
    pub fn arm(&mut self, now: Instant) {
        self.failures = 0;
        self.next_at = Some(now + self.interval());
    }

    /// The service ended or is stopping: no more checks (a running probe is killed).
    pub fn disarm(&mut self) {
        self.next_at = None;
        if let Some(Probe {
            running: Running::Exec(pid),
            ..
        }) = self.probe.take()
        {
            let _ = kill(pid, Signal::SIGKILL);
        }
        self.failures = 0;
    }

    /// When the supervisor must wake for the check: its start, a running probe's deadline,
    /// or the next look at a TCP connect in flight.
    pub fn deadline(&self) -> Option<Instant> {
        match &self.probe {
            Some(Probe {
                running: Running::Tcp(..),
                deadline,
            }) => Some((Instant::now() + TCP_POLL).min(*deadline)),
            Some(p) => Some(p.deadline),
            None => self.next_at,
        }
    }

    /// Whether `pid` is the running `exec` probe.
    pub fn is_probe(&self, pid: Pid) -> bool {
        matches!(&self.probe, Some(Probe { running: Running::Exec(p), .. }) if *p == pid)
    }

    /// Starts a due check, looks at a TCP one in flight, or times out a running one; a check
    /// that ended gives its verdict.
    pub fn tick(&mut self, now: Instant) -> Option<Verdict> {
        if let Some(p) = &self.probe {
            if let Running::Tcp(fd, addr) = &p.running {
                if let Some(outcome) = tcp_result(fd, *addr) {
                    self.probe = None;
                    return Some(self.ended(now, outcome));
                }
            }
            if now < p.deadline {
                return None;
            }
            if let Running::Exec(pid) = p.running {
                // Its exit (reaped later) no longer counts: the timeout decided.
                let _ = kill(pid, Signal::SIGKILL);
            }
            self.probe = None;
            let ms = self.cfg.timeout_ms;
            return Some(self.ended(now, Outcome::Failed(format!("timed out after {ms} ms"))));
        }
        if self.next_at.is_none_or(|t| t > now) {
            return None;
        }
        self.next_at = None;
        let started = match &self.target {
            Target::Tcp(a) => tcp_start(*a).map(|fd| Running::Tcp(fd, *a)),
            Target::Exec(argv) => self.spawn(argv).map(Running::Exec),
        };
        match started {
            Ok(running) => {
                self.probe = Some(Probe {
                    running,
                    deadline: now + self.timeout(),
                });
                // A local connect is often complete at once.
                self.tick(now)
            }
            Err(e) => Some(self.ended(now, Outcome::Failed(e.to_string()))),
        }
    }

    /// The `exec` probe was reaped: `code` its exit code, or `None` when a signal ended it.
    pub fn probe_exited(&mut self, now: Instant, status: &str, code: Option<i32>) -> Verdict {
        self.probe = None;
        let outcome = if code == Some(0) {
            Outcome::Passed
        } else {
            Outcome::Failed(status.to_string())
        };
        self.ended(now, outcome)
    }

    fn ended(&mut self, now: Instant, outcome: Outcome) -> Verdict {
        self.next_at = Some(now + self.interval());
        match outcome {
            Outcome::Passed => {
                self.failures = 0;
                Verdict::Fine
            }
            Outcome::Failed(error) => {
                self.failures = self.failures.saturating_add(1);
                Verdict::Failed {
                    error,
                    failures: self.failures,
                    restart: self.failures >= self.cfg.failure_threshold,
                }
            }
        }
    }

    fn interval(&self) -> Duration {
        Duration::from_millis(self.cfg.interval_ms)
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(self.cfg.timeout_ms.max(1))
    }

    fn spawn(&self, argv: &[String]) -> Result<Pid, StartError> {
        let (prog, args) = argv.split_first().ok_or(StartError::NoProgram)?;
        // std's spawn is safe in a threaded process (no allocation between fork and exec);
        // the child is reaped by the supervisor's waitpid(-1), never by std.
        let child = Command::new(prog)
            .args(args)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .uid(self.uid)
            .gid(self.gid)
            .spawn()
            .map_err(|e| StartError::Run(prog.clone(), e))?;
        let pid = i32::try_from(child.id()).map_err(|_| StartError::PidRange)?;
        Ok(Pid::from_raw(pid))
    }
}

/// Why a probe could not start; the check counts it as a failure with this text (written by
/// hand: PID 1 stays small).
#[derive(Debug)]
enum StartError {
    NoProgram,
    Run(String, std::io::Error),
    PidRange,
    Socket(SocketAddr, Errno),
    Connect(SocketAddr, Errno),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::NoProgram => f.write_str("no program to run"),
            StartError::Run(prog, e) => write!(f, "cannot run {prog}: {e}"),
            StartError::PidRange => f.write_str("pid out of range"),
            StartError::Socket(addr, e) => write!(f, "socket for {addr}: {e}"),
            StartError::Connect(addr, e) => write!(f, "connect to {addr}: {e}"),
        }
    }
}

/// Starts a non-blocking connect to `addr` (the socket is closed when the check ends).
fn tcp_start(addr: SocketAddr) -> Result<OwnedFd, StartError> {
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let flags = SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC;
    let fd = socket::socket(family, SockType::Stream, flags, None)
        .map_err(|e| StartError::Socket(addr, e))?;
    match socket::connect(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrStorage::from(addr),
    ) {
        Ok(()) | Err(Errno::EINPROGRESS) | Err(Errno::EINTR) => Ok(fd),
        Err(e) => Err(StartError::Connect(addr, e)),
    }
}

/// What a connect in flight came to, if it is over (a zero-timeout poll: never waits).
fn tcp_result(fd: &OwnedFd, addr: SocketAddr) -> Option<Outcome> {
    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLOUT)];
    match poll(&mut fds, PollTimeout::ZERO) {
        Ok(n) if n > 0 => {}
        _ => return None,
    }
    match socket::getsockopt(fd, sockopt::SocketError) {
        Ok(0) => Some(Outcome::Passed),
        Ok(e) => Some(Outcome::Failed(format!(
            "connect to {addr}: {}",
            Errno::from_raw(e).desc()
        ))),
        Err(e) => Some(Outcome::Failed(format!("connect to {addr}: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checker(threshold: u32) -> Checker {
        let cfg: Liveness = serde_json::from_str(&format!(
            r#"{{"check":{{"type":"tcp","port":1}},"interval_ms":100,"timeout_ms":50,"failure_threshold":{threshold}}}"#
        ))
        .unwrap();
        let target = contract::liveness::target(&cfg).unwrap();
        Checker::new(cfg, target, 0, 0)
    }

    #[test]
    fn failures_in_a_row_reach_the_threshold_and_a_pass_resets_them() {
        let mut c = checker(2);
        let t = Instant::now();
        assert_eq!(c.deadline(), None, "disarmed until ready");
        c.arm(t);
        assert_eq!(c.deadline(), Some(t + Duration::from_millis(100)));
        let fail = |c: &mut Checker| c.ended(t, Outcome::Failed("x".into()));
        assert!(matches!(
            fail(&mut c),
            Verdict::Failed {
                failures: 1,
                restart: false,
                ..
            }
        ));
        assert_eq!(c.ended(t, Outcome::Passed), Verdict::Fine);
        assert!(matches!(
            fail(&mut c),
            Verdict::Failed {
                failures: 1,
                restart: false,
                ..
            }
        ));
        assert!(matches!(
            fail(&mut c),
            Verdict::Failed {
                failures: 2,
                restart: true,
                ..
            }
        ));
        c.disarm();
        assert_eq!(c.deadline(), None);
    }

    #[test]
    fn a_tcp_check_of_a_closed_port_fails_and_names_the_address() {
        let mut c = checker(1);
        let t = Instant::now();
        c.arm(t - Duration::from_millis(200));
        match c.tick(t) {
            Some(Verdict::Failed {
                error,
                restart: true,
                ..
            }) => {
                assert!(error.contains("127.0.0.1:1"), "{error}")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(c.describe(), "tcp 127.0.0.1:1");
    }

    #[test]
    fn a_tcp_check_of_a_listening_port_passes_without_blocking() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let cfg: Liveness = serde_json::from_str(&format!(
            r#"{{"check":{{"type":"tcp","port":{port}}},"interval_ms":100,"timeout_ms":1000}}"#
        ))
        .unwrap();
        let target = contract::liveness::target(&cfg).unwrap();
        let mut c = Checker::new(cfg, target, 0, 0);
        let t = Instant::now();
        c.arm(t - Duration::from_millis(200));
        let mut verdict = c.tick(t);
        for _ in 0..100 {
            if verdict.is_some() {
                break;
            }
            assert!(
                c.deadline().is_some(),
                "a connect in flight is looked at again"
            );
            std::thread::sleep(TCP_POLL);
            verdict = c.tick(Instant::now());
        }
        assert_eq!(verdict, Some(Verdict::Fine));
    }
}
