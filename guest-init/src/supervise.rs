//! Supervision: PID 1's event loop once the system is up.
//!
//! One thread, one `poll`: a signalfd (SIGCHLD for reaping, SIGINT/SIGTERM/SIGPWR for
//! shutdown), the service's stdout and stderr pipes, its readiness pipe, and timers (restart
//! backoff, TCP readiness probes, the stop deadline) as the poll timeout. Every child is reaped
//! with `waitpid(-1)`, so orphans re-parented to PID 1 never stay zombies, and the service's
//! own status is taken from that same loop, so nothing races for it.
//!
//! Nothing here grows with the number of restarts: each run's pipes are owned by its
//! [`Running`] and closed when it ends.

use crate::figures;
use crate::freeze::Freezer;
use crate::log::LineBuffer;
use crate::service::liveness::{Checker, Verdict};
use crate::service::{self, Backoff, Child, ExitKind, Notify, SpawnOptions};
use crate::status::Event;
use contract::checked;
use contract::{Readiness, Service};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// Signals PID 1 handles through its signalfd; they must be blocked before any thread starts.
pub fn handled_signals() -> SigSet {
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGCHLD,
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGPWR,
        Signal::SIGHUP,
    ] {
        set.add(s);
    }
    set
}

/// Where the supervisor reports what happens.
pub trait Observer {
    /// A lifecycle event for the status channel (and a human line for the console/log).
    fn event(&self, event: Event);
    /// One line of the service's output.
    fn output(&self, pid: Pid, stderr: bool, line: &str);
}

/// Why supervision ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The service ended and its restart policy says not to restart it.
    ServiceEnded(ExitKind),
    /// The host asked for a shutdown (the signal's name).
    Requested(&'static str),
    /// The service could not be started: the contract field at fault (`service` if no
    /// narrower one) and the error.
    SpawnFailed { field: String, error: String },
}

/// Longest line taken from the service in one piece; longer ones are split.
const MAX_LINE: usize = 8192;

/// One pipe from the service with its partial line.
#[derive(Debug)]
struct Pipe {
    fd: OwnedFd,
    lines: LineBuffer,
    open: bool,
}

/// The service while it runs.
#[derive(Debug)]
struct Running {
    pid: Pid,
    started: Instant,
    out: Pipe,
    err: Pipe,
    notify: Option<OwnedFd>,
    ready: bool,
}

#[derive(Debug)]
pub struct Supervisor<'a, O: Observer> {
    svc: &'a Service,
    /// The service's settings that travel as text, parsed by the contract crate.
    typed: &'a checked::Service,
    obs: &'a O,
    opts: SpawnOptions,
    signals: SignalFd,
    backoff: Backoff,
    probe: Option<SocketAddr>,
    next_probe: Instant,
    running: Option<Running>,
    restart_at: Option<Instant>,
    kill_at: Option<Instant>,
    end: Option<End>,
    restarts: u64,
    orphans_reaped: u64,
    /// The liveness check, if the contract has one.
    liveness: Option<Checker>,
    /// How often PID 1 tells the host it is alive (`contract::status::HEARTBEAT_PARAM`), and
    /// when the next [`Event::Heartbeat`] is due; `None`: the host asked for none.
    heartbeat: Option<(Duration, Instant)>,
    /// The host's snapshot requests (freeze, thaw), if the guest has the channel.
    freezer: Option<Freezer>,
    /// When the next `figures` event is due (every [`figures::EVERY`], the first at once).
    next_figures: Instant,
}

impl<'a, O: Observer> Supervisor<'a, O> {
    /// Takes over the (already blocked) [`handled_signals`] through a signalfd.
    pub fn new(
        svc: &'a Service,
        typed: &'a checked::Service,
        obs: &'a O,
        opts: SpawnOptions,
        heartbeat: Option<Duration>,
    ) -> Result<Self, Errno> {
        let signals = SignalFd::with_flags(
            &handled_signals(),
            SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC,
        )?;
        Ok(Supervisor {
            svc,
            typed,
            obs,
            opts,
            signals,
            backoff: Backoff::for_restart(&svc.restart),
            probe: match typed.readiness {
                checked::Readiness::Tcp(addr) => Some(addr),
                _ => None,
            },
            next_probe: Instant::now(),
            running: None,
            restart_at: None,
            kill_at: None,
            end: None,
            restarts: 0,
            orphans_reaped: 0,
            liveness: svc
                .liveness
                .clone()
                .zip(typed.liveness.clone())
                .map(|(l, target)| Checker::new(l, target, svc.uid, svc.gid)),
            heartbeat: heartbeat.map(|every| (every, Instant::now())),
            freezer: None,
            next_figures: Instant::now(),
        })
    }

