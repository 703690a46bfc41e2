//! Running an appliance in the foreground: prepare the host ([`crate::launch::prepare`]), boot UML in
//! its jail, follow its status events, stop it gracefully on SIGINT/SIGTERM/SIGHUP, clean up,
//! and say how it ended.

use crate::error::{Error, IoContext, Result};
use crate::events::{self, Event};
use crate::exit::{self, Outcome, Seen};
use crate::launch::load::{self, Loaded};
use crate::launch::prepare::{prepare, Prepared, Undo};
use crate::launch::tap;
use crate::notify::Notifier;
use crate::output::{say, shown_line, Printer};
use crate::saver::Saver;
use crate::state::{GuestFigures, Phase, ServiceCounts, State};
use crate::timeline::{Clocks, Timeline};
use nix::sys::signal::Signal;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::ExitStatus;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use vmm::channel::{self, CappedLog, Dropped};
use vmm::follow::{Escalation, Heard, Note, Observer, Rules};
use vmm::requests::{StopSignals, STOP_SIGNALS};

pub use crate::launch::prepare::{clean_stale, describe_kernel, preflight, Options};

pub use vmm::boot::BOOT_ATTEMPTS;

/// Time added to the service's stop timeout before the VM is halted: guest-init's own
/// shutdown (kill the rest, sync, unmount) and a boot that is not yet far enough to stop.
pub const STOP_MARGIN: Duration = Duration::from_secs(10);

/// How long a halted VM may take to exit before it is killed.
pub const HALT_GRACE: Duration = Duration::from_secs(5);

/// The bounds on what the guest makes the host hold.
#[derive(Debug)]
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
    let mut timeline = Timeline::new(Clocks::of_start());
    notify.status("checking the spec");
    let file = load::SpecFile::read(spec_path)?;
    let l = load::load_for_launch(&file, opts.image.as_deref())?;
    timeline.mark("loaded");
    // Block the stop signals before any thread starts, so they wait in the signalfd.
    let mut stops = StopSignals::block(&STOP_SIGNALS)
        .map_err(|e| Error::host(format!("creating a signalfd: {e}")))?;
    notify.status("preparing the host");
    let mut p = prepare(&l, opts, timeline)?;
    p.machine
        .extra
        .push(contract::status::heartbeat_arg(notify.heartbeat()));
    match boot(&l, &mut p, opts, notify, &mut stops) {
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

fn boot(
    l: &Loaded,
    p: &mut Prepared,
    opts: &Options,
    notify: &Rc<Notifier>,
    stops: &mut StopSignals,
) -> Result<Outcome> {
    // Tap and new disks now belong to the run: on a failed spawn they are undone by the caller.
    if let Some(t) = &p.state.tap {
        if t.created {
            p.undo.tap = Some((t.name.clone(), t.netns.clone()));
        }
    }
    let bounds = Bounds::of(l.spec.limits.as_ref());
    let events_dropped = Arc::new(Dropped::default());
    let mut events_log =
        CappedLog::open(&p.dir.events(), bounds.events_bytes, events_dropped.clone())
            .io_context(|| format!("opening {}", p.dir.events().display()))?;
    let mut run = Run {
        name: l.spec.name.clone(),
        // From the operator's `start` (or this launcher's start): "ready after" is what the
        // operator waited, the host's steps included, not the guest's part alone.
        started: p.timeline.start_instant(),
        seen: Seen::default(),
        events: 0,
        stopping: false,
        printer: Printer::default(),
        dropped: Arc::new(Dropped::default()),
        events_dropped,
        notify: notify.clone(),
        echo_console: notify.active() || p.state.systemd.is_some(),
    };
    let status = boot_attempts(l, p, opts, stops, &bounds, &mut run, &mut events_log)?;
    Ok(ended(p, opts, &mut run, status))
}

/// Boots until a boot gets past the kernel (up to [`BOOT_ATTEMPTS`]: see
/// `vmm::boot::retry_reason`) or a stop was asked for: the last UML's exit status.
fn boot_attempts(
    l: &Loaded,
    p: &mut Prepared,
    opts: &Options,
    stops: &mut StopSignals,
    bounds: &Bounds,
    run: &mut Run,
    events_log: &mut CappedLog,
) -> Result<std::process::ExitStatus> {
    let mut attempt = 1;
    loop {
        run.events = 0;
        let status = boot_once(l, p, opts, stops, bounds, run, events_log)?;
        if run.stopping {
            return Ok(status);
        }
        let console = std::fs::read(p.dir.console()).unwrap_or_default();
        let console = String::from_utf8_lossy(&console);
        let Some(why) = vmm::boot::retry_reason(attempt, &console, run.events > 0) else {
            return Ok(status);
        };
        let kept = p.dir.path.join(format!("console.boot{attempt}.log"));
        let _ = std::fs::rename(p.dir.console(), &kept);
        // A boot again is a boot: the image must still pass the trust policy.
        crate::trust::check(&l.image, &l.manifest_path)?;
        attempt += 1;
        say(
            &run.name,
            &format!(
                "the kernel panicked while booting, before init started (\"{why}\"; console in \
                 {}); booting again (attempt {attempt} of {BOOT_ATTEMPTS})",
                kept.display()
            ),
        );
    }
}

/// The run's end: the outcome decided from what it saw, recorded, told to systemd and the
/// operator (with the console's last lines when it was not clean).
fn ended(p: &mut Prepared, opts: &Options, run: &mut Run, status: ExitStatus) -> Outcome {
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
            &run.name,
            &format!(
                "ended after {:.1} s: {} (exit status {})",
                run.started.elapsed().as_secs_f64(),
                outcome.describe(),
                outcome.code()
            ),
        );
    }
    if !matches!(outcome, Outcome::Clean(_)) {
        say_console_tail(&run.name, &console, &p.dir.console());
    }
    outcome
}

