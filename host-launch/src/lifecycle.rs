//! What the subcommands share, below them: describing a launch without touching the host
//! (`check`, also before an upgrade), starting a launcher in the background, stopping a
//! running appliance through its launcher, and finding an appliance's state.

use crate::error::{Error, IoContext, Result};
use crate::launch::disks::DiskFile;
use crate::launch::load::{self, Loaded};
use crate::launch::{run, vm};
use crate::state::{self, Dir, Phase, State};
use crate::timeline::{self, Clocks};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What `check` found: the merged contract and the command line `run` would use.
#[derive(Debug)]
pub struct CheckReport {
    pub loaded: Loaded,
    pub text: String,
}

/// Validates a spec against its image without touching the host, and describes the launch.
pub fn check(spec: &Path) -> Result<CheckReport> {
    check_image(&load::SpecFile::read(spec)?, None)
}

/// [`check`] with `image` in place of the spec's (see [`load::load_for_launch`]).
pub fn check_image(file: &load::SpecFile, image: Option<&Path>) -> Result<CheckReport> {
    let l = load::load_for_launch(file, image)?;
    let disk_files = run::preflight(&l)?;
    let dir = Dir::new(&state::base_dir(), &l.spec.name);
    let machine = vm::machine(&l, &dir, format!("{}-XXXXXX", l.spec.name), false);
    let args = vmm::cmdline::command_line(&machine).map_err(|e| Error::invalid(e.to_string()))?;
    let recorded = State::load(&dir).and_then(|s| s.uid);
    let uid = vm::assign_uid(&state::base_dir(), &l.spec.name, recorded)
        .map(|u| u.to_string())
        .unwrap_or_else(|e| format!("none: {e}"));
    let mut t = String::new();
    let mut line = |s: String| {
        t.push_str(&s);
        t.push('\n');
    };
    line(format!("spec:     {}", l.spec_path.display()));
    line(format!("image:    {}", l.image.display()));
    line(format!("manifest: {}", l.manifest_path.display()));
    if let Some(c) = &l.manifest.class {
        line(format!(
            "class:    {c} (docs/classes/{}.md)",
            c.name.as_str()
        ));
    }
    line(format!(
        "digest:   {}",
        crate::trust::describe(&l.image, &l.manifest_path)
    ));
    line(format!("state:    {}", dir.path.display()));
    line(format!("kernel:   {}", run::describe_kernel(&l.kernel)));
    line(format!(
        "run as:   uid {uid} (the VM's own, in a jail: {} MiB /tmp, no capabilities)",
        l.spec.memory_mib + 4
    ));
    for d in disk_lines(&l, &disk_files) {
        line(d);
    }
    for n in network_lines(&l) {
        line(n);
    }
    line("contract:".into());
    line(serde_json::to_string_pretty(&l.merged.contract).unwrap_or_default());
    line("UML command line:".into());
    line(vmm::cmdline::shown(&l.kernel, &args));
    Ok(CheckReport { loaded: l, text: t })
}

/// `check`'s line for each data disk: its file, device, mount point and whether it is made.
fn disk_lines(l: &Loaded, disk_files: &[DiskFile]) -> Vec<String> {
    let mut out = Vec::new();
    let mut line = |s: String| out.push(s);
    for (d, p) in l.merged.disks.iter().zip(disk_files) {
        let what = match p.action {
            crate::launch::disks::Action::Use => "exists, used as it is".to_string(),
            crate::launch::disks::Action::Create(n) => {
                format!("will be created sparse, {} MiB", n >> 20)
            }
            crate::launch::disks::Action::Device(n) => {
                format!(
                    "block device, {} MiB, free on the host, used as it is",
                    n >> 20
                )
            }
        };
        let mp = l
            .merged
            .contract
            .mounts
            .disks
            .iter()
            .find(|c| c.device == d.device)
            .map(|c| c.mount_point.clone())
            .unwrap_or_default();
        line(format!(
            "disk:     {} -> {} at {mp} ({what})",
            p.path.display(),
            d.device
        ));
    }
    out
}

