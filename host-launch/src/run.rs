//! Running an appliance in the foreground: prepare the host ([`crate::prepare`]), boot UML in
//! its jail, follow its status events, stop it gracefully on SIGINT/SIGTERM/SIGHUP, clean up,
//! and say how it ended.

use crate::error::{Error, IoContext, Result};
use crate::events::{self, Event};
use crate::exit::{self, Outcome, Seen};
use crate::load::{self, Loaded};
use crate::notify::Notifier;
use crate::output::{say, shown_line, Printer};
use crate::prepare::{prepare, Prepared, Undo};
use crate::saver::Saver;
use crate::state::{Phase, State};
use crate::tap;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use vmm::channel::{self, CappedLog, Dropped, LineSplitter};

pub use crate::prepare::{clean_stale, describe_kernel, preflight, Options};

pub use vmm::boot::BOOT_ATTEMPTS;

/// Time added to the service's stop timeout before the VM is halted: guest-init's own
/// shutdown (kill the rest, sync, unmount) and a boot that is not yet far enough to stop.
pub const STOP_MARGIN: Duration = Duration::from_secs(10);

/// How long a halted VM may take to exit before it is killed.
pub const HALT_GRACE: Duration = Duration::from_secs(5);

/// Signals that ask the launcher to stop the appliance.
fn stop_signals() -> SigSet {
    let mut s = SigSet::empty();
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        s.add(sig);
    }
    s
}

/// The bounds on what the guest makes the host hold.
pub struct Bounds {
    pub console_bytes: u64,
    pub events_bytes: u64,
    pub status_line: usize,
}

impl Bounds {
    /// The spec's `limits`, each left out at its default.
    pub fn of(l: Option<&appliance::spec::HostLimits>) -> Bounds {
        let l = l.cloned().unwrap_or_default();
        Bounds {
            console_bytes: l.console_log_bytes.unwrap_or(channel::DEFAULT_CONSOLE_CAP),
            events_bytes: l.events_log_bytes.unwrap_or(channel::DEFAULT_EVENTS_CAP),
            status_line: l
                .status_line_bytes
                .map(|n| n as usize)
                .unwrap_or(channel::DEFAULT_MAX_LINE),
        }
    }
}

/// A booted VM: its process, its status channel and the thread copying its console.
struct Booted {
    process: vmm::spawn::Process,
    status: OwnedFd,
    console: std::thread::JoinHandle<()>,
    mconsole: vmm::mconsole::Target,
}

/// Starts UML in its jail, with the console going to the capped console log (and, under
/// systemd, also to the launcher's output, so the journal has the guest's lines).
fn spawn(p: &Prepared, bounds: &Bounds, dropped: &Arc<Dropped>, echo: bool) -> Result<Booted> {
    let log = CappedLog::open(&p.dir.console(), bounds.console_bytes, dropped.clone())
        .io_context(|| format!("opening {}", p.dir.console().display()))?;
    let started = vmm::spawn::start(&p.machine, &p.jail).map_err(Error::host)?;
    let tee = crate::output::console_echo(echo, &p.state.name, bounds.status_line, dropped);
    let console = channel::pump_console(File::from(started.console), log, tee);
    channel::set_nonblocking(&started.status)
        .map_err(|e| Error::host(format!("making the status pipe non-blocking: {e}")))?;
    let mconsole = vmm::mconsole::Target::jailed(
        started.process.pid(),
        &p.machine.umid,
        p.jail.netns.clone(),
        p.jail.uid,
    );
    Ok(Booted {
        process: started.process,
        status: started.status,
        console,
        mconsole,
    })
}

/// What a read of the status pipe found.
#[derive(PartialEq, Eq)]
enum Channel {
    Open,
    Closed,
}

/// Reads what the status pipe holds now, split into bounded lines (`vmm::channel::read_now`).
fn read_status(fd: &OwnedFd, split: &mut LineSplitter, lines: &mut Vec<String>) -> Channel {
    let open = channel::read_now(fd, split, &mut |l| {
        lines.push(String::from_utf8_lossy(l).into_owned())
    });
    if open {
        Channel::Open
    } else {
        Channel::Closed
    }
}

/// Waits until one of `fds` is ready or `timeout` passes; the ready ones' `revents` are set.
fn wait(fds: &mut [libc::pollfd], timeout: Duration) {
    let ms = timeout.as_millis().min(60_000) as libc::c_int;
    // SAFETY: poll on descriptors we own, within the slice's length.
    unsafe {
        libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms);
    }
}

