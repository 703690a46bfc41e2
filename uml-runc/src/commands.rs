//! runc's commands as podman and conmon call them: `create` prepares everything (root,
//! contract, TAP) and leaves the monitor ([`crate::monitor`]) waiting; `start` releases it;
//! `state` prints the OCI state; `kill` forwards a stop signal (graceful) or SIGKILL (the VM
//! dies with the monitor); `delete` removes what the container left on the host.

use crate::bundle::{Bundle, Network};
use crate::error::{io, Error, Result};
use crate::service::{self, Inputs, MountUse};
use crate::state::{self, Dir, Net, State, Status};
use std::collections::BTreeMap;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The TAP device's name inside the container's own network namespace (one per namespace).
pub const TAP: &str = "uml0";

#[derive(Debug)]
pub struct CreateArgs<'a> {
    pub root: &'a Path,
    pub id: &'a str,
    pub bundle: &'a Path,
    pub pid_file: Option<&'a Path>,
    pub console_socket: Option<&'a Path>,
}

/// What create made on the host, removed again if create fails.
#[derive(Default)]
struct Undo {
    dir: Option<PathBuf>,
    net: Option<Net>,
    /// Data disk image files this create made in directory volumes.
    created: Vec<PathBuf>,
}

impl Drop for Undo {
    fn drop(&mut self) {
        if let Some(n) = self.net.take() {
            crate::net::disconnect(&n.netns, &n.tap, &n.link);
        }
        if let Some(d) = self.dir.take() {
            let _ = std::fs::remove_dir_all(d);
        }
        crate::volume::remove_created(&self.created);
    }
}

/// `create`: returns once the monitor waits for `start` and its pid is in `--pid-file`.
pub fn create(a: &CreateArgs, notes: &mut Vec<String>) -> Result<()> {
    let bundle = Bundle::open(a.bundle)?;
    let hooks = bundle.config.hooks.clone().unwrap_or_default();
    crate::hooks::check(&hooks)?;
    let rootfs = bundle.rootfs()?;
    // Before anything is made on the host: a terminal that cannot be handed over fails here.
    let terminal = crate::terminal::hand_over(&bundle.config, a.console_socket)?;
    let dir = make_dir(a)?;
    let mut undo = Undo {
        dir: Some(dir.path.clone()),
        net: None,
        created: Vec::new(),
    };
    let sandbox = is_sandbox(&bundle.config.annotations);
    let mut prepared = if sandbox {
        None
    } else {
        Some(prepare(a.id, &bundle, &dir, &mut undo)?)
    };
    if let Some(p) = &prepared {
        notes.extend(p.notes.iter().cloned());
    }
    // A sandbox's placeholder holds the pod's network namespace for the pod's containers.
    let held = if sandbox {
        Some(crate::sandbox::open(&bundle.network())?)
    } else {
        None
    };
    make_fifo(&dir.fifo())?;
    let (uid, net) = prepared
        .as_ref()
        .map(|p| (p.uid, p.net.clone()))
        .unwrap_or((0, None));
    // The monitor inherits the volumes' locks and claims and keeps them for the VM's life.
    let disk_holds: Vec<std::fs::File> = prepared
        .as_mut()
        .map(|p| std::mem::take(&mut p.held))
        .unwrap_or_default();
    let monitor = prepared.map(|p| crate::monitor::Vm {
        dir: dir.clone(),
        machine: p.machine,
        jail: p.jail,
        net: p.net,
        stop_timeout: p.stop_timeout,
    });
    let pid = fork_monitor(monitor.as_ref(), held.as_ref(), terminal, &dir)?;
    let pid_start = state::start_time(pid).unwrap_or(0);
    let s = State {
        id: a.id.to_string(),
        bundle: bundle.dir.clone(),
        pid,
        pid_start,
        created: humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string(),
        annotations: bundle.config.annotations.clone(),
        uid,
        net,
        rootfs: Some(rootfs),
        poststart: hooks.poststart.clone(),
        poststop: hooks.poststop.clone(),
    };
    publish(a, &dir, &s, &hooks, notes)?;
    place_in_cgroup(&bundle, &dir, pid, a.id, notes);
    // From here the container exists: delete removes it; its data disks stay.
    undo.dir = None;
    undo.net = None;
    undo.created.clear();
    drop(disk_holds);
    Ok(())
}