    /// Takes the host's snapshot requests from `freezer` while supervising.
    pub fn with_freezer(mut self, freezer: Freezer) -> Self {
        self.freezer = Some(freezer);
        self
    }

    /// Orphans reaped so far (processes other than the service).
    pub fn orphans_reaped(&self) -> u64 {
        self.orphans_reaped
    }

    /// Starts the service and supervises it until it ends for good or a shutdown is asked
    /// for; on return the service is no longer running.
    pub fn run(&mut self) -> End {
        self.start();
        loop {
            if let Some(end) = self.finished() {
                // Never power off (or unmount) frozen.
                self.thaw("shutdown");
                return end;
            }
            self.wait_and_handle();
        }
    }

    fn finished(&self) -> Option<End> {
        match (&self.end, &self.running) {
            (Some(end), None) => Some(end.clone()),
            _ => None,
        }
    }

    fn start(&mut self) {
        self.restart_at = None;
        match service::spawn(self.svc, &self.typed.capabilities, &self.opts) {
            Ok(child) => self.started(child),
            Err(e) => {
                let field = e.field().unwrap_or_else(|| "service".to_string());
                let error = e.to_string();
                self.obs.event(Event::Fatal {
                    field: Some(field.clone()),
                    reason: error.clone(),
                });
                self.end = Some(End::SpawnFailed { field, error });
            }
        }
    }

    fn started(&mut self, child: Child) {
        let Child {
            pid,
            stdout,
            stderr,
            ready,
        } = child;
        self.obs.event(Event::ServiceStarted {
            pid: pid.as_raw(),
            argv0: self.svc.argv.first().cloned(),
            restarts: self.restarts,
        });
        let pipe = |fd| Pipe {
            fd,
            lines: LineBuffer::new(MAX_LINE),
            open: true,
        };
        let mut run = Running {
            pid,
            started: Instant::now(),
            out: pipe(stdout),
            err: pipe(stderr),
            notify: ready,
            ready: false,
        };
        if matches!(self.svc.readiness, Readiness::None) {
            run.ready = true;
            self.obs.event(Event::Ready {
                pid: pid.as_raw(),
                after_ms: 0,
                via: None,
            });
            self.arm_liveness();
        }
        self.next_probe = Instant::now();
        self.running = Some(run);
    }

    /// The poll timeout: the nearest of the restart time, the next probe and the kill deadline.
    fn timeout(&self) -> PollTimeout {
        let now = Instant::now();
        let probing = self.running.as_ref().is_some_and(|r| !r.ready)
            && self.probe.is_some()
            && self.kill_at.is_none();
        let deadlines = [
            self.restart_at,
            self.kill_at,
            probing.then_some(self.next_probe),
            self.heartbeat.map(|(_, next)| next),
            Some(self.next_figures),
            self.liveness.as_ref().and_then(Checker::deadline),
            self.freezer.as_ref().and_then(Freezer::deadline),
        ];
        match deadlines.iter().flatten().min() {
            None => PollTimeout::NONE,
            Some(t) => {
                let ms = t.saturating_duration_since(now).as_millis().min(60_000) as u16;
                PollTimeout::from(ms)
            }
        }
    }