/// The console's last 15 lines, escaped, for a run that did not end cleanly.
fn say_console_tail(name: &str, console: &str, path: &Path) {
    let tail: Vec<&str> = console.lines().rev().take(15).collect();
    if tail.is_empty() {
        return;
    }
    say(name, &format!("last console lines ({}):", path.display()));
    for line in tail.iter().rev() {
        say(name, &format!("  {}", shown_line(line)));
    }
}

/// What one run (all its boot attempts) has seen.
struct Run {
    name: String,
    started: Instant,
    seen: Seen,
    events: usize,
    /// A stop was asked for: no boot again.
    stopping: bool,
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

/// One boot of UML, launched and followed by vmm until it ends: its exit status.
fn boot_once(
    l: &Loaded,
    p: &mut Prepared,
    opts: &Options,
    stops: &mut StopSignals,
    bounds: &Bounds,
    run: &mut Run,
    events_log: &mut CappedLog,
) -> Result<std::process::ExitStatus> {
    let log = CappedLog::open(&p.dir.console(), bounds.console_bytes, run.dropped.clone())
        .io_context(|| format!("opening {}", p.dir.console().display()))?;
    let (mut vm, console) =
        vmm::launch::launch(&p.machine, &p.jail).map_err(|e| Error::host(e.to_string()))?;
    p.timeline.mark("uml_exec");
    let stamped = CappedLog::open(
        &p.dir.console_stamped(),
        bounds.console_bytes,
        Arc::new(Dropped::default()),
    )
    .io_context(|| format!("opening {}", p.dir.console_stamped().display()))?;
    let mut stamp = crate::stamped::writer(stamped, bounds.status_line);
    let mut echo = crate::output::console_echo(
        run.echo_console,
        &p.state.name,
        bounds.status_line,
        &run.dropped,
    );
    let tee = move |bytes: &[u8]| {
        echo(bytes);
        stamp(bytes);
    };
    let console = channel::pump_console(console, log, tee);
    booting(p, opts, run, vm.process.pid())?;
    let stop_after = Duration::from_millis(l.merged.contract.service.stop_timeout_ms) + STOP_MARGIN;
    let rules = Rules {
        stop_timeout: stop_after,
        escalation: Escalation::Halt { grace: HALT_GRACE },
        again_escalates: true,
        power_off_grace: Some(HALT_GRACE),
        panic_watch: true,
        max_line: bounds.status_line,
        dropped: run.dropped.clone(),
    };
    let mut obs = Follower {
        p,
        run,
        log: events_log,
        opts,
        saver: Saver::new(Instant::now()),
        dropped_checked: Instant::now(),
        stop_after,
    };
    let ended = vmm::follow::follow(&mut vm, &rules, Some(stops), &mut obs)
        .map_err(|e| Error::host(format!("waiting for UML: {e}")))?;
    let _ = console.join();
    Ok(ended.status)
}

/// UML runs: the state says so, and from here on the disks hold the guest's data.
fn booting(p: &mut Prepared, opts: &Options, run: &Run, uml_pid: u32) -> Result<()> {
    p.state.uml_pid = Some(uml_pid);
    p.state.phase = Phase::Booting;
    p.state.host_steps = Some(p.timeline.record());
    p.state.save(&p.dir)?;
    run.notify.status(&format!("booting (UML pid {uml_pid})"));
    // Never remove the disks now.
    p.undo.created_disks.clear();
    if !opts.quiet {
        say(
            &run.name,
            &format!(
                "booting (umid {}, pid {uml_pid}, uid {}, state {})",
                p.state.umid,
                p.jail.uid,
                p.dir.path.display()
            ),
        );
    }
    Ok(())
}

/// What host-launch adds to vmm's follow loop: the state file, sd_notify, the events log and
/// the operator's lines.
struct Follower<'a> {
    p: &'a mut Prepared,
    run: &'a mut Run,
    log: &'a mut CappedLog,
    opts: &'a Options,
    saver: Saver,
    dropped_checked: Instant,
    stop_after: Duration,
}

