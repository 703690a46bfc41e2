//! Running an appliance in the foreground: check, prepare the host, boot UML, follow its
//! status events, stop it gracefully on SIGINT/SIGTERM/SIGHUP, clean up, and say how it ended.
//!
//! Order matters for "nothing lost, nothing left behind": everything that can be checked is
//! checked before anything is created; the state directory is locked before the host is
//! touched; what a failed launch created (TAP device, new disk files, a new state directory)
//! is removed again; existing disks are never written by the host.

use crate::disks::{self, Planned};
use crate::error::{Error, IoContext, Result};
use crate::exit::{self, Outcome, Seen};
use crate::load::{self, Loaded};
use crate::state::{self, Dir, Phase, State, TapRecord};
use crate::{events, privs, tap, vm};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};
use vmm::channel::{self, CappedLog, Dropped, LineReader};

pub use vmm::boot::{kernel_boot_panic, BOOT_ATTEMPTS};

/// Smallest config device written (the kernel's partition scan reads the first sectors).
pub const MIN_CONFIG_DEVICE: usize = 16 * 512;

/// Time added to the service's stop timeout before the VM is halted: guest-init's own
/// shutdown (kill the rest, sync, unmount) and a boot that is not yet far enough to stop.
pub const STOP_MARGIN: Duration = Duration::from_secs(10);

/// How long a halted VM may take to exit before it is killed.
pub const HALT_GRACE: Duration = Duration::from_secs(5);

/// Options of a foreground run.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Show the kernel's informational boot messages in the console log.
    pub kernel_log: bool,
    /// Do not print status events (they still go to the events log).
    pub quiet: bool,
    /// Boot this root image instead of the spec's (its manifest beside it); `upgrade` uses it.
    /// Without it, an image put in place by an earlier `upgrade` is used (see
    /// [`crate::upgrade::pinned_image`]).
    pub image: Option<PathBuf>,
}

/// Signals that ask the launcher to stop the appliance.
fn stop_signals() -> SigSet {
    let mut s = SigSet::empty();
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        s.add(sig);
    }
    s
}

/// A unique instance id: `NAME-xxxx` (UML's umid, also the mconsole directory's name).
fn new_umid(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mix = (std::process::id() as u64) << 32 ^ nanos as u64;
    format!("{name}-{:06x}", (mix ^ (mix >> 17)) & 0xff_ffff)
}

/// What a failed launch must undo.
#[derive(Default)]
struct Undo {
    created_dir: Option<PathBuf>,
    created_disks: Vec<PathBuf>,
    tap: Option<(String, Option<String>)>,
}