/// Saves the state, writes `--pid-file` and runs the create hooks; on failure kills the
/// monitor (the spec: a failed create hook stops the container and runs the poststop hooks).
fn publish(
    a: &CreateArgs,
    dir: &Dir,
    s: &State,
    hooks: &crate::bundle::Hooks,
    notes: &mut Vec<String>,
) -> Result<()> {
    let saved =
        dir.save(s)
            .and_then(|()| match a.pid_file {
                Some(p) => std::fs::write(p, s.pid.to_string())
                    .map_err(io(format!("writing {}", p.display()))),
                None => Ok(()),
            })
            .and_then(|()| {
                // The monitor exists and waits for start: the state the spec gives these hooks.
                let json = state_text(dir, s)?;
                crate::hooks::run("prestart", &hooks.prestart, &json)?;
                crate::hooks::run("createRuntime", &hooks.create_runtime, &json)
            });
    let Err(e) = saved else {
        return Ok(());
    };
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(s.pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    if let Ok(json) = state_text(dir, s) {
        notes.extend(crate::hooks::run_all("poststop", &hooks.poststop, &json));
    }
    Err(e)
}

/// Before start, so the VM (the monitor's child) is counted in the bundle's cgroup from its
/// first moment; a cgroup that cannot be used only costs the figures.
fn place_in_cgroup(bundle: &Bundle, dir: &Dir, pid: u32, id: &str, notes: &mut Vec<String>) {
    let Some(path) = bundle
        .config
        .linux
        .as_ref()
        .and_then(|l| l.cgroups_path.as_deref())
    else {
        return;
    };
    if let Err(e) = crate::cgroup::place(&dir.path, path, pid) {
        notes.push(format!(
            "container {id}: {e}; its figures (stats) are not counted"
        ));
    }
}

/// The container's state directory, new (under the runtime's root, made if need be).
fn make_dir(a: &CreateArgs) -> Result<Dir> {
    let dir = Dir::new(a.root, a.id)?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(a.root)
        .map_err(io(format!("creating {}", a.root.display())))?;
    if let Err(e) = std::fs::DirBuilder::new().mode(0o700).create(&dir.path) {
        return Err(if e.kind() == std::io::ErrorKind::AlreadyExists {
            Error::new(format!("container {} exists already", a.id))
        } else {
            Error::new(format!("creating {}: {e}", dir.path.display()))
        });
    }
    Ok(dir)
}

/// Forks the container's process, the monitor (a sandbox's placeholder without a VM), in a
/// session of its own with the terminal; its pid.
fn fork_monitor(
    monitor: Option<&crate::monitor::Vm>,
    held: Option<&crate::sandbox::Held>,
    terminal: Option<crate::terminal::Terminal>,
    dir: &Dir,
) -> Result<u32> {
    // SAFETY: create has started no thread (its commands are waited for on this one), so
    // the child may run any code.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {
            let _ = nix::unistd::setsid();
            if let Some(t) = &terminal {
                crate::terminal::attach(t);
            }
            let code = match monitor {
                Some(vm) => crate::monitor::run(vm),
                None => match held.map(crate::sandbox::enter) {
                    Some(Err(e)) => {
                        crate::monitor::say(&e.0);
                        1
                    }
                    _ => crate::monitor::placeholder(dir),
                },
            };
            // The forked monitor ends here with the container's status for conmon: it must
            // not return into `create`, whose caller is the parent's.
            #[allow(clippy::exit)]
            std::process::exit(code);
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => {
            // Only the monitor writes to the terminal.
            drop(terminal);
            u32::try_from(child.as_raw())
                .map_err(|_| Error::new(format!("fork returned the pid {child}")))
        }
        Err(e) => Err(Error::new(format!("starting the monitor (fork): {e}"))),
    }
}

/// Whether the bundle is a CRI pod's sandbox ("pause") container (containerd's or CRI-O's
/// annotation): it only holds the pod's namespaces, so it gets no VM, which would take the
/// pod's veth from the appliance.
pub fn is_sandbox(annotations: &BTreeMap<String, String>) -> bool {
    [
        "io.kubernetes.cri.container-type",
        "io.kubernetes.cri-o.ContainerType",
    ]
    .iter()
    .any(|k| annotations.get(*k).is_some_and(|v| v == "sandbox"))
}

