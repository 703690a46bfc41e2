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
use crate::privs::{self, RunAs};
use crate::state::{self, Dir, Phase, State, TapRecord};
use crate::uml::{self, UmlConfig};
use crate::{events, mconsole, tap};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The TUN/TAP clone device UML opens.
const TUN: &str = "/dev/net/tun";

/// Smallest config device written (the kernel's partition scan reads the first sectors).
pub const MIN_CONFIG_DEVICE: usize = 16 * 512;

/// Time added to the service's stop timeout before the VM is halted: guest-init's own
/// shutdown (kill the rest, sync, unmount) and a boot that is not yet far enough to stop.
pub const STOP_MARGIN: Duration = Duration::from_secs(10);

/// How long a halted VM may take to exit before it is killed.
pub const HALT_GRACE: Duration = Duration::from_secs(5);

/// UML is started with host address-space randomization off (`setarch -R`,
/// `personality(ADDR_NO_RANDOMIZE)`).
///
/// UML's physical memory starts at its own binary, and at boot it adds the gap between the end
/// of the binary and the host's (randomized) start of its heap to the memory it manages ("Adding
/// N bytes to physical memory to account for exec-shield gap"). On x86-64 the host randomizes
/// the heap start over 1 GiB, and the kernel's page array for the gap (64 bytes per 4 KiB page,
/// up to 16 MiB) is taken out of `mem=`. With `mem=32M` the kernel then had between 21 MiB and
/// under 8 MiB left, and about every second boot ended in "Kernel panic - not syncing: System
/// is deadlocked on memory" during the kernel's own initcalls. Without randomization the gap is
/// empty and every boot has the same 21 MiB (32 MiB minus the kernel's ~11 MiB image and page
/// array) — and the host keeps that page array's memory too. The binary itself is not
/// position-independent, so its text is at a fixed address anyway; the guest's processes are
/// laid out by the UML kernel, not by this host setting.
const NO_RANDOMIZE: libc::c_int = libc::ADDR_NO_RANDOMIZE;

/// Turns host address-space randomization off for the calling process and what it executes
/// (see [`NO_RANDOMIZE`]). Async-signal-safe: meant for `pre_exec`, between fork and exec.
pub fn no_address_randomization() {
    // SAFETY: personality(2) with 0xffffffff only reads the persona; setting it changes only
    // how the next exec lays out memory.
    unsafe {
        let persona = libc::personality(0xffff_ffff);
        if persona >= 0 && persona & NO_RANDOMIZE == 0 {
            libc::personality((persona | NO_RANDOMIZE) as libc::c_ulong);
        }
    }
}

/// How often a boot is tried when the kernel panics before init starts.
///
/// At 32 MiB (of which UML's kernel image takes 11) a boot still fails now and then in the
/// kernel itself, about 1 in 50: at the peak of boot-time kernel threads and allocations (the
/// crypto self-test threads, sysfs nodes of the serial lines, btrfs's 3 MiB of zstd
/// workspaces), with the page allocator's watermark raised by a boost of one 4 MiB page
/// block, an allocation finds nothing to reclaim and the kernel panics ("System is deadlocked
/// on memory"), or a crypto self-test thread cannot start and the root file system then fails
/// to mount. The second kind was seen once in about 200 boots at 64 MiB too. Nothing of the
/// guest has run then — the root image is read-only and guest-init mounts the data disks
/// later — so booting again is safe; the failed attempt's console is kept as
/// `console.bootN.log`. A panic that repeats (a broken image, say) ends the run as before.
pub const BOOT_ATTEMPTS: u32 = 3;