/// `check`'s lines for the network: the TAP device, the declared ports, the policy.
fn network_lines(l: &Loaded) -> Vec<String> {
    let mut out = Vec::new();
    let mut line = |s: String| out.push(s);
    if let Some(n) = &l.spec.network {
        line(format!(
            "network:  TAP {}{}{}",
            n.tap,
            n.netns
                .as_ref()
                .map(|s| format!(" in netns {s}"))
                .unwrap_or_default(),
            n.host_address
                .as_ref()
                .map(|a| format!(", host side {a}"))
                .or_else(|| n.bridge.as_ref().map(|b| format!(", bridge {b}")))
                .unwrap_or_default()
        ));
    }
    for p in &l.manifest.ports {
        line(format!(
            "port:     {}/{}{}",
            p.port,
            match p.protocol {
                appliance::manifest::Protocol::Tcp => "tcp",
                appliance::manifest::Protocol::Udp => "udp",
            },
            p.description
                .as_ref()
                .map(|d| format!(" ({d})"))
                .unwrap_or_default()
        ));
    }
    if let Some(p) = l.policy() {
        for d in appliance::netpolicy::describe(&p) {
            line(format!("policy:   {d}"));
        }
    }
    out
}

/// Starts `host-launch run SPEC [--image IMAGE]` in a new session, its output in the state
/// directory's `launcher.log`; `started` is when the operator's command began, for the
/// launcher's timeline ([`crate::timeline`]). Refused (121) while a launcher runs the
/// appliance.
pub fn spawn_background(
    l: &Loaded,
    image: Option<&Path>,
    started: Clocks,
) -> Result<std::process::Child> {
    let base = state::base_dir();
    let dir = Dir::new(&base, &l.spec.name);
    if state::is_locked(&dir) {
        return Err(Error::busy(format!(
            "appliance '{}' is already running; stop it first with `host-launch stop {}`",
            l.spec.name, l.spec.name
        )));
    }
    std::fs::create_dir_all(&dir.path).io_context(|| format!("creating {}", dir.path.display()))?;
    let log = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(dir.launcher_log())
    }
    .io_context(|| format!("creating {}", dir.launcher_log().display()))?;
    let log2 = log
        .try_clone()
        .io_context(|| "duplicating a descriptor".to_string())?;
    let exe = std::env::current_exe().io_context(|| "finding this program".to_string())?;
    let mut cmd = Command::new(exe);
    // The launcher leaves this session itself (`--new-session`): with no code to run between
    // fork and exec, std starts it by posix_spawn (vfork semantics: no copy of this process's
    // page tables), not fork.
    cmd.arg("run").arg("--new-session").arg(&l.spec_path);
    if let Some(i) = image {
        cmd.arg("--image").arg(i);
    }
    cmd.env(timeline::START_ENV, started.to_env())
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log2));
    cmd.spawn()
        .io_context(|| "starting the background launcher".to_string())
}

/// What `start` and `host-launch SPEC` take for a spec file: an existing path, or a name
/// ending in `.json` (whose "cannot read" then names the file).
pub fn is_spec_path(word: &str) -> bool {
    Path::new(word).exists() || word.ends_with(".json")
}

/// The spec an appliance this host knows last ran (recorded in its state).
pub fn last_spec(name: &str) -> Result<std::path::PathBuf> {
    let e = known(name)?;
    match e.state {
        Some(st) => Ok(st.spec.into()),
        None => Err(Error::not_found(format!(
            "'{name}' has no recorded spec (no {}); start it from its spec file: \
             `host-launch start SPEC`",
            e.dir.state().display()
        ))),
    }
}

/// The contract's default stop timeout, for a state written before it was recorded.
const UNRECORDED_STOP_TIMEOUT_MS: u64 = 10_000;

/// How long `stop` waits by default: the service's stop timeout, then the launcher's own
/// margin and halt grace, and the slack systemd's unit also allows.
pub fn default_stop_wait(st: Option<&State>) -> Duration {
    let service = st
        .and_then(|s| s.stop_timeout_ms)
        .unwrap_or(UNRECORDED_STOP_TIMEOUT_MS);
    Duration::from_millis(service)
        + run::STOP_MARGIN
        + run::HALT_GRACE
        + Duration::from_secs(crate::systemd::dropin::STOP_SLACK_S)
}