/// Everything the VM needs, made in the container's directory.
struct Prepared {
    machine: vmm::cmdline::Machine,
    jail: vmm::jail::Jail,
    net: Option<Net>,
    uid: u32,
    stop_timeout: Duration,
    notes: Vec<String>,
    /// The data disks' locks and claims ([`crate::volume::Attached::held`]).
    held: Vec<std::fs::File>,
}

/// The config device (the contract, the VM's uid's to read) beside the root image, both
/// reachable by the VM's uid: their paths.
fn write_images(
    dir: &Dir,
    translated: &service::Translated,
    uid: u32,
) -> Result<(std::path::PathBuf, std::path::PathBuf)> {
    let mut img = contract::blockdev::encode_checked(&translated.merged.contract)
        .map_err(|e| Error::new(format!("encoding the contract: {e}")))?;
    if img.len() < contract::blockdev::MIN_DEVICE_BYTES {
        img.resize(contract::blockdev::MIN_DEVICE_BYTES, 0);
    }
    let config = dir.config_image();
    std::fs::write(&config, &img).map_err(io(format!("writing {}", config.display())))?;
    vmm::jail::hand_over(&config, uid, uid, 0o400).map_err(|e| Error::new(e.to_string()))?;
    let root_img = dir.root_image();
    std::fs::set_permissions(&root_img, std::fs::Permissions::from_mode(0o444))
        .map_err(io(format!("chmod {}", root_img.display())))?;
    // The jail's root is made on this directory; the VM's uid must reach the images in it.
    std::fs::set_permissions(&dir.path, std::fs::Permissions::from_mode(0o711))
        .map_err(io(format!("chmod {}", dir.path.display())))?;
    Ok((root_img, config))
}

/// The container's network namespace joined to the VM's TAP device, with its anti-spoofing
/// rules; undone by [`Undo`] if a later step fails.
fn connect(
    ns: &Path,
    found: &crate::net::Found,
    translated: &service::Translated,
    uid: u32,
    undo: &mut Undo,
) -> Result<Net> {
    let policy = translated
        .policy
        .as_ref()
        .ok_or_else(|| Error::new("the container's network gave the guest no MAC address"))?;
    crate::net::connect(ns, TAP, &found.link, uid, found.guest.mtu, policy)?;
    let n = Net {
        netns: ns.to_path_buf(),
        tap: TAP.to_string(),
        link: found.link.clone(),
    };
    undo.net = Some(n.clone());
    Ok(n)
}

/// The bind-mounted files' bytes (they become contract files), by mount index.
fn mounted_files(
    c: &crate::bundle::Config,
    data_paths: &[service::DataPath],
) -> Result<BTreeMap<usize, Vec<u8>>> {
    let mut files = BTreeMap::new();
    for (i, m) in c.mounts.iter().enumerate() {
        if service::mount_use(i, m, data_paths, is_file)? == MountUse::File {
            let src = Path::new(m.source.as_deref().unwrap_or_default());
            let bytes = crate::bundle::read_bounded(src, service::MAX_FILE_BYTES as u64)
                .map_err(|e| e.context(format!("config.json: mounts[{i}]")))?;
            files.insert(i, bytes);
        }
    }
    Ok(files)
}

/// Whether a mount's source is a regular file (`None`: it cannot be read).
fn is_file(p: &str) -> Option<bool> {
    std::fs::metadata(p).ok().map(|m| m.is_file())
}

/// The container's volumes as data disks, made on the host for `uid`; what it creates is
/// undone by [`Undo`] if a later step fails.
fn volumes(
    c: &crate::bundle::Config,
    data_paths: &[service::DataPath],
    uid: u32,
    undo: &mut Undo,
) -> Result<crate::volume::Attached> {
    let planned = crate::volume::plan(c, data_paths, is_file)?;
    let new_mib = crate::volume::new_size_mib(c)?;
    let attached = crate::volume::attach(&planned, new_mib, uid)?;
    undo.created.extend(attached.created.iter().cloned());
    Ok(attached)
}

