//! The follow step every caller takes: one poll loop over a launched VM ([`crate::launch`]):
//! its status channel, its process and the requests to stop it ([`crate::requests`]). A stop
//! is ctrl-alt-del over the mconsole, sent only once guest-init has spoken (before that the
//! kernel's default turns it into a reboot, and the VM runs on), then the escalation when
//! the stop timeout passes; how the VM ended is decided once, in [`Ended`]. What a caller
//! adds (host-launch's state file and sd_notify, uml-runc's exit status, the harness's
//! recorded events) it does in its [`Observer`].

use crate::channel::{self, Dropped, LineSplitter};
use crate::launch::Vm;
use crate::requests::{Request, Requests};
use std::os::fd::AsRawFd;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a `cad` that could not be sent is tried again while stopping.
pub const CAD_RETRY: Duration = Duration::from_millis(200);

/// How long the status lines still in the pipe are read after UML exits (its helpers are
/// gone with it, so the end of file comes at once).
pub const DRAIN: Duration = Duration::from_secs(2);

/// How long an mconsole command may take.
const MCONSOLE_TIMEOUT: Duration = Duration::from_secs(2);

/// What a status line was, for the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heard {
    /// Not an event of guest-init's.
    Junk,
    /// An event: guest-init is running (a `cad` now stops the guest).
    Event,
    /// guest-init's last event: the guest powered off.
    PowerOff,
}

/// What the loop did that a caller may report.
#[derive(Debug)]
pub enum Note<'a> {
    /// The `cad` could not be sent; it is tried again.
    CadFailed(&'a std::io::Error),
    /// The stop timeout passed: the VM is halted (then killed after the grace) or killed.
    StopTimedOut,
    /// The grace after a halt or a power-off passed and UML still runs: killed.
    GraceKilled,
    /// The console showed a kernel panic and UML did not end: killed.
    PanicKilled,
}

/// What each caller adds to the loop; every method but [`Observer::status_line`] may be left
/// out.
pub trait Observer {
    /// One bounded line of the status channel (without its newline).
    fn status_line(&mut self, line: &[u8]) -> Heard;
    /// A stop was asked for (by `signal`, if a signal did); `again` for a later one.
    fn stop_requested(&mut self, _signal: Option<libc::c_int>, _again: bool) {}
    /// Something the loop did.
    fn note(&mut self, _note: Note) {}
    /// Called every round: the caller's own timers (saving state, counting drops). Returns
    /// how soon it wants the next round.
    fn tick(&mut self, _now: Instant) -> Option<Duration> {
        None
    }
    /// Whether the console shows a kernel panic; asked (under [`Rules::panic_watch`]) until
    /// guest-init speaks.
    fn console_panicked(&mut self) -> bool {
        false
    }
}

/// What happens when the stop timeout passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escalation {
    /// `halt` over the mconsole, then kill after this grace.
    Halt { grace: Duration },
    /// Kill at once.
    Kill,
}

/// The caller's rules for one follow.
#[derive(Debug, Clone)]
pub struct Rules {
    /// From the stop request to the escalation.
    pub stop_timeout: Duration,
    pub escalation: Escalation,
    /// A second stop request escalates now (host-launch: a second ctrl-c); otherwise it is
    /// ignored.
    pub again_escalates: bool,
    /// A guest that powered off but whose UML does not exit is killed after this.
    pub power_off_grace: Option<Duration>,
    /// Kill a VM whose console shows a kernel panic before guest-init spoke, after
    /// [`crate::boot::PANIC_EXIT_GRACE`].
    pub panic_watch: bool,
    /// The longest status line kept; longer ones are counted in `dropped`.
    pub max_line: usize,
    pub dropped: Arc<Dropped>,
}

/// Why the loop killed the VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kill {
    /// [`Escalation::Kill`] at the stop timeout.
    StopTimeout,
    /// The grace after a halt or a power-off passed.
    Grace,
    /// A kernel panic before init that UML did not end.
    Panic,
    /// A [`Request::KillAt`] came due.
    Deadline,
}

