//! Preparing the host for a run, before UML starts: every check that needs no change to the
//! host, then, under the appliance's lock, the VM's uid, the TAP device, the disks and the
//! config device, and the VM's command line and jail.
//!
//! Order matters for "nothing lost, nothing left behind": everything that can be checked is
//! checked before anything is created; the state directory is locked before the host is
//! touched; what a failed launch created (TAP device, new disk files, a new state directory)
//! is removed again ([`Undo`]); existing disks are never written by the host.

use crate::error::{Error, IoContext, Result};
use crate::launch::block;
use crate::launch::disks::{self, DiskFile};
use crate::launch::load::Loaded;
use crate::launch::{nft, tap, vm};
use crate::output::say;
use crate::privs;
use crate::state::{self, Dir, Phase, State, TapRecord};
use crate::timeline::Timeline;
use appliance::netpolicy;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use vmm::boot::BOOT_ATTEMPTS;
use vmm::channel;

/// Options of a foreground run.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Show the kernel's informational boot messages in the console log.
    pub kernel_log: bool,
    /// Do not print status events (they still go to the events log).
    pub quiet: bool,
    /// Boot this root image instead of the spec's (its manifest beside it); `upgrade` uses it.
    /// Without it, an image put in place by an earlier `upgrade` is used (see
    /// [`crate::launch::load::SpecFile::pinned_image`]).
    pub image: Option<PathBuf>,
}

/// A unique instance id: `NAME-xxxx` (UML's umid, also the mconsole directory's name).
fn new_umid(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mix = u64::from(std::process::id()) << 32 ^ u64::from(nanos);
    format!("{name}-{:06x}", (mix ^ (mix >> 17)) & 0xff_ffff)
}

/// What a failed launch must undo.
#[derive(Default)]
pub(crate) struct Undo {
    pub(crate) created_dir: Option<PathBuf>,
    pub(crate) created_disks: Vec<PathBuf>,
    pub(crate) tap: Option<(String, Option<String>)>,
    /// The network policy's table, appliance name and namespace.
    pub(crate) policy: Option<(String, String, Option<String>)>,
}