    fn wait_and_handle(&mut self) {
        let timeout = self.timeout();
        let (sig, out, err, notify, requests) = {
            let mut fds = vec![PollFd::new(self.signals.as_fd(), PollFlags::POLLIN)];
            let requests_slot = self.freezer.as_ref().and_then(Freezer::fd).map(|fd| {
                fds.push(PollFd::new(fd, PollFlags::POLLIN));
                fds.len() - 1
            });
            let quiesce_from = fds.len();
            for fd in self
                .freezer
                .as_ref()
                .map(Freezer::quiesce_fds)
                .unwrap_or_default()
            {
                fds.push(PollFd::new(fd, PollFlags::POLLIN));
            }
            let quiesce_slots = quiesce_from..fds.len();
            let mut slots = [None, None, None];
            if let Some(r) = &self.running {
                let extra = [
                    r.out.open.then(|| r.out.fd.as_fd()),
                    r.err.open.then(|| r.err.fd.as_fd()),
                    r.notify.as_ref().map(|f| f.as_fd()),
                ];
                for (slot, fd) in slots.iter_mut().zip(extra) {
                    if let Some(fd) = fd {
                        *slot = Some(fds.len());
                        fds.push(PollFd::new(fd, PollFlags::POLLIN));
                    }
                }
            }
            match poll(&mut fds, timeout) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => self.obs.event(Event::Warning {
                    reason: format!("poll failed: {e}"),
                }),
            }
            let ready = |i: Option<usize>| {
                i.and_then(|i| fds.get(i))
                    .and_then(|f| f.revents())
                    .is_some_and(|r| !r.is_empty())
            };
            (
                ready(Some(0)),
                ready(slots[0]),
                ready(slots[1]),
                ready(slots[2]),
                ready(requests_slot) || quiesce_slots.clone().any(|i| ready(Some(i))),
            )
        };
        if requests {
            let obs = self.obs;
            let mut emit = |pid: Pid, stderr: bool, line: &str| obs.output(pid, stderr, line);
            if let Some(f) = self.freezer.as_mut() {
                f.quiesce_output(&mut emit);
                for e in f.readable(&mut emit) {
                    obs.event(e);
                }
            }
        }
        if out {
            self.drain(false);
        }
        if err {
            self.drain(true);
        }
        if notify {
            self.check_notify();
        }
        if sig {
            self.handle_signals();
        }
        self.handle_timers();
    }

    /// Reads what the service wrote to one of its pipes and passes on whole lines.
    fn drain(&mut self, stderr: bool) {
        let Some(run) = self.running.as_mut() else {
            return;
        };
        let pid = run.pid;
        let pipe = if stderr { &mut run.err } else { &mut run.out };
        drain_pipe(pipe, |line| self.obs.output(pid, stderr, line));
    }

    fn check_notify(&mut self) {
        let Some(run) = self.running.as_mut() else {
            return;
        };
        let Some(fd) = &run.notify else { return };
        match service::read_notify(fd.as_fd()) {
            Notify::Pending => {}
            Notify::Ready => {
                run.notify = None;
                if !run.ready {
                    run.ready = true;
                    let after = millis(run.started.elapsed());
                    self.obs.event(Event::Ready {
                        pid: run.pid.as_raw(),
                        after_ms: after,
                        via: Some("notify".into()),
                    });
                    self.arm_liveness();
                }
            }
            Notify::Never => run.notify = None,
        }
    }

    fn handle_signals(&mut self) {
        while let Ok(Some(info)) = self.signals.read_signal() {
            match Signal::try_from(info.ssi_signo as i32) {
                Ok(Signal::SIGCHLD) => self.reap(),
                Ok(Signal::SIGINT) => self.request_stop("SIGINT (ctrl-alt-del)"),
                Ok(Signal::SIGTERM) => self.request_stop("SIGTERM"),
                Ok(Signal::SIGPWR) => self.request_stop("SIGPWR"),
                _ => {}
            }
        }
        // Signals coalesce: reap anyway, in case a SIGCHLD was merged with an earlier one.
        self.reap();
    }

    /// Collects every exited child; the service's end is handled, orphans are just counted.
    fn reap(&mut self) {
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(status) => {
                    let Some(pid) = status.pid() else { continue };
                    let is_service = self.running.as_ref().is_some_and(|r| r.pid == pid);
                    let is_probe = self.liveness.as_ref().is_some_and(|l| l.is_probe(pid));
                    let is_quiesce = self.freezer.as_ref().is_some_and(|f| f.is_quiesce(pid));
                    match ExitKind::from_wait_status(status) {
                        Some(kind) if is_service => self.service_ended(kind),
                        Some(kind) if is_probe => self.probe_exited(kind),
                        Some(kind) if is_quiesce => self.quiesce_exited(kind),
                        Some(_) => self.orphans_reaped += 1,
                        None => {}
                    }
                }
            }
        }
    }

    fn service_ended(&mut self, kind: ExitKind) {
        let Some(mut run) = self.running.take() else {
            return;
        };
        if let Some(l) = self.liveness.as_mut() {
            l.disarm();
        }
        // The last output may still sit in the pipes.
        let pid = run.pid;
        drain_pipe(&mut run.out, |line| self.obs.output(pid, false, line));
        drain_pipe(&mut run.err, |line| self.obs.output(pid, true, line));
        let ran = run.started.elapsed();
        let (code, signal) = match kind {
            ExitKind::Exited(c) => (Some(c), None),
            ExitKind::Signaled(s) => (None, Some(s)),
        };
        self.obs.event(Event::Exited {
            pid: pid.as_raw(),
            status: kind.to_string(),
            code,
            signal,
            ran_ms: millis(ran),
            // Only a SIGKILL can be the OOM killer's; other ends need no look at the log.
            oom: kind == ExitKind::Signaled(nix::libc::SIGKILL)
                && service::oom::killed_by_oom(pid.as_raw()),
        });
        if self.end.is_some() {
            return; // stopping: this was the expected end
        }
        if !service::should_restart(self.svc.restart.policy, kind) {
            self.end = Some(End::ServiceEnded(kind));
            return;
        }
        self.backoff.record_run(ran);
        let delay = self.backoff.next_delay();
        self.restarts += 1;
        self.obs.event(Event::Restarting {
            delay_ms: millis(delay),
            restarts: self.restarts,
        });
        self.restart_at = Some(Instant::now() + delay);
    }

    /// Begins a graceful stop: the stop signal now, SIGKILL to everything at the deadline.
    fn request_stop(&mut self, reason: &'static str) {
        if self.end.is_some() {
            return;
        }
        self.end = Some(End::Requested(reason));
        self.restart_at = None;
        // A frozen service could not finish its writes and stop.
        self.thaw("shutdown");
        if let Some(l) = self.liveness.as_mut() {
            l.disarm();
        }
        let timeout = Duration::from_millis(self.svc.stop_timeout_ms);
        self.obs.event(Event::ShuttingDown {
            reason: reason.to_string(),
            stop_timeout_ms: self.svc.stop_timeout_ms,
        });
        if let Some(run) = &self.running {
            let sig = service::stop_signal(self.typed.stop_signal);
            // The service leads its own session and process group: signal the whole group,
            // so helpers it started are asked too.
            let _ = kill(Pid::from_raw(-run.pid.as_raw()), sig);
            let _ = kill(run.pid, sig);
            self.kill_at = Some(Instant::now() + timeout);
        }
    }

    /// Thaws a freeze now (shutdown), reporting it.
    fn thaw(&mut self, by: &str) {
        let obs = self.obs;
        let mut emit = |pid: Pid, stderr: bool, line: &str| obs.output(pid, stderr, line);
        let event = self
            .freezer
            .as_mut()
            .and_then(|f| f.thaw_now(by, &mut emit));
        if let Some(e) = event {
            obs.event(e);
        }
    }

    fn handle_timers(&mut self) {
        let now = Instant::now();
        let obs = self.obs;
        let mut emit = |pid: Pid, stderr: bool, line: &str| obs.output(pid, stderr, line);
        let ticked = self.freezer.as_mut().and_then(|f| f.tick(now, &mut emit));
        if let Some(e) = ticked {
            obs.event(e);
        }
        if self.kill_at.is_some_and(|t| t <= now) {
            self.kill_at = None;
            self.obs.event(Event::StopTimeout {
                action: "SIGKILL to every process".into(),
            });
            kill_everything(Signal::SIGKILL);
        }
        if self.restart_at.is_some_and(|t| t <= now) && self.end.is_none() {
            self.start();
        }
        self.probe_tcp(now);
        if let Some((every, next)) = self.heartbeat.as_mut() {
            if *next <= now {
                self.obs.event(Event::Heartbeat {
                    restarts: self.restarts,
                });
                *next = now + *every;
            }
        }
        if self.next_figures <= now {
            self.obs.event(figures::read());
            self.next_figures = now + figures::EVERY;
        }
        let verdict = self.liveness.as_mut().and_then(|l| l.tick(now));
        if let Some(v) = verdict {
            self.liveness_verdict(v);
        }
    }

    /// The quiesce command ended: the freeze it waited for follows.
    fn quiesce_exited(&mut self, kind: ExitKind) {
        let obs = self.obs;
        let mut emit = |pid: Pid, stderr: bool, line: &str| obs.output(pid, stderr, line);
        let frozen = self
            .freezer
            .as_mut()
            .and_then(|f| f.quiesce_exited(kind, &mut emit));
        if let Some(e) = frozen {
            obs.event(e);
        }
    }

    fn arm_liveness(&mut self) {
        if let Some(l) = self.liveness.as_mut() {
            l.arm(Instant::now());
        }
    }

    fn probe_exited(&mut self, kind: ExitKind) {
        let code = match kind {
            ExitKind::Exited(c) => Some(c),
            ExitKind::Signaled(_) => None,
        };
        let status = kind.to_string();
        let verdict = self
            .liveness
            .as_mut()
            .map(|l| l.probe_exited(Instant::now(), &status, code));
        if let Some(v) = verdict {
            self.liveness_verdict(v);
        }
    }

    /// A failed check is reported; at the threshold the service is killed (SIGKILL to its
    /// process group: a hung service may not heed its stop signal), and its end then goes
    /// through the restart policy like any death by signal.
    fn liveness_verdict(&mut self, v: Verdict) {
        let Verdict::Failed {
            error,
            failures,
            restart,
        } = v
        else {
            return;
        };
        let (Some(l), Some(run)) = (self.liveness.as_mut(), self.running.as_ref()) else {
            return;
        };
        self.obs.event(Event::LivenessFailed {
            pid: run.pid.as_raw(),
            check: l.describe(),
            error,
            failures,
            threshold: l.threshold(),
        });
        if restart && self.end.is_none() {
            l.disarm();
            let _ = kill(Pid::from_raw(-run.pid.as_raw()), Signal::SIGKILL);
            let _ = kill(run.pid, Signal::SIGKILL);
        }
    }

    fn probe_tcp(&mut self, now: Instant) {
        let Some(addr) = self.probe else { return };
        let Some(run) = self.running.as_mut() else {
            return;
        };
        if run.ready || self.next_probe > now || self.kill_at.is_some() {
            return;
        }
        if service::tcp_ready(addr) {
            run.ready = true;
            let after = millis(run.started.elapsed());
            self.obs.event(Event::Ready {
                pid: run.pid.as_raw(),
                after_ms: after,
                via: Some(format!("tcp {addr}")),
            });
            self.arm_liveness();
        } else {
            // Probe often right after start, then back off so an idle wait costs little.
            let since = run.started.elapsed();
            let every = (since / 10).clamp(Duration::from_millis(5), Duration::from_millis(500));
            self.next_probe = now + every;
        }
    }
}