impl Undo {
    fn run(&mut self) {
        if let Some((name, ns)) = self.tap.take() {
            let _ = tap::delete(&name, ns.as_deref());
        }
        disks::remove_created(&std::mem::take(&mut self.created_disks));
        if let Some(d) = self.created_dir.take() {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// Checks that do not touch the host, beyond those of [`load::load`].
pub fn preflight(l: &Loaded) -> Result<Vec<Planned>> {
    let spec = &l.spec;
    let mut problems = Vec::new();
    if !l.kernel.is_file() {
        problems.push(format!(
            "kernel: {} not found; install user-mode-linux, or name the kernel with \"kernel\" \
             in the spec or UML_KERNEL",
            l.kernel.display()
        ));
    }
    if let Some(n) = &spec.network {
        if let Some(ns) = &n.netns {
            if !privs::is_root() {
                problems.push(format!(
                    "network.netns: entering namespace '{ns}' needs a root launcher"
                ));
            } else if !tap::netns_exists(ns) {
                problems.push(format!(
                    "network.netns: namespace '{ns}' does not exist; create it with `ip netns \
                     add {ns}`"
                ));
            }
        }
    }
    for (what, path) in [("kernel", &l.kernel), ("image", &l.image)] {
        if let Some(p) = privs::not_world_readable(path) {
            problems.push(format!(
                "{what}: {} is not readable by other users, and the VM runs as its own uid; \
                 `chmod a+r {}`",
                p.display(),
                p.display()
            ));
        }
    }
    let files: Vec<(String, PathBuf, Option<u64>)> = l
        .merged
        .disks
        .iter()
        .zip(&l.disk_files)
        .map(|(d, f)| {
            (
                format!("disks[{}]", d.spec_index),
                f.clone(),
                spec.disks[d.spec_index].size_mib,
            )
        })
        .collect();
    let planned = match disks::plan(&files) {
        Ok(p) => p,
        Err(e) => {
            problems.push(e.message);
            Vec::new()
        }
    };
    if problems.is_empty() {
        Ok(planned)
    } else {
        let shown = l.spec_path.display();
        Err(Error::invalid(
            problems
                .iter()
                .map(|p| format!("{shown}: {p}"))
                .collect::<Vec<_>>()
                .join("\n"),
        ))
    }
}

/// Cleans what a dead launcher left: its UML (if still running under the same umid), its TAP
/// device, UML's runtime directory. Returns notes for the operator.
pub fn clean_stale(dir: &Dir, st: &State) -> Vec<String> {
    let mut notes = Vec::new();
    if let Some(pid) = st.uml_pid {
        let killed = state::kill_uml_group(pid, &st.umid);
        if killed > 0 {
            for _ in 0..100 {
                if state::kill_uml_group(pid, &st.umid) == 0 {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            notes.push(format!(
                "killed {killed} leftover UML process(es) of umid {}",
                st.umid
            ));
        }
    }
    if let Some(t) = &st.tap {
        if t.created && tap::exists(&t.name, t.netns.as_deref()) {
            match tap::delete(&t.name, t.netns.as_deref()) {
                Ok(()) => notes.push(format!("removed the TAP device {}", t.name)),
                Err(e) => notes.push(format!("could not remove the TAP device: {e}")),
            }
        }
    }
    let _ = std::fs::remove_dir_all(dir.jail());
    let mut st = st.clone();
    if st.phase != Phase::Exited {
        st.phase = Phase::Exited;
        st.outcome =
            Some("the launcher died, and its VM with it (killed); cleaned up afterwards".into());
        st.exit_code = None;
        let _ = st.save(dir);
    }
    notes
}

/// Is the TAP device or a data disk used by another running appliance?
fn collisions(l: &Loaded, base: &Path) -> Result<()> {
    let ours: Vec<_> = l
        .disk_files
        .iter()
        .filter_map(|f| disks::identity(f))
        .collect();
    for e in state::list(base) {
        if e.name == l.spec.name || !e.running {
            continue;
        }
        let Some(st) = &e.state else { continue };
        if let (Some(n), Some(t)) = (&l.spec.network, &st.tap) {
            if n.tap == t.name && n.netns == t.netns {
                return Err(Error::busy(format!(
                    "network.tap: the TAP device {} is used by the running appliance '{}'; give \
                     this one its own TAP device",
                    t.name, e.name
                )));
            }
        }
        for d in &st.disks {
            if let Some(id) = disks::identity(Path::new(d)) {
                if ours.contains(&id) {
                    return Err(Error::busy(format!(
                        "disks: {d} is attached to the running appliance '{}'; a disk may be \
                         used by one VM at a time",
                        e.name
                    )));
                }
            }
        }
    }
    Ok(())
}

/// Everything prepared for the boot.
struct Prepared {
    dir: Dir,
    _lock: state::Lock,
    state: State,
    machine: vmm::cmdline::Machine,
    jail: vmm::jail::Jail,
    undo: Undo,
}

fn say(name: &str, text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "[{name}] {text}");
    let _ = out.flush();
}

fn prepare(l: &Loaded, opts: &Options) -> Result<Prepared> {
    let planned = preflight(l)?;
    if !privs::is_root() {
        return Err(Error::host(
            "host-launch run needs root: it builds each VM's jail (namespaces, its own uid, \
             no capabilities) before UML starts, as Firecracker's jailer does; run it with \
             sudo or from systemd"
                .to_string(),
        ));
    }
    let name = &l.spec.name;
    let base = state::base_dir();
    let mut undo = Undo::default();
    std::fs::create_dir_all(&base).io_context(|| {
        format!(
            "creating the state directory {} (set {} to use another)",
            base.display(),
            state::STATE_DIR_ENV
        )
    })?;
    let dir = Dir::new(&base, name);
    match std::fs::create_dir(&dir.path) {
        Ok(()) => undo.created_dir = Some(dir.path.clone()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(Error::host(format!("creating {}: {e}", dir.path.display()))),
    }
    // Private: the contract may hold secrets; nothing of a VM's state is another user's.
    std::fs::set_permissions(&dir.path, std::fs::Permissions::from_mode(0o700))
        .io_context(|| format!("making {} private", dir.path.display()))?;
    let result = prepare_locked(l, opts, &planned, dir, &mut undo);
    if result.is_err() {
        undo.run();
    }
    result.map(|mut p| {
        p.undo = undo;
        p
    })
}

fn prepare_locked(
    l: &Loaded,
    opts: &Options,
    planned: &[Planned],
    dir: Dir,
    undo: &mut Undo,
) -> Result<Prepared> {
    let name = &l.spec.name;
    let Some(lock) = state::try_lock(&dir)? else {
        let st = State::load(&dir);
        let detail = st
            .map(|s| {
                format!(
                    " (launcher pid {}, phase {:?}, umid {})",
                    s.launcher_pid, s.phase, s.umid
                )
            })
            .unwrap_or_default();
        return Err(Error::busy(format!(
            "appliance '{name}' is already running{detail}; stop it first with `host-launch \
             stop {name}`, or give this one another name"
        )));
    };
    let old = State::load(&dir);
    if let Some(old) = &old {
        if old.phase != Phase::Exited {
            for note in clean_stale(&dir, old) {
                say(
                    name,
                    &format!("previous launcher (pid {}) died: {note}", old.launcher_pid),
                );
            }
        }
    }
    collisions(l, &state::base_dir())?;
    let uid = vm::assign_uid(&state::base_dir(), name, old.as_ref().and_then(|o| o.uid))?;
    for (d, f) in l.merged.disks.iter().zip(&l.disk_files) {
        vm::check_disk_owner(&format!("disks[{}]", d.spec_index), f, uid)?;
    }
    for f in [dir.events(), dir.console(), dir.state(), dir.config_image()] {
        let _ = std::fs::remove_file(&f);
        let _ = std::fs::remove_file(channel::rotated(&f));
    }
    for n in 1..BOOT_ATTEMPTS {
        let _ = std::fs::remove_file(dir.path.join(format!("console.boot{n}.log")));
    }

    let umid = new_umid(name);
    let mut st = State {
        name: name.clone(),
        spec: l.spec_path.display().to_string(),
        phase: Phase::Starting,
        launcher_pid: std::process::id(),
        uml_pid: None,
        umid: umid.clone(),
        image: Some(l.image.display().to_string()),
        started_at_ms: state::now_ms(),
        ready: false,
        ready_after_ms: None,
        tap: None,
        disks: l
            .disk_files
            .iter()
            .map(|f| f.display().to_string())
            .collect(),
        outcome: None,
        exit_code: None,
        last_events: Vec::new(),
        uid: Some(uid),
        kernel: Some(describe_kernel(&l.kernel)),
        dropped: Default::default(),
    };
    st.save(&dir)?;

    // The network.
    if let Some(n) = &l.spec.network {
        let ns = n.netns.as_deref();
        if tap::exists(&n.tap, ns) {
            say(
                name,
                &format!("using the existing TAP device {} as it is", n.tap),
            );
            st.tap = Some(TapRecord {
                name: n.tap.clone(),
                netns: n.netns.clone(),
                created: false,
            });
        } else if privs::is_root() {
            tap::create(n, uid, uid)?;
            undo.tap = Some((n.tap.clone(), n.netns.clone()));
            st.tap = Some(TapRecord {
                name: n.tap.clone(),
                netns: n.netns.clone(),
                created: true,
            });
        } else {
            return Err(Error::host(format!(
                "network.tap: the TAP device {} does not exist, and creating it needs root",
                n.tap
            )));
        }
        st.save(&dir)?;
    }

    // The disks.
    undo.created_disks = disks::create(planned, Some((uid, uid)))?;
    for p in &undo.created_disks {
        say(
            name,
            &format!("created the data disk {} (sparse)", p.display()),
        );
    }

    // The config device: the contract, read-only to the guest.
    let mut img = contract::blockdev::encode_checked(&l.merged.contract)
        .map_err(|e| Error::invalid(format!("the merged contract: {e}")))?;
    if img.len() < MIN_CONFIG_DEVICE {
        img.resize(MIN_CONFIG_DEVICE, 0);
    }
    write_private(&dir.config_image(), &img)?;
    // The data disks and the config device become the VM's: UML opens them as its uid.
    vmm::jail::hand_over(&dir.config_image(), uid, uid, 0o400).map_err(Error::host)?;
    for f in &l.disk_files {
        vmm::jail::hand_over(f, uid, uid, 0o600).map_err(Error::host)?;
    }

    let machine = vm::machine(l, &dir, umid, opts.kernel_log);
    vmm::cmdline::command_line(&machine).map_err(Error::invalid)?;
    let jail = vm::jail(l, &dir, uid, &machine)?;
    Ok(Prepared {
        dir,
        _lock: lock,
        state: st,
        machine,
        jail,
        undo: Undo::default(),
    })
}

/// Writes a root-only file (mode 0600 from its creation, never briefly readable).
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .io_context(|| format!("writing {}", path.display()))
}

/// The kernel and its version, as `check` and `status` show them.
pub fn describe_kernel(kernel: &Path) -> String {
    let which = if kernel == Path::new(vmm::kernel::DEBIAN_KERNEL) {
        "Debian's"
    } else {
        "named"
    };
    match vmm::kernel::version(kernel) {
        Some(v) => format!("{} ({which}, {v})", kernel.display()),
        None => format!("{} ({which})", kernel.display()),
    }
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

/// How many status lines may wait between the reader and the loop: a guest that floods the
/// channel then waits on its own pipe instead of growing the launcher's memory.
const STATUS_QUEUE: usize = 256;

/// A booted VM: its process, and the threads reading its console and status channel.
struct Booted {
    process: vmm::spawn::Process,
    lines: mpsc::Receiver<String>,
    console: std::thread::JoinHandle<()>,
    mconsole: vmm::mconsole::Target,
}

/// Starts UML in its jail, with the console going to the capped console log and the status
/// channel to a bounded reader.
fn spawn(p: &Prepared, bounds: &Bounds, dropped: &Arc<Dropped>) -> Result<Booted> {
    let log = CappedLog::open(&p.dir.console(), bounds.console_bytes, dropped.clone())
        .io_context(|| format!("opening {}", p.dir.console().display()))?;
    let started = vmm::spawn::start(&p.machine, &p.jail).map_err(Error::host)?;
    let console = channel::pump_console(File::from(started.console), log, |_| {});
    let lines = read_status(started.status, bounds.status_line, dropped.clone());
    let mconsole = vmm::mconsole::Target::jailed(
        started.process.pid(),
        &p.machine.umid,
        p.jail.netns.clone(),
        p.jail.uid,
    );
    Ok(Booted {
        process: started.process,
        lines,
        console,
        mconsole,
    })
}

/// Reads bounded status lines on a thread until EOF.
fn read_status(
    r: std::os::fd::OwnedFd,
    max: usize,
    dropped: Arc<Dropped>,
) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::sync_channel(STATUS_QUEUE);
    std::thread::spawn(move || {
        let mut reader = LineReader::new(File::from(r), max, dropped);
        while let Some(line) = reader.next_line() {
            if tx
                .send(String::from_utf8_lossy(&line).into_owned())
                .is_err()
            {
                break;
            }
        }
    });
    rx
}

/// Runs the appliance in the foreground until the VM ends. `Err` means it never booted (and
/// the host is as it was); `Ok` says how the VM ended.
pub fn run(spec_path: &Path, opts: &Options) -> Result<Outcome> {
    let l = load::load_for_launch(spec_path, opts.image.as_deref())?;
    // Block the stop signals before any thread starts, so they wait in the signalfd.
    let sigs = stop_signals();
    let _ = sigs.thread_block();
    let mut p = prepare(&l, opts)?;
    match boot(&l, &mut p, opts) {
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

fn boot(l: &Loaded, p: &mut Prepared, opts: &Options) -> Result<Outcome> {
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
    seen.panic = console.contains("Kernel panic");
    let outcome = exit::decide(&seen);
    run.record_dropped(&mut p.state);
    finish(p, &outcome);
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

/// A console or status line as the launcher prints it: bounded, control characters escaped
/// (a guest must not drive the operator's terminal).
fn shown_line(line: &str) -> String {
    let mut out: String = line
        .chars()
        .take(300)
        .flat_map(|c| {
            if c.is_control() && c != '\t' {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect();
    if line.chars().count() > 300 {
        out.push('…');
    }
    out
}

/// Rate limit on what a guest makes the launcher print: a burst, then one line a second.
/// Each line costs a write to the launcher's output (a file under `start`), so a guest
/// flooding valid events must not turn into an unbounded log.
struct Printer {
    tokens: f64,
    last: Instant,
    skipped: u64,
}

const PRINT_BURST: f64 = 200.0;
const PRINT_PER_SECOND: f64 = 1.0;

impl Default for Printer {
    fn default() -> Printer {
        Printer {
            tokens: PRINT_BURST,
            last: Instant::now(),
            skipped: 0,
        }
    }
}

impl Printer {
    fn allow(&mut self) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() * PRINT_PER_SECOND;
        self.tokens = (self.tokens + refill).min(PRINT_BURST);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            self.skipped += 1;
            false
        }
    }
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
}

impl Run {
    fn record_dropped(&self, st: &mut State) {
        st.dropped.status_lines = self.dropped.long_lines();
        st.dropped.console_bytes = self.dropped.rotated_bytes();
        st.dropped.events_bytes = self.events_dropped.rotated_bytes();
        st.dropped.unprinted_events = self.printer.skipped;
    }
}

/// How often the state file is refreshed while nothing changes phase (the last events and
/// the dropped counts for `status`).
const STATE_REFRESH: Duration = Duration::from_secs(1);

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
    let mut vm = spawn(p, bounds, &run.dropped)?;
    let uml_pid = vm.process.pid();
    p.state.uml_pid = Some(uml_pid);
    p.state.phase = Phase::Booting;
    p.state.save(&p.dir)?;
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
    let mut saved = Instant::now();
    let status = loop {
        // Status events.
        let mut wait = Duration::from_millis(50);
        loop {
            match vm.lines.recv_timeout(wait) {
                Ok(line) => {
                    wait = Duration::ZERO;
                    handle_line(&line, p, run, events_log, opts, &mut saved);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => break,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    // The channel ended before UML did: keep the loop's pace.
                    std::thread::sleep(wait);
                    break;
                }
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
                let _ = p.state.save(&p.dir);
            } else if halt_deadline.is_none() {
                say(&name, &format!("{sig} again: halting the VM now"));
                run.stop_deadline = Some(Instant::now());
            }
        }
        if run.stop_deadline.is_some() && !cad_sent && vm.mconsole.socket.exists() {
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
                run.seen.forced = Some("the VM did not halt; killed".into());
                let _ = vm.process.kill();
            }
        }
        if saved.elapsed() >= STATE_REFRESH {
            let before = p.state.dropped.clone();
            run.record_dropped(&mut p.state);
            if p.state.dropped != before {
                let _ = p.state.save(&p.dir);
            }
            saved = Instant::now();
        }
        match vm.process.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(e) => return Err(Error::host(format!("waiting for UML: {e}"))),
        }
    };
    // The rest of the status lines (EOF comes once every writer is gone: UML was PID 1 of
    // its namespace, so its helpers are gone with it).
    let drain_until = Instant::now() + Duration::from_secs(2);
    while let Ok(line) = vm
        .lines
        .recv_timeout(drain_until.saturating_duration_since(Instant::now()))
    {
        handle_line(&line, p, run, events_log, opts, &mut saved);
    }
    let _ = vm.console.join();
    Ok(status)
}

fn handle_line(
    line: &str,
    p: &mut Prepared,
    run: &mut Run,
    log: &mut CappedLog,
    opts: &Options,
    saved: &mut Instant,
) {
    let Some(ev) = events::parse(line) else {
        if !line.trim().is_empty() && !opts.quiet && run.printer.allow() {
            say(&run.name, &format!("(status channel) {}", shown_line(line)));
        }
        return;
    };
    let _ = log.write(format!("{ev}\n").as_bytes());
    run.events += 1;
    let after = run.started.elapsed();
    let before = (p.state.phase, p.state.ready);
    match events::name(&ev) {
        "ready" => {
            p.state.ready = true;
            if p.state.ready_after_ms.is_none() {
                p.state.ready_after_ms = Some(after.as_millis() as u64);
            }
            if p.state.phase == Phase::Booting {
                p.state.phase = Phase::Ready;
            }
        }
        "exited" | "restarting" => p.state.ready = false,
        "fatal" => run.seen.fatal = ev["reason"].as_str().map(str::to_string),
        "power_off" => run.seen.power_off = Some(ev.clone()),
        _ => {}
    }
    p.state.push_event(ev.clone());
    // The state file changes with the phase; the rest (last events, counts) at most once a
    // second, so a guest flooding events does not turn into a flood of writes.
    if (p.state.phase, p.state.ready) != before || saved.elapsed() >= STATE_REFRESH {
        run.record_dropped(&mut p.state);
        let _ = p.state.save(&p.dir);
        *saved = Instant::now();
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printed_guest_lines_are_escaped_and_bounded() {
        assert_eq!(shown_line("a\u{1b}[2Jb\0c"), "a\\u{1b}[2Jb\\u{0}c");
        let long = "x".repeat(1000);
        assert_eq!(shown_line(&long).chars().count(), 301);
    }

    #[test]
    fn printing_is_rate_limited() {
        let mut p = Printer::default();
        let allowed = (0..1000).filter(|_| p.allow()).count();
        assert_eq!(allowed, PRINT_BURST as usize);
        assert_eq!(p.skipped, 1000 - PRINT_BURST as u64);
    }
}