impl Observer for Follower<'_> {
    fn status_line(&mut self, line: &[u8]) -> Heard {
        let line = String::from_utf8_lossy(line);
        handle_line(&line, self)
    }

    fn stop_requested(&mut self, signal: Option<libc::c_int>, again: bool) {
        let sig = signal
            .and_then(|s| Signal::try_from(s).ok())
            .map(|s| s.as_str())
            .unwrap_or("signal");
        if again {
            say(&self.run.name, &format!("{sig} again: halting the VM now"));
            return;
        }
        if !self.opts.quiet {
            say(
                &self.run.name,
                &format!("{sig}: stopping (ctrl-alt-del to the guest)"),
            );
        }
        self.run.stopping = true;
        self.p.state.phase = Phase::Stopping;
        self.saver
            .changed(&self.p.state, &self.p.dir, true, Instant::now());
        self.run
            .notify
            .stopping(&format!("stopping ({sig}: ctrl-alt-del to the guest)"));
    }

    fn note(&mut self, note: Note) {
        match note {
            Note::CadFailed(e) => say(&self.run.name, &format!("mconsole cad: {e}; retrying")),
            Note::StopTimedOut => {
                self.run.seen.forced = Some(format!(
                    "the guest did not power off within {} s of the stop request; halted",
                    self.stop_after.as_secs()
                ))
            }
            Note::GraceKilled => {
                if self.run.seen.power_off.is_none() {
                    self.run.seen.forced = Some("the VM did not halt; killed".into());
                }
            }
            Note::PanicKilled => say(
                &self.run.name,
                "the kernel panicked and UML did not end; killing it",
            ),
        }
    }

    fn tick(&mut self, now: Instant) -> Option<Duration> {
        let p = &mut *self.p;
        if self.dropped_checked.elapsed() >= DROPPED_CHECK {
            let before = p.state.dropped.clone();
            self.run.record_dropped(&mut p.state);
            if p.state.dropped != before {
                self.saver.changed(&p.state, &p.dir, false, now);
            }
            self.dropped_checked = now;
        }
        self.saver.tick(&p.state, &p.dir, now);
        let mut next =
            DROPPED_CHECK.saturating_sub(now.saturating_duration_since(self.dropped_checked));
        if let Some(d) = self.saver.due(now) {
            next = next.min(d);
        }
        Some(next)
    }

    fn console_panicked(&mut self) -> bool {
        panicked_before_init_spoke(&self.p.dir)
    }
}