/// The kernel's panic message when it panicked while booting, before init ran: `None` if it
/// did not panic, or init was running (the panic then is about init, not the boot).
pub fn kernel_boot_panic(console: &str) -> Option<&str> {
    let line = console
        .lines()
        .find(|l| l.contains("Kernel panic - not syncing"))?;
    if line.contains("Attempted to kill init") {
        return None;
    }
    Some(line.trim())
}

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
pub fn preflight(l: &Loaded, who: &RunAs) -> Result<Vec<Planned>> {
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
    if who.switch && spec.network.is_some() && !privs::may_access(Path::new(TUN), who, true) {
        problems.push(format!(
            "network: user {} (uid {}) cannot open {TUN}, which UML needs to attach to the TAP \
             device; give it Debian's usual mode (chmod 0666 {TUN}) or set \"run_as\": \"root\"",
            who.name, who.uid
        ));
    }
    if who.switch {
        if !privs::may_access(&l.image, who, false) {
            problems.push(format!(
                "image: {} is not readable by user {} (uid {}); make it world-readable (chmod \
                 a+r) or change run_as",
                l.image.display(),
                who.name,
                who.uid
            ));
        }
        if let Some(d) = privs::may_traverse(&l.image, who) {
            problems.push(format!(
                "image: user {} (uid {}) cannot reach {} because it may not enter {}; chmod a+x \
                 that directory or change run_as",
                who.name,
                who.uid,
                l.image.display(),
                d.display()
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
    if who.switch {
        for p in &planned {
            let bad = match p.action {
                disks::Action::Use => !privs::may_access(&p.path, who, true),
                disks::Action::Create(_) => false,
            };
            if bad {
                problems.push(format!(
                    "{}.file: {} is not readable and writable by user {} (uid {}); `chown {}:{} \
                     {}` or change run_as",
                    p.at,
                    p.path.display(),
                    who.name,
                    who.uid,
                    who.uid,
                    who.gid,
                    p.path.display()
                ));
            }
            if let Some(d) = privs::may_traverse(&p.path, who) {
                problems.push(format!(
                    "{}.file: user {} (uid {}) may not enter {}; chmod a+x it or change run_as",
                    p.at,
                    who.name,
                    who.uid,
                    d.display()
                ));
            }
        }
    }
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
    let _ = std::fs::remove_dir_all(dir.uml_dir());
    let _ = std::fs::remove_dir_all(dir.tmp());
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

/// The UML command line's settings for a loaded spec, its state directory and umid.
pub fn uml_config(l: &Loaded, dir: &Dir, umid: String, kernel_log: bool) -> UmlConfig {
    UmlConfig {
        image: l.image.clone(),
        disks: l
            .merged
            .disks
            .iter()
            .zip(&l.disk_files)
            .map(|(d, f)| (d.ubd, f.clone()))
            .collect(),
        config_ubd: l.merged.config_ubd,
        config_image: dir.config_image(),
        tap: l.spec.network.as_ref().map(|n| n.tap.clone()),
        memory_mib: l.spec.memory_mib,
        umid,
        uml_dir: dir.uml_dir(),
        kernel_log,
        needs_raid6: uml::needs_raid6(&l.merged.contract),
    }
}

fn is_tmpfs(p: &Path) -> bool {
    nix::sys::statfs::statfs(p)
        .map(|s| s.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC)
        .unwrap_or(false)
}

/// Everything prepared for the boot.
struct Prepared {
    dir: Dir,
    _lock: state::Lock,
    state: State,
    args: Vec<String>,
    tmpdir: PathBuf,
    netns_file: Option<File>,
    who: RunAs,
    undo: Undo,
}

fn say(name: &str, text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "[{name}] {text}");
    let _ = out.flush();
}

fn prepare(l: &Loaded, opts: &Options) -> Result<Prepared> {
    let who =
        privs::resolve(l.spec.run_as.as_deref()).map_err(|e| e.context(l.spec_path.display()))?;
    let planned = preflight(l, &who)?;
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
    let result = prepare_locked(l, opts, &who, &planned, dir, &mut undo);
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
    who: &RunAs,
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
    if let Some(old) = State::load(&dir) {
        if old.phase != Phase::Exited {
            for note in clean_stale(&dir, &old) {
                say(
                    name,
                    &format!("previous launcher (pid {}) died: {note}", old.launcher_pid),
                );
            }
        }
    }
    collisions(l, &state::base_dir())?;
    for f in [dir.events(), dir.console(), dir.state(), dir.config_image()] {
        let _ = std::fs::remove_file(f);
    }
    for n in 1..BOOT_ATTEMPTS {
        let _ = std::fs::remove_file(dir.path.join(format!("console.boot{n}.log")));
    }
    let _ = std::fs::remove_dir_all(dir.uml_dir());
    let _ = std::fs::remove_dir_all(dir.tmp());
    for d in [dir.uml_dir(), dir.tmp()] {
        std::fs::create_dir(&d).io_context(|| format!("creating {}", d.display()))?;
        if who.switch {
            std::os::unix::fs::chown(&d, Some(who.uid), Some(who.gid))
                .io_context(|| format!("giving {} to uid {}", d.display(), who.uid))?;
        }
    }
    let _ = std::fs::set_permissions(&dir.path, std::fs::Permissions::from_mode(0o755));

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
            tap::create(n, who.uid, who.gid)?;
            undo.tap = Some((n.tap.clone(), n.netns.clone()));
            st.tap = Some(TapRecord {
                name: n.tap.clone(),
                netns: n.netns.clone(),
                created: true,
            });
        } else {
            return Err(Error::host(format!(
                "network.tap: the TAP device {} does not exist, and creating it needs root; run \
                 as root, or create it first: `ip tuntap add dev {} mode tap user {}`",
                n.tap, n.tap, who.uid
            )));
        }
        st.save(&dir)?;
    }

    // The disks.
    let owner = who.switch.then_some((who.uid, who.gid));
    undo.created_disks = disks::create(planned, owner)?;
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
    std::fs::write(dir.config_image(), &img)
        .io_context(|| format!("writing {}", dir.config_image().display()))?;
    let _ = std::fs::set_permissions(dir.config_image(), std::fs::Permissions::from_mode(0o644));

    let cfg = uml_config(l, &dir, umid, opts.kernel_log);
    let args = uml::command_line(&cfg).map_err(Error::invalid)?;
    let tmpdir = if is_tmpfs(&dir.path) || !Path::new("/dev/shm").is_dir() {
        dir.tmp()
    } else {
        PathBuf::from("/dev/shm")
    };
    let netns_file = match l.spec.network.as_ref().and_then(|n| n.netns.as_ref()) {
        Some(ns) => {
            let p = Path::new("/run/netns").join(ns);
            Some(File::open(&p).io_context(|| format!("network.netns: opening {}", p.display()))?)
        }
        None => None,
    };
    Ok(Prepared {
        dir,
        _lock: lock,
        state: st,
        args,
        tmpdir,
        netns_file,
        who: who.clone(),
        undo: Undo::default(),
    })
}

/// Starts UML: in the namespace, as the VM's user, in its own session, dying with the
/// launcher, with the console on fd 1/2 and the status pipe on [`uml::STATUS_FD`].
fn spawn(l: &Loaded, p: &Prepared, status_w: &OwnedFd) -> Result<Child> {
    let console = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(p.dir.console())
        .io_context(|| format!("opening {}", p.dir.console().display()))?;
    let console2 = console
        .try_clone()
        .io_context(|| "duplicating the console log descriptor".to_string())?;
    let mut cmd = Command::new(&l.kernel);
    cmd.args(&p.args)
        .env("TMPDIR", &p.tmpdir)
        .current_dir(&p.dir.path)
        .stdin(Stdio::null())
        .stdout(Stdio::from(console))
        .stderr(Stdio::from(console2));
    let netns_fd = p.netns_file.as_ref().map(|f| f.as_raw_fd());
    let w = status_w.as_raw_fd();
    let ids = p.who.switch.then_some((p.who.uid, p.who.gid));
    let status_fd = uml::STATUS_FD;
    let cpu = crate::cpu::pick(&uml::comm(&l.kernel));
    // SAFETY: the closure runs between fork and exec and only makes async-signal-safe system
    // calls on descriptors and ids prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            // See [`NO_RANDOMIZE`]: without it a small VM fails to boot at random.
            no_address_randomization();
            if let Some(fd) = netns_fd {
                if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            // See crate::cpu: a VM on one core runs its guest's system calls faster.
            if let Some(cpu) = cpu {
                crate::cpu::pin_self(cpu)?;
            }
            if w == status_fd {
                let flags = libc::fcntl(w, libc::F_GETFD);
                libc::fcntl(w, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
            } else if libc::dup2(w, status_fd) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if let Some((uid, gid)) = ids {
                let groups = [gid as libc::gid_t];
                if libc::setgroups(1, groups.as_ptr()) != 0
                    || libc::setgid(gid as libc::gid_t) != 0
                    || libc::setuid(uid as libc::uid_t) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
            Ok(())
        });
    }
    cmd.spawn()
        .map_err(|e| Error::host(format!("starting {}: {e}", uml::shown(&l.kernel, &p.args))))
}

/// Reads status lines on a thread until EOF.
fn read_status(r: OwnedFd) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let reader = BufReader::new(File::from(r));
        for line in reader.split(b'\n') {
            let Ok(line) = line else { break };
            let text = String::from_utf8_lossy(&line)
                .trim_end_matches('\r')
                .to_string();
            if tx.send(text).is_err() {
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
    let mut events_log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(p.dir.events())
        .io_context(|| format!("opening {}", p.dir.events().display()))?;
    let mut stop_deadline: Option<Instant> = None;
    let mut attempt = 1;
    let (status, mut seen) = loop {
        let (status, seen, events) = boot_once(
            l,
            p,
            opts,
            &sfd,
            started,
            &mut events_log,
            &mut stop_deadline,
        )?;
        if attempt >= BOOT_ATTEMPTS || events > 0 || stop_deadline.is_some() {
            break (status, seen);
        }
        let console = std::fs::read(p.dir.console()).unwrap_or_default();
        let console = String::from_utf8_lossy(&console);
        let Some(why) = kernel_boot_panic(&console) else {
            break (status, seen);
        };
        let kept = p.dir.path.join(format!("console.boot{attempt}.log"));
        let _ = std::fs::rename(p.dir.console(), &kept);
        let _ = std::fs::remove_dir_all(p.dir.uml_dir().join(&p.state.umid));
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
    seen.uml_code = status.code();
    seen.uml_signal = status.signal();
    let console = std::fs::read(p.dir.console()).unwrap_or_default();
    let console = String::from_utf8_lossy(&console);
    seen.panic = console.contains("Kernel panic");
    let outcome = exit::decide(&seen);
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
                say(&name, &format!("  {line}"));
            }
        }
    }
    Ok(outcome)
}

/// One boot of UML, followed until it ends: its exit status, what was seen and how many
/// status events came.
#[allow(clippy::too_many_arguments)]
fn boot_once(
    l: &Loaded,
    p: &mut Prepared,
    opts: &Options,
    sfd: &SignalFd,
    started: Instant,
    events_log: &mut File,
    stop_deadline: &mut Option<Instant>,
) -> Result<(std::process::ExitStatus, Seen, usize)> {
    let name = l.spec.name.clone();
    let (status_r, status_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| Error::host(format!("creating the status pipe: {e}")))?;
    let mut child = spawn(l, p, &status_w)?;
    drop(status_w);
    let uml_pid = child.id();
    p.state.uml_pid = Some(uml_pid);
    p.state.phase = Phase::Booting;
    p.state.save(&p.dir)?;
    // From here on the disks hold the guest's data: never remove them.
    p.undo.created_disks.clear();
    if !opts.quiet {
        say(
            &name,
            &format!(
                "booting (umid {}, pid {uml_pid}, state {})",
                p.state.umid,
                p.dir.path.display()
            ),
        );
    }
    let lines = read_status(status_r);
    let socket = uml::mconsole_socket(&p.dir.uml_dir(), &p.state.umid);
    let stop_after = Duration::from_millis(l.merged.contract.service.stop_timeout_ms) + STOP_MARGIN;
    let mut seen = Seen::default();
    let mut events = 0;
    let mut cad_sent = false;
    let mut halt_deadline: Option<Instant> = None;
    let status = loop {
        // Status events.
        let mut wait = Duration::from_millis(50);
        loop {
            match lines.recv_timeout(wait) {
                Ok(line) => {
                    wait = Duration::ZERO;
                    events += handle_line(&name, &line, started, p, &mut seen, events_log, opts);
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
            if stop_deadline.is_none() {
                if !opts.quiet {
                    say(
                        &name,
                        &format!("{sig}: stopping (ctrl-alt-del to the guest)"),
                    );
                }
                *stop_deadline = Some(Instant::now() + stop_after);
                p.state.phase = Phase::Stopping;
                let _ = p.state.save(&p.dir);
            } else if halt_deadline.is_none() {
                say(&name, &format!("{sig} again: halting the VM now"));
                *stop_deadline = Some(Instant::now());
            }
        }
        if stop_deadline.is_some() && !cad_sent && socket.exists() {
            match mconsole::send(&p.dir.uml_dir(), &socket, "cad", Duration::from_secs(2)) {
                Ok(_) => cad_sent = true,
                Err(e) => say(&name, &format!("mconsole cad: {e}; retrying")),
            }
        }
        if let Some(deadline) = *stop_deadline {
            if halt_deadline.is_none() && Instant::now() >= deadline {
                seen.forced = Some(format!(
                    "the guest did not power off within {} s of the stop request; halted",
                    stop_after.as_secs()
                ));
                let _ = mconsole::send(&p.dir.uml_dir(), &socket, "halt", Duration::from_secs(2));
                halt_deadline = Some(Instant::now() + HALT_GRACE);
            }
        }
        if let Some(deadline) = halt_deadline {
            if Instant::now() >= deadline {
                seen.forced = Some("the VM did not halt; killed".into());
                // SAFETY: UML leads its own process group (setsid in spawn).
                unsafe {
                    libc::killpg(uml_pid as libc::pid_t, libc::SIGKILL);
                }
            }
        }
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(e) => return Err(Error::host(format!("waiting for UML: {e}"))),
        }
    };
    // UML's helpers share its process group; none may outlive it.
    // SAFETY: as above; the group is gone or holds only UML's own processes.
    unsafe {
        libc::killpg(uml_pid as libc::pid_t, libc::SIGKILL);
    }
    // The rest of the status lines (EOF comes once every writer is gone).
    let drain_until = Instant::now() + Duration::from_secs(2);
    while let Ok(line) = lines.recv_timeout(drain_until.saturating_duration_since(Instant::now())) {
        events += handle_line(&name, &line, started, p, &mut seen, events_log, opts);
    }
    Ok((status, seen, events))
}

fn handle_line(
    name: &str,
    line: &str,
    started: Instant,
    p: &mut Prepared,
    seen: &mut Seen,
    log: &mut File,
    opts: &Options,
) -> usize {
    let Some(ev) = events::parse(line) else {
        if !line.trim().is_empty() && !opts.quiet {
            say(name, &format!("(status channel) {line}"));
        }
        return 0;
    };
    let _ = writeln!(log, "{}", ev);
    let after = started.elapsed();
    match events::name(&ev) {
        "ready" => {
            p.state.ready = true;
            p.state.ready_after_ms = Some(after.as_millis() as u64);
            if p.state.phase == Phase::Booting {
                p.state.phase = Phase::Ready;
            }
        }
        "exited" | "restarting" => p.state.ready = false,
        "fatal" => seen.fatal = ev["reason"].as_str().map(str::to_string),
        "power_off" => seen.power_off = Some(ev.clone()),
        _ => {}
    }
    p.state.push_event(ev.clone());
    let _ = p.state.save(&p.dir);
    if !opts.quiet {
        say(
            name,
            &format!("{:>7.3}s {}", after.as_secs_f64(), events::human(&ev)),
        );
    }
    1
}

/// Removes the TAP device this run created and UML's runtime files, and records the end.
fn finish(p: &mut Prepared, outcome: &Outcome) {
    if let Some(t) = &p.state.tap {
        if t.created {
            if let Err(e) = tap::delete(&t.name, t.netns.as_deref()) {
                say(&p.state.name, &format!("removing the TAP device: {e}"));
            }
        }
    }
    p.undo = Undo::default();
    let _ = std::fs::remove_dir_all(p.dir.uml_dir());
    let _ = std::fs::remove_dir_all(p.dir.tmp());
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
    fn boot_panics_are_recognized_but_not_init_dying() {
        let oom = "swapper invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL)\nOut of memory and no \
                   killable processes...\nKernel panic - not syncing: System is deadlocked on memory\n";
        assert_eq!(
            kernel_boot_panic(oom),
            Some("Kernel panic - not syncing: System is deadlocked on memory")
        );
        let root = "zswap: pool creation failed\nKernel panic - not syncing: VFS: Unable to mount \
                    root fs on unknown-block(98,0)\nCPU: 0 PID: 1 Comm: swapper\n";
        assert!(kernel_boot_panic(root)
            .unwrap()
            .ends_with("unknown-block(98,0)"));
        let init = "Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100\n";
        assert_eq!(kernel_boot_panic(init), None);
        assert_eq!(kernel_boot_panic("guest-init: ready\n"), None);
    }
}