/// Runs the appliance in the foreground until the VM ends. `Err` means it never booted (and
/// the host is as it was); `Ok` says how the VM ended.
pub fn run(spec_path: &Path, opts: &Options) -> Result<Outcome> {
    // Before any thread starts: it edits the environment.
    let notify = Rc::new(Notifier::from_env());
    let r = run_notifying(spec_path, opts, &notify);
    if let Err(e) = &r {
        // `systemctl status` shows this line: the field at fault and what to change.
        notify.status(&format!("failed: {}", e.message.replace('\n', "; ")));
    }
    r
}

fn run_notifying(spec_path: &Path, opts: &Options, notify: &Rc<Notifier>) -> Result<Outcome> {
    notify.status("checking the spec");
    let l = load::load_for_launch(spec_path, opts.image.as_deref())?;
    // Block the stop signals before any thread starts, so they wait in the signalfd.
    let sigs = stop_signals();
    let _ = sigs.thread_block();
    notify.status("preparing the host");
    let mut p = prepare(&l, opts)?;
    p.machine
        .extra
        .push(contract::status::heartbeat_arg(notify.heartbeat()));
    match boot(&l, &mut p, opts, notify) {
        Ok(o) => Ok(o),
        Err(e) => {
            p.undo.run();
            p.state.phase = Phase::Exited;
            p.state.outcome = Some(format!("failed to start: {e}"));
            p.state.exit_code = Some(exit::for_error(e.kind));
            let _ = p.state.save(&p.dir);
            Err(e)
        }
    }
}

fn boot(l: &Loaded, p: &mut Prepared, opts: &Options, notify: &Rc<Notifier>) -> Result<Outcome> {
    let name = l.spec.name.clone();
    let sfd = SignalFd::with_flags(
        &stop_signals(),
        SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC,
    )
    .map_err(|e| Error::host(format!("creating a signalfd: {e}")))?;
    // Tap and new disks now belong to the run: on a failed spawn they are undone by the caller.
    if let Some(t) = &p.state.tap {
        if t.created {
            p.undo.tap = Some((t.name.clone(), t.netns.clone()));
        }
    }
    let started = Instant::now();
    let bounds = Bounds::of(l.spec.limits.as_ref());
    let dropped = Arc::new(Dropped::default());
    let events_dropped = Arc::new(Dropped::default());
    let mut events_log =
        CappedLog::open(&p.dir.events(), bounds.events_bytes, events_dropped.clone())
            .io_context(|| format!("opening {}", p.dir.events().display()))?;
    let mut run = Run {
        name: name.clone(),
        started,
        seen: Seen::default(),
        events: 0,
        stop_deadline: None,
        printer: Printer::default(),
        dropped: dropped.clone(),
        events_dropped,
        notify: notify.clone(),
        echo_console: notify.active() || p.state.systemd.is_some(),
    };
    let mut attempt = 1;
    let status = loop {
        run.events = 0;
        let status = boot_once(l, p, opts, &sfd, &bounds, &mut run, &mut events_log)?;
        if run.stop_deadline.is_some() {
            break status;
        }
        let console = std::fs::read(p.dir.console()).unwrap_or_default();
        let console = String::from_utf8_lossy(&console);
        let Some(why) = vmm::boot::retry_reason(attempt, &console, run.events > 0) else {
            break status;
        };
        let kept = p.dir.path.join(format!("console.boot{attempt}.log"));
        let _ = std::fs::rename(p.dir.console(), &kept);
        // A boot again is a boot: the image must still pass the trust policy.
        crate::trust::check(&l.image, &l.manifest_path)?;
        attempt += 1;
        say(
            &name,
            &format!(
                "the kernel panicked while booting, before init started (\"{why}\"; console in \
                 {}); booting again (attempt {attempt} of {BOOT_ATTEMPTS})",
                kept.display()
            ),
        );
    };
    let mut seen = std::mem::take(&mut run.seen);
    seen.uml_code = status.code();
    seen.uml_signal = status.signal();
    let console = std::fs::read(p.dir.console()).unwrap_or_default();
    let console = String::from_utf8_lossy(&console);
    seen.panic = vmm::boot::kernel_panic(&console);
    let outcome = exit::decide(&seen);
    run.record_dropped(&mut p.state);
    finish(p, &outcome);
    run.notify.status(&format!(
        "ended: {} (exit status {})",
        outcome.describe(),
        outcome.code()
    ));
    if !opts.quiet || outcome.code() != 0 {
        say(
            &name,
            &format!(
                "ended after {:.1} s: {} (exit status {})",
                started.elapsed().as_secs_f64(),
                outcome.describe(),
                outcome.code()
            ),
        );
    }
    if !matches!(outcome, Outcome::Clean(_)) {
        let tail: Vec<&str> = console.lines().rev().take(15).collect();
        if !tail.is_empty() {
            say(
                &name,
                &format!("last console lines ({}):", p.dir.console().display()),
            );
            for line in tail.iter().rev() {
                say(&name, &format!("  {}", shown_line(line)));
            }
        }
    }
    Ok(outcome)
}