/// Whether the console (so far, at most its cap) shows a kernel panic: while the kernel boots,
/// or because init died before its first status event (a UML that then hangs, as Debian's
/// did when the host refused its FP state, would otherwise keep the launcher waiting).
fn panicked_before_init_spoke(dir: &crate::state::Dir) -> bool {
    let console = std::fs::read(dir.console()).unwrap_or_default();
    vmm::boot::kernel_panic(&String::from_utf8_lossy(&console)).is_some()
}

/// One status line: the events log, the state, sd_notify and the operator's output.
fn handle_line(line: &str, f: &mut Follower) -> Heard {
    let Some(events::Line {
        event, value: ev, ..
    }) = events::parse(line)
    else {
        if !line.trim().is_empty() && !f.opts.quiet && f.run.printer.allow() {
            say(
                &f.run.name,
                &format!("(status channel) {}", shown_line(line)),
            );
        }
        return Heard::Junk;
    };
    // Any event shows the guest alive; heartbeats say nothing else, and are not kept (one a
    // second would push every other event out of the logs).
    f.run.notify.alive(Instant::now());
    f.run.events += 1;
    if matches!(event, Event::Heartbeat { .. }) {
        return Heard::Event;
    }
    // The guest's figures (one every 10 s) only update its own state, like heartbeats not
    // kept in the logs or the last events.
    if let Some(figures) = guest_figures(&event) {
        f.p.state.guest = Some(figures);
        f.saver.changed(&f.p.state, &f.p.dir, false, Instant::now());
        return Heard::Event;
    }
    let _ = f.log.write(format!("{ev}\n").as_bytes());
    let after = f.run.started.elapsed();
    let before = (f.p.state.phase, f.p.state.ready);
    let heard = apply_event(event, &ev, after, f);
    f.p.state.push_event(ev.clone());
    // The state file changes with the phase; the rest (last events, counts) at most once a
    // second, so a guest flooding events does not turn into a flood of writes.
    f.run.record_dropped(&mut f.p.state);
    let urgent = (f.p.state.phase, f.p.state.ready) != before;
    f.saver
        .changed(&f.p.state, &f.p.dir, urgent, Instant::now());
    if !f.opts.quiet && f.run.printer.allow() {
        say(
            &f.run.name,
            &format!(
                "{:>7.3}s {}",
                after.as_secs_f64(),
                shown_line(&events::human(&ev))
            ),
        );
    }
    heard
}

/// What one event changes in the state, sd_notify and what the run has seen.
fn apply_event(event: Event, ev: &serde_json::Value, after: Duration, f: &mut Follower) -> Heard {
    let st = &mut f.p.state;
    let after_ms = u64::try_from(after.as_millis()).unwrap_or(u64::MAX);
    st.booted_after_ms.get_or_insert(after_ms);
    count_service(&event, &mut st.service);
    match event {
        Event::Ready { .. } => {
            st.ready = true;
            st.ready_after_ms.get_or_insert(after_ms);
            if st.phase == Phase::Booting {
                st.phase = Phase::Ready;
            }
            f.run.notify.ready(&format!(
                "ready (the guest's service, {} ms after the start)",
                after.as_millis()
            ));
        }
        Event::Exited { .. } | Event::Restarting { .. } => {
            st.ready = false;
            if st.phase != Phase::Stopping {
                f.run.notify.status(&format!(
                    "running, service not ready: {}",
                    events::human(ev)
                ));
            }
        }
        Event::LivenessFailed { .. } => f.run.notify.status(&events::human(ev)),
        Event::Fatal { reason, .. } => f.run.seen.fatal = Some(reason),
        Event::PowerOff { .. } => {
            f.run.seen.power_off = Some(ev.clone());
            return Heard::PowerOff;
        }
        _ => {}
    }
    Heard::Event
}