/// How the VM ended, decided once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended {
    pub status: ExitStatus,
    /// guest-init wrote at least one event.
    pub spoke: bool,
    /// A stop was asked for.
    pub stop_requested: bool,
    /// The stop timeout passed.
    pub stop_timed_out: bool,
    /// The loop killed the VM (the last reason it did).
    pub killed: Option<Kill>,
}

/// The loop's own state between rounds.
struct Follower<'r> {
    rules: &'r Rules,
    spoke: bool,
    powered_off: bool,
    stop_deadline: Option<Instant>,
    cad_sent: bool,
    grace_deadline: Option<Instant>,
    kill_at: Option<Instant>,
    panicked: Option<Instant>,
    stop_timed_out: bool,
    killed: Option<Kill>,
}

/// Follows `vm` until UML exits: see the module's text.
pub fn follow(
    vm: &mut Vm,
    rules: &Rules,
    mut requests: Option<&mut dyn Requests>,
    obs: &mut dyn Observer,
) -> std::io::Result<Ended> {
    let mut f = Follower::new(rules);
    let mut split = LineSplitter::new(rules.max_line, rules.dropped.clone());
    let mut open = true;
    let mut caller_next = obs.tick(Instant::now());
    let status = loop {
        let request_fd = requests.as_ref().map_or(-1, |r| r.fd());
        let status_fd = if open { vm.status.as_raw_fd() } else { -1 };
        let mut fds = [request_fd, vm.process.pidfd().as_raw_fd(), status_fd].map(pollfd);
        poll(&mut fds, f.next_wake(caller_next));
        if fds[2].revents != 0 {
            open = channel::read_now(&vm.status, &mut split, &mut |l| f.heard(obs.status_line(l)));
        }
        if let Some(r) = requests.as_mut() {
            for req in r.take() {
                f.request(req, obs);
            }
        }
        f.act(vm, obs);
        caller_next = obs.tick(Instant::now());
        if let Some(s) = vm.process.try_wait()? {
            break s;
        }
    };
    drain(vm, &mut split, open, &mut |l| f.heard(obs.status_line(l)));
    Ok(f.ended(status))
}

impl<'r> Follower<'r> {
    fn new(rules: &'r Rules) -> Self {
        Follower {
            rules,
            spoke: false,
            powered_off: false,
            stop_deadline: None,
            cad_sent: false,
            grace_deadline: None,
            kill_at: None,
            panicked: None,
            stop_timed_out: false,
            killed: None,
        }
    }

    fn heard(&mut self, h: Heard) {
        match h {
            Heard::Junk => {}
            Heard::Event => self.spoke = true,
            Heard::PowerOff => {
                self.spoke = true;
                self.powered_off = true;
            }
        }
    }

    fn request(&mut self, r: Request, obs: &mut dyn Observer) {
        match r {
            Request::KillAt(t) => self.kill_at = Some(self.kill_at.map_or(t, |k| k.min(t))),
            Request::Stop { signal } if self.stop_deadline.is_none() => {
                obs.stop_requested(signal, false);
                self.stop_deadline = Some(Instant::now() + self.rules.stop_timeout);
            }
            Request::Stop { signal } => {
                if self.rules.again_escalates && self.grace_deadline.is_none() {
                    obs.stop_requested(signal, true);
                    self.stop_deadline = Some(Instant::now());
                }
            }
        }
    }

    /// The longest wait before something is due.
    fn next_wake(&self, caller: Option<Duration>) -> Duration {
        let now = Instant::now();
        let mut next = caller.unwrap_or(Duration::from_secs(60));
        if self.rules.panic_watch && !self.spoke {
            next = next.min(crate::boot::PANIC_WATCH);
        }
        if self.stop_deadline.is_some() && !self.cad_sent {
            next = next.min(CAD_RETRY);
        }
        for d in [self.stop_deadline, self.grace_deadline, self.kill_at]
            .into_iter()
            .flatten()
        {
            next = next.min(d.saturating_duration_since(now));
        }
        next
    }