/// What one run (all its boot attempts) has seen.
struct Run {
    name: String,
    started: Instant,
    seen: Seen,
    events: usize,
    stop_deadline: Option<Instant>,
    printer: Printer,
    /// Console rotation and long status lines.
    dropped: Arc<Dropped>,
    /// Events log rotation.
    events_dropped: Arc<Dropped>,
    /// systemd's notification socket (or nothing).
    notify: Rc<Notifier>,
    /// Copy the console to the launcher's output (under systemd: into the journal).
    echo_console: bool,
}

impl Run {
    fn record_dropped(&self, st: &mut State) {
        st.dropped.status_lines = self.dropped.long_lines();
        st.dropped.console_bytes = self.dropped.rotated_bytes();
        st.dropped.events_bytes = self.events_dropped.rotated_bytes();
        st.dropped.unprinted_events = self.printer.skipped;
    }
}

/// How often the dropped counts are looked at while the status channel is quiet (the
/// console thread counts its rotations on its own): rare, so an idle launcher sleeps.
const DROPPED_CHECK: Duration = Duration::from_secs(10);

/// One boot of UML, followed until it ends: its exit status.
fn boot_once(
    l: &Loaded,
    p: &mut Prepared,
    opts: &Options,
    sfd: &SignalFd,
    bounds: &Bounds,
    run: &mut Run,
    events_log: &mut CappedLog,
) -> Result<std::process::ExitStatus> {
    let name = run.name.clone();
    let mut vm = spawn(p, bounds, &run.dropped, run.echo_console)?;
    let uml_pid = vm.process.pid();
    p.state.uml_pid = Some(uml_pid);
    p.state.phase = Phase::Booting;
    p.state.save(&p.dir)?;
    run.notify.status(&format!("booting (UML pid {uml_pid})"));
    // From here on the disks hold the guest's data: never remove them.
    p.undo.created_disks.clear();
    if !opts.quiet {
        say(
            &name,
            &format!(
                "booting (umid {}, pid {uml_pid}, uid {}, state {})",
                p.state.umid,
                p.jail.uid,
                p.dir.path.display()
            ),
        );
    }
    let stop_after = Duration::from_millis(l.merged.contract.service.stop_timeout_ms) + STOP_MARGIN;
    let mut cad_sent = false;
    let mut halt_deadline: Option<Instant> = None;
    let mut saver = Saver::new(Instant::now());
    let mut dropped_checked = Instant::now();
    // When the console first showed a boot panic (UML is killed if it does not end).
    let mut panicked: Option<Instant> = None;
    let mut panic_killed = false;
    let mut split = LineSplitter::new(bounds.status_line, run.dropped.clone());
    let mut channel = Channel::Open;
    let mut lines = Vec::new();
    // One loop waits on the stop signals, the status pipe and UML's exit together; it wakes
    // early only for a deadline: a cad to retry, a halt or kill due, the state to refresh.
    let status = loop {
        let now = Instant::now();
        let mut next = DROPPED_CHECK.saturating_sub(now.saturating_duration_since(dropped_checked));
        if let Some(d) = saver.due(now) {
            next = next.min(d);
        }
        if run.events == 0 {
            next = next.min(vmm::boot::PANIC_WATCH);
        }
        if run.stop_deadline.is_some() && !cad_sent {
            next = next.min(CAD_RETRY);
        }
        for d in [run.stop_deadline, halt_deadline].into_iter().flatten() {
            next = next.min(d.saturating_duration_since(Instant::now()));
        }
        let status_fd = if channel == Channel::Open {
            vm.status.as_raw_fd()
        } else {
            -1 // poll ignores it
        };
        let mut fds =
            [sfd.as_raw_fd(), vm.process.pidfd().as_raw_fd(), status_fd].map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            });
        wait(&mut fds, next);
        if fds[2].revents != 0 {
            channel = read_status(&vm.status, &mut split, &mut lines);
            for line in lines.drain(..) {
                handle_line(&line, p, run, events_log, opts, &mut saver);
            }
        }
        // Stop requests.
        while let Ok(Some(info)) = sfd.read_signal() {
            let sig = Signal::try_from(info.ssi_signo as i32)
                .map(|s| s.as_str())
                .unwrap_or("signal");
            if run.stop_deadline.is_none() {
                if !opts.quiet {
                    say(
                        &name,
                        &format!("{sig}: stopping (ctrl-alt-del to the guest)"),
                    );
                }
                run.stop_deadline = Some(Instant::now() + stop_after);
                p.state.phase = Phase::Stopping;
                saver.changed(&p.state, &p.dir, true, Instant::now());
                run.notify
                    .stopping(&format!("stopping ({sig}: ctrl-alt-del to the guest)"));
            } else if halt_deadline.is_none() {
                say(&name, &format!("{sig} again: halting the VM now"));
                run.stop_deadline = Some(Instant::now());
            }
        }
        // Only once guest-init has spoken: it turns ctrl-alt-del into its SIGINT first, and a
        // cad before that makes the kernel reboot the VM, which then runs on until the halt.
        if run.stop_deadline.is_some() && !cad_sent && run.events > 0 && vm.mconsole.socket.exists()
        {
            match vmm::mconsole::send(&vm.mconsole, "cad", Duration::from_secs(2)) {
                Ok(_) => cad_sent = true,
                Err(e) => say(&name, &format!("mconsole cad: {e}; retrying")),
            }
        }
        if let Some(deadline) = run.stop_deadline {
            if halt_deadline.is_none() && Instant::now() >= deadline {
                run.seen.forced = Some(format!(
                    "the guest did not power off within {} s of the stop request; halted",
                    stop_after.as_secs()
                ));
                let _ = vmm::mconsole::send(&vm.mconsole, "halt", Duration::from_secs(2));
                halt_deadline = Some(Instant::now() + HALT_GRACE);
            }
        }
        if let Some(deadline) = halt_deadline {
            if Instant::now() >= deadline {
                if run.seen.power_off.is_none() {
                    run.seen.forced = Some("the VM did not halt; killed".into());
                }
                let _ = vm.process.kill();
            }
        }
        // The guest powered off, but UML did not exit: kill it after a grace period (the
        // guest's outcome stands, see exit::decide).
        if run.seen.power_off.is_some() && halt_deadline.is_none() {
            halt_deadline = Some(Instant::now() + HALT_GRACE);
        }
        if dropped_checked.elapsed() >= DROPPED_CHECK {
            let before = p.state.dropped.clone();
            run.record_dropped(&mut p.state);
            if p.state.dropped != before {
                saver.changed(&p.state, &p.dir, false, Instant::now());
            }
            dropped_checked = Instant::now();
        }
        saver.tick(&p.state, &p.dir, Instant::now());
        if run.events == 0 && panicked.is_none() && panicked_before_init_spoke(&p.dir) {
            panicked = Some(Instant::now());
        }
        if !panic_killed && panicked.is_some_and(|t| t.elapsed() >= vmm::boot::PANIC_EXIT_GRACE) {
            say(&name, "the kernel panicked and UML did not end; killing it");
            let _ = vm.process.kill();
            panic_killed = true;
        }
        match vm.process.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(e) => return Err(Error::host(format!("waiting for UML: {e}"))),
        }
    };
    // The rest of the status lines: EOF comes once every writer is gone, and UML was PID 1
    // of its namespace, so its helpers are gone with it.
    let drain_until = Instant::now() + Duration::from_secs(2);
    while channel == Channel::Open && Instant::now() < drain_until {
        let mut fds = [libc::pollfd {
            fd: vm.status.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        wait(
            &mut fds,
            drain_until.saturating_duration_since(Instant::now()),
        );
        channel = read_status(&vm.status, &mut split, &mut lines);
        for line in lines.drain(..) {
            handle_line(&line, p, run, events_log, opts, &mut saver);
        }
    }
    let _ = vm.console.join();
    Ok(status)
}

/// Whether the console (so far, at most its cap) shows a kernel panic: while the kernel boots,
/// or because init died before its first status event (a UML that then hangs, as Debian's
/// did when the host refused its FP state, would otherwise keep the launcher waiting).
fn panicked_before_init_spoke(dir: &crate::state::Dir) -> bool {
    let console = std::fs::read(dir.console()).unwrap_or_default();
    vmm::boot::kernel_panic(&String::from_utf8_lossy(&console)).is_some()
}

/// How often a `cad` that could not be sent is tried again while stopping.
const CAD_RETRY: Duration = Duration::from_millis(200);

fn handle_line(
    line: &str,
    p: &mut Prepared,
    run: &mut Run,
    log: &mut CappedLog,
    opts: &Options,
    saver: &mut Saver,
) {
    let Some(events::Line {
        event, value: ev, ..
    }) = events::parse(line)
    else {
        if !line.trim().is_empty() && !opts.quiet && run.printer.allow() {
            say(&run.name, &format!("(status channel) {}", shown_line(line)));
        }
        return;
    };
    // Any event shows the guest alive; heartbeats say nothing else, and are not kept (one a
    // second would push every other event out of the logs).
    run.notify.alive(Instant::now());
    run.events += 1;
    if matches!(event, Event::Heartbeat { .. }) {
        return;
    }
    let _ = log.write(format!("{ev}\n").as_bytes());
    let after = run.started.elapsed();
    let before = (p.state.phase, p.state.ready);
    match event {
        Event::Ready { .. } => {
            p.state.ready = true;
            if p.state.ready_after_ms.is_none() {
                p.state.ready_after_ms = Some(after.as_millis() as u64);
            }
            if p.state.phase == Phase::Booting {
                p.state.phase = Phase::Ready;
            }
            run.notify.ready(&format!(
                "ready (the guest's service, {} ms after the start)",
                after.as_millis()
            ));
        }
        Event::Exited { .. } | Event::Restarting { .. } => {
            p.state.ready = false;
            if p.state.phase != Phase::Stopping {
                run.notify.status(&format!(
                    "running, service not ready: {}",
                    events::human(&ev)
                ));
            }
        }
        Event::LivenessFailed { .. } => run.notify.status(&events::human(&ev)),
        Event::Fatal { reason, .. } => run.seen.fatal = Some(reason),
        Event::PowerOff { .. } => run.seen.power_off = Some(ev.clone()),
        _ => {}
    }
    p.state.push_event(ev.clone());
    // The state file changes with the phase; the rest (last events, counts) at most once a
    // second, so a guest flooding events does not turn into a flood of writes.
    run.record_dropped(&mut p.state);
    let urgent = (p.state.phase, p.state.ready) != before;
    saver.changed(&p.state, &p.dir, urgent, Instant::now());
    if !opts.quiet && run.printer.allow() {
        say(
            &run.name,
            &format!(
                "{:>7.3}s {}",
                after.as_secs_f64(),
                shown_line(&events::human(&ev))
            ),
        );
    }
}

/// Removes the TAP device this run created and the jail's mount point, and records the end.
fn finish(p: &mut Prepared, outcome: &Outcome) {
    // The policy goes first: chains whose TAP device is gone stay until they are deleted.
    if let Some(pol) = &p.state.policy {
        match crate::nft::remove(&pol.table, &p.state.name, pol.netns.as_deref()) {
            Ok(_) => p.state.policy = None,
            Err(e) => say(&p.state.name, &format!("removing the network policy: {e}")),
        }
    }
    if let Some(t) = &p.state.tap {
        if t.created {
            if let Err(e) = tap::delete(&t.name, t.netns.as_deref()) {
                say(&p.state.name, &format!("removing the TAP device: {e}"));
            }
        }
    }
    p.undo = Undo::default();
    let _ = std::fs::remove_dir_all(p.dir.jail());
    p.state.phase = Phase::Exited;
    p.state.ready = false;
    p.state.outcome = Some(outcome.describe());
    p.state.exit_code = Some(outcome.code());
    let _ = p.state.save(&p.dir);
}