/// Counts the service's restarts, exits and failed liveness checks (for `metrics`).
/// A `figures` event's figures, clamped.
fn guest_figures(event: &Event) -> Option<GuestFigures> {
    match *event {
        Event::Figures {
            mem_total_kb,
            mem_available_kb,
            load1,
            uptime_s,
        } => Some(GuestFigures::clamped(
            mem_total_kb,
            mem_available_kb,
            load1,
            uptime_s,
        )),
        _ => None,
    }
}

fn count_service(event: &Event, c: &mut ServiceCounts) {
    match event {
        Event::Restarting { .. } => c.restarts = c.restarts.saturating_add(1),
        Event::Exited {
            code, signal, oom, ..
        } => {
            c.exits = c.exits.saturating_add(1);
            c.oom_kills = c.oom_kills.saturating_add(u64::from(*oom));
            c.last_exit_code = code.or(signal.map(|s| s.saturating_add(128)));
        }
        Event::LivenessFailed { .. } => {
            c.liveness_failures = c.liveness_failures.saturating_add(1);
        }
        _ => {}
    }
}

/// Removes the TAP device this run created and the jail's mount point, and records the end.
fn finish(p: &mut Prepared, outcome: &Outcome) {
    // An upgrade's next launch takes the TAP device and its policy over: removing and making
    // them again (the netdev's unregistering waits for RCU) would lengthen the downtime.
    let handover = p.dir.tap_handover().exists()
        && p.state.tap.as_ref().is_some_and(|t| t.created)
        && p.state.policy.is_some();
    if handover {
        say(
            &p.state.name,
            "left the TAP device and its network policy to the upgrade's new image",
        );
    }
    // The policy goes first: chains whose TAP device is gone stay until they are deleted.
    if let Some(pol) = p.state.policy.as_ref().filter(|_| !handover) {
        match crate::launch::nft::remove(&pol.table, &p.state.name, pol.netns.as_deref()) {
            Ok(_) => p.state.policy = None,
            Err(e) => say(&p.state.name, &format!("removing the network policy: {e}")),
        }
    }
    if let Some(t) = p.state.tap.as_ref().filter(|_| !handover) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn event(line: &str) -> Event {
        contract::status::parse(line).expect("an event").event
    }

    #[test]
    fn oom_kills_are_counted_from_the_exited_events_flag_only() {
        let mut c = ServiceCounts::default();
        let oom = r#"{"event":"exited","ts_us":1,"boot_us":1,"init_us":1,"pid":3,"status":"s","code":null,"signal":9,"ran_ms":1,"oom":true}"#;
        let kill = r#"{"event":"exited","ts_us":1,"boot_us":1,"init_us":1,"pid":3,"status":"s","code":null,"signal":9,"ran_ms":1}"#;
        // A forged flag of the wrong type makes the event unreadable as `exited`: not counted.
        let forged = r#"{"event":"exited","ts_us":1,"boot_us":1,"init_us":1,"pid":3,"status":"s","code":null,"signal":9,"ran_ms":1,"oom":99999}"#;
        for line in [oom, kill, forged] {
            count_service(&event(line), &mut c);
        }
        assert_eq!(c.oom_kills, 1);
        assert_eq!(c.exits, 2);
        assert_eq!(c.last_exit_code, Some(137));
    }

    #[test]
    fn a_guests_forged_figures_are_clamped_and_other_events_carry_none() {
        let forged = r#"{"event":"figures","ts_us":1,"boot_us":1,"init_us":1,"mem_total_kb":18446744073709551615,"mem_available_kb":18446744073709551615,"load1":-5,"uptime_s":1e300}"#;
        let g = guest_figures(&event(forged)).expect("figures");
        assert_eq!(g.mem_total_kb, Some(1 << 30));
        assert_eq!(g.mem_available_kb, g.mem_total_kb);
        assert_eq!(g.load1, Some(0.0));
        assert_eq!(g.uptime_s, Some(1e9));
        let ready = r#"{"event":"ready","ts_us":1,"boot_us":1,"init_us":1}"#;
        assert_eq!(guest_figures(&event(ready)), None);
    }
}