/// The process's first argument as the guest will find it (resolved in the rootfs along the
/// process's PATH); empty when the image's own command runs.
fn first_argument(c: &crate::bundle::Config, rootfs: &Path) -> Result<String> {
    let process = c
        .process
        .as_ref()
        .ok_or_else(|| Error::new("config.json: process: missing; nothing to run"))?;
    let path_env = process.env.iter().find_map(|e| e.strip_prefix("PATH="));
    Ok(match process.args.first() {
        Some(a) => crate::root::resolve_argv0(rootfs, a, path_env)?,
        None => String::new(),
    })
}

/// The network namespace whose TAP the VM uses; `None` for loopback only.
fn guest_netns(bundle: &Bundle) -> Result<Option<PathBuf>> {
    Ok(match bundle.network() {
        Network::Join(ns) => Some(ns),
        // No TAP: the guest has its loopback only, and the VM (jailed, without a network
        // device) reaches nothing of the host's.
        Network::New => None,
        Network::Host => {
            return Err(Error::new(
                "config.json: linux.namespaces: the container shares the host's network (podman \
                 --network host); a VM has its own kernel and needs a network of its own: run \
                 it on a network (podman --network NAME), or with a new network namespace \
                 (podman --network none) for loopback only",
            ))
        }
    })
}

fn prepare(id: &str, bundle: &Bundle, dir: &Dir, undo: &mut Undo) -> Result<Prepared> {
    let c = &bundle.config;
    let rootfs = bundle.rootfs()?;
    let guest_init = crate::root::guest_init()?;
    let kernel = vmm::kernel::default_kernel();
    let argv0 = first_argument(c, &rootfs)?;
    let data_paths = service::data_paths(c)?;
    let files = mounted_files(c, &data_paths)?;
    let uid = pick_uid(id, dir)?;
    let volumes = volumes(c, &data_paths, uid, undo)?;
    let netns = guest_netns(bundle)?;
    let found = match &netns {
        Some(ns) => Some(crate::net::inspect(ns)?),
        None => None,
    };
    let inputs = Inputs {
        net: found.as_ref().map(|f| (TAP.to_string(), f.guest.clone())),
        files,
        argv0,
        disks: volumes.disks.clone(),
    };
    let translated = service::translate(id, c, &inputs)?;
    let extras = crate::root::Extras {
        guest_init: &guest_init,
        symlinks: &translated.symlinks,
        dirs: &translated.dirs,
    };
    crate::root::build(&rootfs, &extras, &dir.root_image())?;
    let (root_img, config) = write_images(dir, &translated, uid)?;
    let net = match (&netns, &found) {
        (Some(ns), Some(f)) => Some(connect(ns, f, &translated, uid, undo)?),
        _ => None,
    };
    let machine = vmm::cmdline::Machine {
        kernel,
        root: root_img.clone(),
        disks: machine_disks(&translated.merged, &config),
        config_ubd: Some(translated.merged.config_ubd),
        tap: net.as_ref().map(|n| n.tap.clone()),
        memory_mib: translated.memory_mib,
        umid: service::short_id(id),
        kernel_log: false,
        needs_raid6: false,
        // The last init= wins: guest-init at the runtime's path, the image left as it is.
        extra: vec![format!("init={}", crate::root::INIT_PATH)],
    };
    let jail_dir = dir.jail();
    std::fs::create_dir(&jail_dir).map_err(io(format!("creating {}", jail_dir.display())))?;
    let mut jail =
        vmm::launch::jail_for(&machine, jail_dir, uid).map_err(|e| Error::new(e.to_string()))?;
    jail.netns = netns;
    jail.taps = net.iter().map(|n| n.tap.clone()).collect();
    Ok(Prepared {
        machine,
        jail,
        net,
        uid,
        stop_timeout: Duration::from_millis(translated.merged.contract.service.stop_timeout_ms),
        notes: translated.notes,
        held: volumes.held,
    })
}

/// The VM's disks: each data disk where the merge put it, then the config device.
fn machine_disks(merged: &appliance::merge::Merged, config: &Path) -> Vec<vmm::cmdline::Disk> {
    merged
        .disks
        .iter()
        .map(|d| vmm::cmdline::Disk {
            ubd: d.ubd,
            path: PathBuf::from(&d.file),
            read_only: false,
        })
        .chain(std::iter::once(vmm::cmdline::Disk {
            ubd: merged.config_ubd,
            path: config.to_path_buf(),
            read_only: true,
        }))
        .collect()
}