/// The appliance's state directory, which must exist.
pub fn known(name: &str) -> Result<state::Entry> {
    appliance::spec::check_name(name).map_err(|e| Error::invalid(e.to_string()))?;
    let base = state::base_dir();
    let e = state::entry(&base, name);
    if !e.dir.path.is_dir() {
        return Err(Error::not_found(format!(
            "no appliance '{name}' (nothing in {}); `host-launch list` shows the known ones",
            base.display()
        )));
    }
    Ok(e)
}

/// Cleans what a dead launcher left, holding the appliance's lock meanwhile (so a launch
/// that starts now is not disturbed); `None` when there was nothing to clean.
pub fn clean_if_stale(e: &state::Entry) -> Option<Vec<String>> {
    let st = e.state.as_ref().filter(|s| s.phase != Phase::Exited)?;
    if e.running {
        return None;
    }
    let _lock = state::try_lock(&e.dir).ok().flatten()?;
    Some(run::clean_stale(&e.dir, st))
}

/// How often `start` and `stop` look again while they wait for a launcher: each look is a
/// system call or two (a `stat`, a lock probe), and the interval adds up to itself to a start
/// or an upgrade's downtime (10 ms did, 5 on average).
pub const WAIT_POLL: Duration = Duration::from_millis(1);

/// How a stop request ended.
#[derive(Debug)]
pub enum Stopped {
    /// It was not running; what was cleaned up of a dead launcher, if anything.
    NotRunning(Vec<String>),
    /// It stopped; its outcome.
    Stopped(String),
}

/// Stops a running appliance through its launcher (which sends ctrl-alt-del to the guest
/// and halts it after the stop timeout), waiting up to `timeout`.
pub fn stop(name: &str, timeout: Duration) -> Result<Stopped> {
    let e = known(name)?;
    if !e.running {
        let notes = match &e.state {
            Some(st) if st.phase != Phase::Exited => {
                let mut n = vec!["its launcher had died; cleaned up".to_string()];
                n.extend(run::clean_stale(&e.dir, st));
                n
            }
            Some(st) => vec![format!(
                "last run: {}",
                st.outcome.as_deref().unwrap_or("unknown")
            )],
            None => Vec::new(),
        };
        return Ok(Stopped::NotRunning(notes));
    }
    let Some(st) = e.state.clone() else {
        return Err(Error::host(format!(
            "'{name}' is locked by a launcher but has no state file; wait for it to start"
        )));
    };
    // SAFETY: kill(2) on the launcher pid recorded by the launcher that holds the lock.
    unsafe {
        libc::kill(st.launcher_pid as libc::pid_t, libc::SIGTERM);
    }
    let limit = Instant::now() + timeout;
    while state::is_locked(&e.dir) {
        if Instant::now() >= limit {
            // Last resort: halt the VM directly.
            if let (Some(pid), Some(uid)) = (st.uml_pid, st.uid) {
                let netns = st
                    .tap
                    .as_ref()
                    .and_then(|t| t.netns.as_ref())
                    .map(|ns| Path::new("/run/netns").join(ns));
                let target = vmm::mconsole::Target::jailed(pid, &st.umid, netns, uid);
                let _ = vmm::mconsole::send(&target, "halt", Duration::from_secs(2));
            }
            return Err(Error::host(format!(
                "'{name}' did not stop within {} s; sent halt to the VM; check `host-launch \
                 status {name}`",
                timeout.as_secs()
            )));
        }
        // Short: an upgrade's downtime includes this wait.
        std::thread::sleep(WAIT_POLL);
    }
    let after = State::load(&e.dir);
    Ok(Stopped::Stopped(
        after
            .and_then(|s| s.outcome)
            .unwrap_or_else(|| "ended".into()),
    ))
}

/// A state file's text; empty when there is none yet.
pub fn read(p: &Path) -> Result<String> {
    match std::fs::read(p) {
        Ok(b) => Ok(String::from_utf8_lossy(&b).into_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(Error::host(format!("reading {}: {e}", p.display()))),
    }
}