impl Undo {
    pub(crate) fn run(&mut self) {
        if let Some((table, name, ns)) = self.policy.take() {
            let _ = nft::remove(&table, &name, ns.as_deref());
        }
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
pub fn preflight(l: &Loaded) -> Result<Vec<DiskFile>> {
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
    let disk_files = match disks::inspect(&files) {
        Ok(p) => p,
        Err(e) => {
            problems.push(e.message);
            Vec::new()
        }
    };
    if problems.is_empty() {
        // Before every launch (and `check`): the image and manifest as the policy wants them.
        crate::trust::check(&l.image, &l.manifest_path)?;
        Ok(disk_files)
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
    // Only a leftover is worth a note, so this rare path asks first.
    if let Some(p) = st
        .policy
        .as_ref()
        .filter(|p| nft::installed(&p.table, &st.name, p.netns.as_deref()))
    {
        match nft::remove(&p.table, &st.name, p.netns.as_deref()) {
            Ok(()) => notes.push(format!(
                "removed its chains from the nftables table {}",
                p.table
            )),
            Err(e) => notes.push(format!("could not remove the network policy: {e}")),
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
fn collisions(l: &Loaded, entries: &[state::Entry]) -> Result<()> {
    let ours: Vec<_> = l
        .disk_files
        .iter()
        .filter_map(|f| disks::identity(f))
        .collect();
    for e in entries {
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
pub(crate) struct Prepared {
    pub(crate) dir: Dir,
    _lock: state::Lock,
    pub(crate) state: State,
    pub(crate) machine: vmm::cmdline::Machine,
    pub(crate) jail: vmm::jail::Jail,
    pub(crate) undo: Undo,
    /// The host's steps so far ([`crate::timeline`]).
    pub(crate) timeline: Timeline,
}

pub(crate) fn prepare(l: &Loaded, opts: &Options, mut timeline: Timeline) -> Result<Prepared> {
    let disk_files = preflight(l)?;
    timeline.mark("preflight");
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
    let result = prepare_locked(l, opts, &disk_files, dir.clone(), &mut undo, timeline);
    if let Err(e) = &result {
        undo.run();
        record_refusal(&dir, e);
    }
    result.map(|mut p| {
        p.undo = undo;
        p
    })
}

/// A launch refused after this launcher wrote its state says so in the state, so that
/// `status` reads "refused" and why, not "its launcher died".
fn record_refusal(dir: &Dir, e: &Error) {
    let Some(mut st) = State::load(dir) else {
        return;
    };
    if st.launcher_pid != std::process::id() || st.phase == Phase::Exited {
        return;
    }
    st.phase = Phase::Exited;
    st.outcome = Some(format!("refused before boot: {e}"));
    st.exit_code = Some(crate::exit::for_error(e.kind));
    let _ = st.save(dir);
}

fn prepare_locked(
    l: &Loaded,
    opts: &Options,
    disk_files: &[DiskFile],
    dir: Dir,
    undo: &mut Undo,
    mut t: Timeline,
) -> Result<Prepared> {
    let name = &l.spec.name;
    let lock = take_lock(&dir, name)?;
    let old = State::load(&dir);
    clear_previous_run(&dir, name, old.as_ref());
    t.mark("locked");
    // The state says "starting" from here on, so that a refusal below is recorded as one.
    let umid = new_umid(name);
    let mut st = starting_state(l, &umid);
    st.save(&dir)?;
    t.mark("state");
    // One read of every other appliance's state for both checks.
    let others = state::list(&state::base_dir());
    collisions(l, &others)?;
    let uid = vm::assign_uid_among(&others, name, old.as_ref().and_then(|o| o.uid))?;
    for (d, f) in l.merged.disks.iter().zip(&l.disk_files) {
        vm::check_disk_owner(&format!("disks[{}]", d.spec_index), f, uid)?;
    }
    st.uid = Some(uid);
    st.save(&dir)?;
    t.mark("uid");
    if let Some(n) = &l.spec.network {
        attach_network(l, &dir, n, uid, &mut st, undo)?;
        st.save(&dir)?;
        t.mark("tap");
        install_policy(l, n, &mut st, undo)?;
        st.save(&dir)?;
        t.mark("nft");
    }
    undo.created_disks = disks::create(disk_files, Some((uid, uid)))?;
    for p in &undo.created_disks {
        say(
            name,
            &format!("created the data disk {} (sparse)", p.display()),
        );
    }
    write_config_device(l, &dir, uid)?;
    t.mark("disks");
    let machine = vm::machine(l, &dir, umid, opts.kernel_log);
    vmm::cmdline::command_line(&machine).map_err(|e| Error::invalid(e.to_string()))?;
    let jail = vm::jail(l, &dir, uid, &machine)?;
    t.mark("jail");
    Ok(Prepared {
        dir,
        _lock: lock,
        state: st,
        machine,
        jail,
        undo: Undo::default(),
        timeline: t,
    })
}

/// The appliance's lock, or "already running" naming the launcher that holds it.
fn take_lock(dir: &Dir, name: &str) -> Result<state::Lock> {
    if let Some(lock) = state::try_lock(dir)? {
        return Ok(lock);
    }
    let detail = State::load(dir)
        .map(|s| {
            format!(
                " (launcher pid {}, phase {}, umid {})",
                s.launcher_pid,
                s.phase.as_str(),
                s.umid
            )
        })
        .unwrap_or_default();
    Err(Error::busy(format!(
        "appliance '{name}' is already running{detail}; stop it first with `host-launch \
         stop {name}`, or give this one another name"
    )))
}

/// What a previous run left: a dead launcher's VM and devices cleaned, its logs removed.
fn clear_previous_run(dir: &Dir, name: &str, old: Option<&State>) {
    if let Some(old) = old.filter(|o| o.phase != Phase::Exited) {
        for note in clean_stale(dir, old) {
            say(
                name,
                &format!("previous launcher (pid {}) died: {note}", old.launcher_pid),
            );
        }
    }
    for f in [
        dir.events(),
        dir.console(),
        dir.console_stamped(),
        dir.state(),
        dir.config_image(),
    ] {
        let _ = std::fs::remove_file(&f);
        let _ = std::fs::remove_file(channel::rotated(&f));
    }
    for n in 1..BOOT_ATTEMPTS {
        let _ = std::fs::remove_file(dir.path.join(format!("console.boot{n}.log")));
    }
}

/// The state of a launch that is starting.
fn starting_state(l: &Loaded, umid: &str) -> State {
    State {
        name: l.spec.name.clone(),
        // Absolute: `start NAME` and `restart` find it again from anywhere.
        spec: std::path::absolute(&l.spec_path)
            .unwrap_or_else(|_| l.spec_path.clone())
            .display()
            .to_string(),
        phase: Phase::Starting,
        launcher_pid: std::process::id(),
        uml_pid: None,
        umid: umid.to_string(),
        image: Some(l.image.display().to_string()),
        started_at_ms: state::now_ms(),
        ready: false,
        ready_after_ms: None,
        booted_after_ms: None,
        service: Default::default(),
        guest: None,
        tap: None,
        policy: None,
        disks: l
            .disk_files
            .iter()
            .map(|f| f.display().to_string())
            .collect(),
        outcome: None,
        exit_code: None,
        last_events: Vec::new(),
        uid: None,
        kernel: Some(describe_kernel(&l.kernel)),
        class: l.manifest.class.as_ref().map(ToString::to_string),
        dropped: Default::default(),
        systemd: state::Systemd::detect(),
        stop_timeout_ms: Some(l.merged.contract.service.stop_timeout_ms),
        host_steps: None,
    }
}

/// The TAP device: an existing one used as it is, else created for the VM's uid (root only).
fn attach_network(
    l: &Loaded,
    dir: &Dir,
    n: &appliance::spec::NetworkSpec,
    uid: u32,
    st: &mut State,
    undo: &mut Undo,
) -> Result<()> {
    let ns = n.netns.as_deref();
    // Left by the launcher an `upgrade` stopped: this launch owns it now (and removes it).
    let handed_over = std::fs::remove_file(dir.tap_handover()).is_ok();
    let created = if handed_over && tap::exists(&n.tap, ns) {
        undo.tap = Some((n.tap.clone(), n.netns.clone()));
        true
    } else if tap::exists(&n.tap, ns) {
        say(
            &l.spec.name,
            &format!("using the existing TAP device {} as it is", n.tap),
        );
        false
    } else if privs::is_root() {
        tap::create(n, uid, uid)?;
        undo.tap = Some((n.tap.clone(), n.netns.clone()));
        true
    } else {
        return Err(Error::host(format!(
            "network.tap: the TAP device {} does not exist, and creating it needs root",
            n.tap
        )));
    };
    st.tap = Some(TapRecord {
        name: n.tap.clone(),
        netns: n.netns.clone(),
        created,
    });
    Ok(())
}

/// The config device (the contract, read-only to the guest), and the data disks and it handed
/// to the VM's uid: UML opens them as that uid.
fn write_config_device(l: &Loaded, dir: &Dir, uid: u32) -> Result<()> {
    let mut img = contract::blockdev::encode_checked(&l.merged.contract)
        .map_err(|e| Error::invalid(format!("the merged contract: {e}")))?;
    if img.len() < contract::blockdev::MIN_DEVICE_BYTES {
        img.resize(contract::blockdev::MIN_DEVICE_BYTES, 0);
    }
    write_private(&dir.config_image(), &img)?;
    vmm::jail::hand_over(&dir.config_image(), uid, uid, 0o400)
        .map_err(|e| Error::host(e.to_string()))?;
    // A block device stays the host's as it is: the jail makes the VM's uid a node of its own.
    for f in l.disk_files.iter().filter(|f| block::rdev_of(f).is_none()) {
        vmm::jail::hand_over(f, uid, uid, 0o600).map_err(|e| Error::host(e.to_string()))?;
    }
    Ok(())
}

/// The network policy on the TAP device, before the guest boots: refused start (122) when it
/// cannot be installed, and removed again by [`Undo`] when a later step fails.
fn install_policy(
    l: &Loaded,
    n: &appliance::spec::NetworkSpec,
    st: &mut State,
    undo: &mut Undo,
) -> Result<()> {
    let policy = l.policy().ok_or_else(|| {
        Error::host("network policy: the contract gives the interface no MAC address".to_string())
    })?;
    let script = netpolicy::render(&policy, netpolicy::Pass::On);
    nft::install(&policy.table, &script, n.netns.as_deref())?;
    undo.policy = Some((policy.table.clone(), policy.name.clone(), n.netns.clone()));
    st.policy = Some(state::PolicyRecord {
        table: policy.table,
        netns: n.netns.clone(),
        rules: netpolicy::rule_count(&script),
    });
    Ok(())
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

/// The kernel and its version, as `check` and `status` show them; the version run once per
/// kernel file ([`crate::kernel_version`]).
pub fn describe_kernel(kernel: &Path) -> String {
    let version = crate::kernel_version::version(kernel, &state::base_dir());
    vmm::kernel::describe_as(kernel, version)
}