/// The VM's own uid: the container id's slot in vmm's range, skipping any id a host account,
/// another container of this runtime or any running process (another VM) has.
fn pick_uid(id: &str, dir: &Dir) -> Result<u32> {
    let mut used: Vec<u32> = Vec::new();
    if let Some(root) = dir.path.parent() {
        for e in std::fs::read_dir(root).into_iter().flatten().flatten() {
            let d = Dir { path: e.path() };
            if let Ok(s) = d.load() {
                used.push(s.uid);
            }
        }
    }
    used.extend(process_uids());
    vmm::launch::choose_uid(id, |u| used.contains(&u)).map_err(|e| match e {
        vmm::launch::UidError::Range(m) => Error::new(m.to_string()),
        vmm::launch::UidError::Full { source, .. } => {
            Error::new(format!("no free VM uid left in {source}; widen the range"))
        }
    })
}

/// The real uids of the running processes.
fn process_uids() -> Vec<u32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| std::fs::metadata(e.path()).ok().map(|m| m.uid()))
        .collect()
}

fn make_fifo(path: &Path) -> Result<()> {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .map_err(|e| Error::new(format!("creating {}: {e}", path.display())))
}

/// `start`: lets the monitor boot the VM.
pub fn start(root: &Path, id: &str, notes: &mut Vec<String>) -> Result<()> {
    let dir = Dir::new(root, id)?;
    let s = dir.load()?;
    match state::status(&dir, &s) {
        Status::Created => {}
        other => {
            return Err(Error::new(format!(
                "container {id} is {}, not created; only a created container can be started",
                other.as_str()
            )))
        }
    }
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    // Non-blocking open: the monitor holds the other end open for writing (or is gone).
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(dir.fifo())
        .map_err(io(format!("opening {}", dir.fifo().display())))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut byte = [0u8; 1];
    loop {
        match f.read(&mut byte) {
            Ok(1) => break,
            Ok(_) | Err(_) if Instant::now() < deadline && state::alive(&s) => {
                std::thread::sleep(Duration::from_millis(5));
            }
            _ => {
                return Err(Error::new(format!(
                    "container {id}: its monitor did not answer start; see its log"
                )))
            }
        }
    }
    std::fs::remove_file(dir.fifo()).map_err(io(format!("removing {}", dir.fifo().display())))?;
    // The spec: a failed poststart hook is a warning; the others and the container run on.
    let json = state_text(&dir, &s)?;
    for w in crate::hooks::run_all("poststart", &s.poststart, &json) {
        notes.push(format!("container {id}: {w}"));
    }
    Ok(())
}

/// The OCI state as a hook reads it on stdin.
fn state_text(dir: &Dir, s: &State) -> Result<String> {
    serde_json::to_string(&state::oci_state(dir, s))
        .map_err(|e| Error::new(format!("encoding the state: {e}")))
}

/// `state`: the OCI state JSON.
pub fn state_json(root: &Path, id: &str) -> Result<String> {
    let dir = Dir::new(root, id)?;
    let s = dir.load()?;
    let mut v = state::oci_state(&dir, &s);
    if v["status"] == "running" && crate::freeze::frozen(&dir.path) {
        v["status"] = "paused".into();
    }
    serde_json::to_string_pretty(&v).map_err(|e| Error::new(format!("encoding the state: {e}")))
}

/// A signal by number or name (`15`, `TERM`, `SIGTERM`).
pub fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
    }
    let name = s.to_ascii_uppercase();
    let name = if name.starts_with("SIG") {
        name
    } else {
        format!("SIG{name}")
    };
    contract::names::signal_number(&name)
        .or(match name.as_str() {
            "SIGKILL" => Some(libc::SIGKILL),
            "SIGSTOP" => Some(libc::SIGSTOP),
            _ => None,
        })
        .ok_or_else(|| Error::new(format!("{s:?} is not a signal (e.g. SIGTERM or 15)")))
}