/// A duration in whole milliseconds, saturating (a u64 of ms outlasts any VM).
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Reads a non-blocking pipe until it would block, handing each complete line to `emit`.
fn drain_pipe(pipe: &mut Pipe, mut emit: impl FnMut(&str)) {
    if !pipe.open {
        return;
    }
    let mut buf = [0u8; 4096];
    loop {
        match nix::unistd::read(pipe.fd.as_raw_fd(), &mut buf) {
            Ok(0) => {
                pipe.open = false;
                if let Some(rest) = pipe.lines.flush() {
                    emit(&rest);
                }
                return;
            }
            Ok(n) => {
                for line in pipe.lines.push(buf.get(..n).unwrap_or_default()) {
                    emit(&line);
                }
            }
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => return,
            Err(_) => {
                pipe.open = false;
                return;
            }
        }
    }
}

/// Sends `sig` to every process but PID 1 (kill(-1) semantics).
pub fn kill_everything(sig: Signal) {
    let _ = kill(Pid::from_raw(-1), sig);
}

/// Kills everything left and reaps it all, waiting at most `limit`; returns how many processes
/// were reaped.
pub fn kill_and_reap_all(limit: Duration) -> u64 {
    kill_everything(Signal::SIGKILL);
    let deadline = Instant::now() + limit;
    let mut reaped = 0;
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => {
                if Instant::now() >= deadline {
                    return reaped;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            Ok(_) => reaped += 1,
            Err(_) => return reaped, // ECHILD: nothing left
        }
    }
}