    /// Everything due now: the cad, the escalation, the kills.
    fn act(&mut self, vm: &mut Vm, obs: &mut dyn Observer) {
        self.send_cad(vm, obs);
        self.escalate(vm, obs);
        if self.powered_off && self.grace_deadline.is_none() {
            if let Some(grace) = self.rules.power_off_grace {
                self.grace_deadline = Some(Instant::now() + grace);
            }
        }
        if self.grace_deadline.is_some_and(|d| Instant::now() >= d) {
            self.kill(vm, Kill::Grace, obs, Some(Note::GraceKilled));
        }
        if self.kill_at.is_some_and(|d| Instant::now() >= d) {
            self.kill(vm, Kill::Deadline, obs, None);
        }
        self.watch_panic(vm, obs);
    }

    /// Only once guest-init has spoken: it turns ctrl-alt-del into its SIGINT first, and a
    /// cad before that makes the kernel reboot the VM, which then runs on until the halt.
    fn send_cad(&mut self, vm: &Vm, obs: &mut dyn Observer) {
        if self.stop_deadline.is_none() || self.cad_sent || !self.spoke {
            return;
        }
        if !vm.mconsole.socket.exists() {
            return;
        }
        match crate::mconsole::send(&vm.mconsole, "cad", MCONSOLE_TIMEOUT) {
            Ok(_) => self.cad_sent = true,
            Err(e) => obs.note(Note::CadFailed(&e)),
        }
    }

    fn escalate(&mut self, vm: &mut Vm, obs: &mut dyn Observer) {
        let Some(deadline) = self.stop_deadline else {
            return;
        };
        if self.stop_timed_out || Instant::now() < deadline {
            return;
        }
        self.stop_timed_out = true;
        obs.note(Note::StopTimedOut);
        match self.rules.escalation {
            Escalation::Halt { grace } => {
                let _ = crate::mconsole::send(&vm.mconsole, "halt", MCONSOLE_TIMEOUT);
                self.grace_deadline = Some(Instant::now() + grace);
            }
            Escalation::Kill => self.kill(vm, Kill::StopTimeout, obs, None),
        }
    }

    fn watch_panic(&mut self, vm: &mut Vm, obs: &mut dyn Observer) {
        if !self.rules.panic_watch {
            return;
        }
        if !self.spoke && self.panicked.is_none() && obs.console_panicked() {
            self.panicked = Some(Instant::now());
        }
        if self.killed != Some(Kill::Panic)
            && self
                .panicked
                .is_some_and(|t| t.elapsed() >= crate::boot::PANIC_EXIT_GRACE)
        {
            self.kill(vm, Kill::Panic, obs, Some(Note::PanicKilled));
        }
    }

    /// Kills the VM once per reason; the note says so.
    fn kill(&mut self, vm: &mut Vm, why: Kill, obs: &mut dyn Observer, note: Option<Note>) {
        if self.killed == Some(why) {
            return;
        }
        if let Some(n) = note {
            obs.note(n);
        }
        let _ = vm.process.kill();
        self.killed = Some(why);
    }

    fn ended(&self, status: ExitStatus) -> Ended {
        Ended {
            status,
            spoke: self.spoke,
            stop_requested: self.stop_deadline.is_some(),
            stop_timed_out: self.stop_timed_out,
            killed: self.killed,
        }
    }
}

/// The status lines still in the pipe once UML has exited.
fn drain(vm: &Vm, split: &mut LineSplitter, mut open: bool, each: &mut impl FnMut(&[u8])) {
    let until = Instant::now() + DRAIN;
    while open && Instant::now() < until {
        let mut fds = [pollfd(vm.status.as_raw_fd())];
        poll(&mut fds, until.saturating_duration_since(Instant::now()));
        open = channel::read_now(&vm.status, split, each);
    }
}

fn pollfd(fd: libc::c_int) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

/// Waits until one of `fds` is ready or `timeout` passes (a negative fd is ignored).
fn poll(fds: &mut [libc::pollfd], timeout: Duration) {
    let ms = libc::c_int::try_from(timeout.as_millis().min(60_000)).unwrap_or(60_000);
    let n = libc::nfds_t::try_from(fds.len()).unwrap_or(0);
    // SAFETY: poll on descriptors we own, within the slice's length.
    unsafe {
        libc::poll(fds.as_mut_ptr(), n, ms);
    }
}