/// `kill`: SIGKILL kills the VM; the stop signals stop the guest gracefully; others are
/// refused (a VM's processes are not the host's to signal).
pub fn kill(root: &Path, id: &str, signal: &str) -> Result<()> {
    let dir = Dir::new(root, id)?;
    let s = dir.load()?;
    let sig = parse_signal(signal)?;
    if !state::alive(&s) {
        // runc's words: containerd's shim and podman read "container not running" as "it
        // has exited already" (a stop racing the container's own end), not as a failure.
        return Err(Error::new(format!("container not running: {id}")));
    }
    let graceful = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGQUIT];
    if sig != libc::SIGKILL && !graceful.contains(&sig) {
        return Err(Error::new(format!(
            "signal {signal}: uml-runc passes only SIGTERM, SIGINT, SIGHUP, SIGQUIT (a graceful \
             stop of the guest) and SIGKILL (the VM is killed)"
        )));
    }
    // A paused VM is thawed first: frozen, it could neither power off nor die.
    crate::freeze::thaw(&dir.path)?;
    // SAFETY: kill(2) on the monitor, checked alive by pid and start time just above.
    let r = unsafe { libc::kill(s.pid as libc::pid_t, sig) };
    if r != 0 {
        return Err(Error::new(format!(
            "signalling container {id} (pid {}): {}",
            s.pid,
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}

/// `delete`: removes the container; a running one only with `force` (killed first).
pub fn delete(root: &Path, id: &str, force: bool, notes: &mut Vec<String>) -> Result<()> {
    let dir = Dir::new(root, id)?;
    let s = match dir.load() {
        Ok(s) => s,
        Err(e) if force && !dir.path.exists() => {
            let _ = e;
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let st = state::status(&dir, &s);
    if st == Status::Running && !force {
        return Err(Error::new(format!(
            "container {id} is running; stop it first (kill) or delete --force"
        )));
    }
    if state::alive(&s) {
        let _ = crate::freeze::thaw(&dir.path);
        // SAFETY: kill(2) on the monitor, checked alive by pid and start time.
        unsafe { libc::kill(s.pid as libc::pid_t, libc::SIGKILL) };
        let until = Instant::now() + Duration::from_secs(10);
        while state::alive(&s) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    if let Some(n) = &s.net {
        crate::net::disconnect(&n.netns, &n.tap, &n.link);
    }
    for w in crate::cgroup::remove(&crate::cgroup::recorded(&dir.path)) {
        notes.push(format!("container {id}: {w}"));
    }
    let json = state_text(&dir, &s)?;
    std::fs::remove_dir_all(&dir.path).map_err(io(format!("removing {}", dir.path.display())))?;
    // The spec: after the container is deleted, before delete returns; a failure is a
    // warning, and the other hooks still run.
    for w in crate::hooks::run_all("poststop", &s.poststop, &json) {
        notes.push(format!("container {id}: {w}"));
    }
    Ok(())
}

/// `features` (runtime spec's features document), what podman may ask.
pub fn features() -> serde_json::Value {
    serde_json::json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.1.0",
        "hooks": ["prestart", "createRuntime", "poststart", "poststop"],
        "mountOptions": ["bind", "rbind", "ro", "rw", "nosuid", "nodev", "noexec", "size", "mode"],
        "linux": {
            "namespaces": ["network", "mount", "pid", "ipc", "uts"],
            "capabilities": contract::names::CAPABILITIES,
            "cgroup": {"v1": true, "v2": true, "systemd": false, "systemdUser": false},
            "seccomp": {"enabled": false},
            "apparmor": {"enabled": false},
            "selinux": {"enabled": false}
        },
        "annotations": {
            "io.github.uml-runc.vm": "User-Mode Linux",
            service::ANNOTATION_MEMORY: "the VM's memory in MiB",
            crate::volume::ANNOTATION_DATA_SIZE: "the size in MiB of a new data disk image in a directory volume",
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_by_name_and_number() {
        assert_eq!(parse_signal("15").unwrap(), libc::SIGTERM);
        assert_eq!(parse_signal("TERM").unwrap(), libc::SIGTERM);
        assert_eq!(parse_signal("SIGKILL").unwrap(), libc::SIGKILL);
        assert_eq!(parse_signal("KILL").unwrap(), libc::SIGKILL);
        assert!(parse_signal("BOGUS")
            .unwrap_err()
            .0
            .contains("not a signal"));
    }
}
