//! Booting a User-Mode Linux VM and capturing its console.

use crate::capture::Capture;
use crate::error::{Context, Error, Result};
use crate::events::{Event, EventLog};
use crate::netns::NetNs;
pub use crate::outcome::VmOutcome;
use crate::tempdir::TempDir;
use contract::{blockdev, cmdline, Contract};

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use vmm::channel::Dropped;
use vmm::follow::{Ended, Escalation, Heard, Kill, Observer, Rules};
use vmm::launch::UidError;
use vmm::requests::Request;

/// The UML kernel used unless `UML_KERNEL` names another.
pub const DEFAULT_KERNEL: &str = vmm::kernel::DEBIAN_KERNEL;

/// The kernel to boot: `$UML_KERNEL` or [`DEFAULT_KERNEL`].
pub fn kernel_path() -> PathBuf {
    vmm::kernel::default_kernel()
}

pub use contract::uml::ubd_device as guest_disk;

/// Test VMs take their uids from the same range as host-launch's, each its own.
fn test_vm_ids() -> Result<u32> {
    static TAKEN: Mutex<Vec<u32>> = Mutex::new(Vec::new());
    let mut taken = TAKEN.lock().unwrap_or_else(|e| e.into_inner());
    let name = format!(
        "e2e-{}-{}",
        std::process::id(),
        VM_COUNTER.load(Ordering::Relaxed)
    );
    let id = vmm::launch::choose_uid(&name, |id| taken.contains(&id)).map_err(|e| match e {
        UidError::Range(m) => Error::new("the VM id range", m),
        UidError::Full { .. } => Error::new("picking a test VM's uid", "the id range is full"),
    })?;
    taken.push(id);
    Ok(id)
}

/// Smallest config device [`Vm::contract_device`] attaches (16 sectors, what the kernel's
/// partition scan reads).
pub const MIN_CONFIG_DEVICE: usize = 16 * 512;

static VM_COUNTER: AtomicU32 = AtomicU32::new(0);

#[derive(Debug, Clone)]
struct Disk {
    path: PathBuf,
    read_only: bool,
}

/// A VM to boot: a read-only root image, optional extra disks, the contract on the command
/// line and/or on a config device, memory, extra kernel arguments and a timeout.
///
/// Block devices are numbered in this order: the root image (`/dev/ubda`), the extra disks
/// in the order added (`/dev/ubdb`, ...), then the config device, if any.
#[derive(Debug, Clone)]
pub struct Vm {
    kernel: PathBuf,
    root: PathBuf,
    disks: Vec<Disk>,
    cmdline_token: Option<String>,
    config_device: Option<Vec<u8>>,
    memory_mib: u32,
    args: Vec<String>,
    timeout: Duration,
    kernel_log: bool,
    echo: bool,
    /// The network namespace to run in: (name, `/run/netns/NAME`).
    netns: Option<(String, PathBuf)>,
    /// Host TAP devices the guest's `vec` interfaces use.
    taps: Vec<String>,
}

impl Vm {
    /// A VM booting `root_image` read-only, with 64M of memory and a 30 s timeout.
    pub fn new(root_image: impl Into<PathBuf>) -> Vm {
        Vm {
            kernel: kernel_path(),
            root: root_image.into(),
            disks: Vec::new(),
            cmdline_token: None,
            config_device: None,
            memory_mib: 64,
            args: Vec::new(),
            timeout: Duration::from_secs(30),
            kernel_log: false,
            echo: std::env::var_os("E2E_ECHO").is_some_and(|v| v == "1"),
            netns: None,
            taps: Vec::new(),
        }
    }

    /// Boots this kernel instead of `$UML_KERNEL` / [`DEFAULT_KERNEL`].
    pub fn kernel(mut self, path: impl Into<PathBuf>) -> Self {
        self.kernel = path.into();
        self
    }

    /// Attaches a disk image; see [`Vm::disk_name`] for its guest name.
    pub fn disk(mut self, path: impl Into<PathBuf>, read_only: bool) -> Self {
        let path = path.into();
        self.disks.push(Disk { path, read_only });
        self
    }

    /// The guest device of the `n`-th disk added with [`Vm::disk`] (0 → `/dev/ubdb`).
    pub fn disk_name(&self, n: usize) -> String {
        guest_disk(n + 1)
    }

    /// The guest device of the config device (after the extra disks).
    pub fn config_device_name(&self) -> String {
        guest_disk(self.disks.len() + 1)
    }

    /// Puts the contract on the kernel command line (`hostcontract=...`).
    pub fn contract_cmdline(self, c: &Contract) -> Self {
        self.cmdline_token(cmdline::encode(c))
    }

    /// Puts a raw token on the command line in place of an encoded contract, e.g.
    /// `hostcontract=<base64url of invalid JSON>` to test the guest's error handling.
    pub fn cmdline_token(mut self, token: impl Into<String>) -> Self {
        self.cmdline_token = Some(token.into());
        self
    }

    /// Attaches the contract as a read-only config device and names it with
    /// `hostcontract_dev=`.
    ///
    /// The image is padded with zeros to at least [`MIN_CONFIG_DEVICE`] bytes: the kernel's
    /// partition scan reads the first sectors of every disk and logs an error for a shorter
    /// one ("unable to read RDB block").
    pub fn contract_device(self, c: &Contract) -> Self {
        let mut bytes = blockdev::encode(c);
        if bytes.len() < MIN_CONFIG_DEVICE {
            bytes.resize(MIN_CONFIG_DEVICE, 0);
        }
        self.config_device_bytes(bytes)
    }

    /// Attaches these raw bytes as the config device (e.g. a corrupted image).
    pub fn config_device_bytes(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.config_device = Some(bytes.into());
        self
    }

    /// Guest memory in MiB (default 64).
    pub fn memory_mib(mut self, mib: u32) -> Self {
        self.memory_mib = mib;
        self
    }

    /// Appends a kernel command line argument.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// How long the VM may run before it is killed (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Shows the kernel's informational messages on the console (default off: `quiet`,
    /// which still shows warnings, errors and panics).
    pub fn kernel_log(mut self, on: bool) -> Self {
        self.kernel_log = on;
        self
    }

    /// Copies the console to stderr while the VM runs (default: on if `E2E_ECHO=1`).
    pub fn echo(mut self, on: bool) -> Self {
        self.echo = on;
        self
    }

    /// Runs the VM inside this network namespace (UML's host-side sockets and taps live
    /// there); the namespace must outlive the VM.
    pub fn netns(mut self, ns: &NetNs) -> Self {
        self.netns = Some((ns.name().to_string(), ns.path()));
        self
    }

    /// Gives the guest the interface `vec<index>` on the host tap device `tap` (which must
    /// exist in the VM's network namespace, see [`Vm::netns`]).
    pub fn tap(mut self, index: u32, tap: &str) -> Self {
        self.taps.push(tap.to_string());
        self.arg(vmm::cmdline::tap_interface(index, tap))
    }

    /// [`Vm::netns`] plus `vec0` on the namespace's `tap0` (as [`NetNs::with_tap`] makes).
    pub fn network(self, ns: &NetNs) -> Self {
        self.netns(ns).tap(0, "tap0")
    }

    /// The machine for a run under the name `umid` with the config device image at
    /// `config_image`: the same command line host-launch builds (see [`vmm::cmdline`]).
    pub fn machine(&self, umid: &str, config_image: &Path) -> vmm::cmdline::Machine {
        let mut disks: Vec<vmm::cmdline::Disk> = self
            .disks
            .iter()
            .enumerate()
            .map(|(i, d)| vmm::cmdline::Disk {
                ubd: i + 1,
                path: d.path.clone(),
                read_only: d.read_only,
            })
            .collect();
        let config_ubd = self.config_device.as_ref().map(|_| {
            let n = self.disks.len() + 1;
            disks.push(vmm::cmdline::Disk {
                ubd: n,
                path: config_image.to_path_buf(),
                read_only: true,
            });
            n
        });
        let mut extra = self.args.clone();
        extra.extend(self.cmdline_token.iter().cloned());
        vmm::cmdline::Machine {
            kernel: self.kernel.clone(),
            root: self.root.clone(),
            disks,
            config_ubd,
            tap: None,
            memory_mib: self.memory_mib,
            umid: umid.to_string(),
            kernel_log: self.kernel_log,
            // No test disk is btrfs: skip the kernel's RAID-6 benchmark (most of a second).
            needs_raid6: false,
            extra,
        }
    }

    /// The kernel arguments of a run under the name `umid` (see [`Vm::machine`]).
    pub fn command_line(&self, umid: &str, config_image: &Path) -> Result<Vec<String>> {
        vmm::cmdline::command_line(&self.machine(umid, config_image))
            .map_err(|e| Error::new("building the UML command line", e))
    }

    /// Boots the VM, waits until it exits or the timeout kills it, and returns its console.
    ///
    /// A kernel that panics while booting, before guest-init ran, is booted again like
    /// host-launch does (up to `vmm::boot::BOOT_ATTEMPTS` times): Debian's UML kernel
    /// fails about one boot in a few hundred on its own, and nothing of the guest has run then.
    pub fn run(&self) -> Result<VmOutcome> {
        let mut attempt = 1;
        loop {
            let outcome = self.spawn()?.wait(self.timeout)?;
            let init_ran = !outcome.guest_init_lines().is_empty();
            match vmm::boot::retry_reason(attempt, &outcome.console, init_ran) {
                Some(why) => {
                    eprintln!("e2e: the kernel panicked before init ({why}); booting again");
                    attempt += 1;
                }
                _ => return Ok(outcome),
            }
        }
    }

    /// Boots the VM in the background: the returned [`RunningVm`] reads the console and the
    /// status channel while the VM runs, can send mconsole commands, and kills the VM when
    /// dropped. [`Vm::timeout`] does not apply; give [`RunningVm::wait`] its own.
    pub fn spawn(&self) -> Result<RunningVm> {
        if !self.kernel.is_file() {
            return Err(Error::new(
                format!("looking for the UML kernel {}", self.kernel.display()),
                format!("not found; {} (or set UML_KERNEL)", crate::SETUP_HINT),
            ));
        }
        if !self.root.is_file() {
            return Err(Error::new(
                "starting a VM",
                format!("root image {} does not exist", self.root.display()),
            ));
        }
        let dir = TempDir::new("vm")?;
        let umid = format!(
            "e2e{}x{}",
            std::process::id(),
            VM_COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let uid = test_vm_ids()?;
        let jail_dir = dir.join("jail");
        std::fs::create_dir(&jail_dir).context(|| format!("creating {}", jail_dir.display()))?;
        let config_image = dir.join("config.img");
        if let Some(bytes) = &self.config_device {
            std::fs::write(&config_image, bytes)
                .context(|| format!("writing {}", config_image.display()))?;
            vmm::jail::hand_over(&config_image, uid, uid, 0o400)
                .map_err(|e| Error::new("preparing the config device", e))?;
        }
        let machine = self.machine(&umid, &config_image);
        for d in &machine.disks {
            std::fs::metadata(&d.path)
                .context(|| format!("looking at the disk {}", d.path.display()))?;
            if !d.read_only {
                vmm::jail::hand_over(&d.path, uid, uid, 0o600)
                    .map_err(|e| Error::new("preparing a data disk", e))?;
            }
        }
        let mut jail = vmm::launch::jail_for(&machine, jail_dir, uid)
            .map_err(|e| Error::new("finding the kernel's files", e))?;
        jail.netns = self.netns.as_ref().map(|(_, p)| p.clone());
        jail.taps = self.taps.clone();
        let where_ = self
            .netns
            .as_ref()
            .map(|(n, _)| format!("ip netns exec {n} "))
            .unwrap_or_default();
        let start = Instant::now();
        let (vm, console) = vmm::launch::launch(&machine, &jail).map_err(|e| {
            Error::new(
                format!("starting a VM ({where_}{})", self.kernel.display()),
                e,
            )
        })?;
        let shown = format!("{where_}{}", vm.shown);
        let console = Capture::start(Some(console), self.echo);
        let events = EventLog::new();
        let pid = vm.process.pid();
        let mconsole = vm.mconsole.clone();
        let control = vmm::requests::Control::new()
            .map_err(|e| Error::new("making the VM's control pipe", e.to_string()))?;
        let sender = control.sender();
        let follow = follow_in_background(vm, control, events.clone(), self.echo);
        Ok(RunningVm {
            pid,
            follow: Some(follow),
            control: sender,
            start,
            shown,
            console,
            events,
            mconsole,
            uid,
            _dir: dir,
        })
    }
}

/// How long UML may take to exit once the guest reported its power-off (host-launch gives
/// `HALT_GRACE`, 5 s).
const AFTER_POWER_OFF: Duration = Duration::from_secs(5);

/// The longest status line a test keeps (guest-init's are far shorter; a hostile guest's
/// longer ones are dropped, as host-launch drops them).
const MAX_STATUS_LINE: usize = 1 << 20;

/// What the harness adds to vmm's follow loop: every status line recorded in its
/// [`EventLog`] (and shown with `E2E_ECHO=1`).
struct Recorder {
    events: EventLog,
    echo: bool,
}

impl Observer for Recorder {
    fn status_line(&mut self, line: &[u8]) -> Heard {
        if self.echo {
            eprintln!("status: {}", String::from_utf8_lossy(line));
        }
        let mut with_newline = line.to_vec();
        with_newline.push(b'\n');
        self.events.push(&with_newline);
        match Event::parse(&String::from_utf8_lossy(line)) {
            Some(e) if e.name == "power_off" => Heard::PowerOff,
            Some(_) => Heard::Event,
            None => Heard::Junk,
        }
    }
}

/// Follows `vm` on a thread of its own (tests wait for events while it runs) with vmm's
/// loop, until it exits or [`RunningVm::wait`]'s deadline kills it.
fn follow_in_background(
    mut vm: vmm::launch::Vm,
    mut control: vmm::requests::Control,
    events: EventLog,
    echo: bool,
) -> JoinHandle<std::io::Result<Ended>> {
    std::thread::spawn(move || {
        let rules = Rules {
            // Tests never ask for a stop through the loop (they send `cad` themselves).
            stop_timeout: Duration::from_secs(3600),
            escalation: Escalation::Kill,
            again_escalates: false,
            power_off_grace: Some(AFTER_POWER_OFF),
            panic_watch: false,
            max_line: MAX_STATUS_LINE,
            dropped: Arc::new(Dropped::default()),
        };
        let mut recorder = Recorder {
            events: events.clone(),
            echo,
        };
        let ended = vmm::follow::follow(&mut vm, &rules, Some(&mut control), &mut recorder);
        events.close();
        ended
    })
}

/// A VM running in the background (see [`Vm::spawn`]); killed, with every process it
/// started, when dropped.
#[derive(Debug)]
pub struct RunningVm {
    pid: u32,
    /// vmm's follow loop, on its own thread; it owns the process.
    follow: Option<JoinHandle<std::io::Result<Ended>>>,
    control: vmm::requests::Sender,
    start: Instant,
    shown: String,
    console: Capture,
    events: EventLog,
    mconsole: vmm::mconsole::Target,
    uid: u32,
    _dir: TempDir,
}

impl RunningVm {
    /// The host pid of the UML kernel process.
    pub fn pid(&self) -> Option<u32> {
        Some(self.pid)
    }

    /// The host uid the VM's UML runs as (its own, see [`vmm::ids`]).
    pub fn uid(&self) -> u32 {
        self.uid
    }

    /// The host file of the config device (present when the VM has one).
    pub fn config_device_path(&self) -> PathBuf {
        self._dir.join("config.img")
    }

    /// The status events so far.
    pub fn events(&self) -> Vec<Event> {
        self.events.events()
    }

    /// The live status channel (to wait with custom conditions).
    pub fn event_log(&self) -> &EventLog {
        &self.events
    }

    /// The first status event called `name`, waiting for it up to `timeout`; an error (with
    /// the events and the console so far) if the VM exits first or the time runs out.
    pub fn wait_for_event(&self, name: &str, timeout: Duration) -> Result<Event> {
        self.events
            .wait_for(name, timeout)
            .map_err(|e| self.with_console(e))
    }

    /// The first `count` status events called `name`, waiting up to `timeout`.
    pub fn wait_for_events(
        &self,
        name: &str,
        count: usize,
        timeout: Duration,
    ) -> Result<Vec<Event>> {
        self.events
            .wait_for_n(name, count, timeout)
            .map_err(|e| self.with_console(e))
    }

    /// The console so far.
    pub fn console(&self) -> String {
        self.console.snapshot()
    }

    /// Waits until the console shows `needle` (checked every 20 ms).
    pub fn wait_for_console(&self, needle: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.console().contains(needle) {
                return Ok(());
            }
            if Instant::now() >= deadline || self.console.is_done() {
                return Err(self.with_console(Error::new(
                    format!("waiting for {needle:?} on the console"),
                    format!("not there after {:?}", self.start.elapsed()),
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn with_console(&self, mut e: Error) -> Error {
        e.detail
            .push_str(&format!("\n--- console ---\n{}", self.console()));
        e
    }

    /// Sends a management console command (e.g. `cad`, `version`) with the launcher's
    /// mconsole client, and returns the reply's text.
    pub fn mconsole(&self, command: &str) -> Result<String> {
        let what = format!("mconsole {command:?} to {}", self.mconsole.socket.display());
        let reply = vmm::mconsole::send(&self.mconsole, command, Duration::from_secs(10))
            .map_err(|e| Error::new(&what, e))?;
        if reply.err {
            return Err(Error::new(
                what,
                format!("UML answered an error: {}", reply.text),
            ));
        }
        Ok(reply.text)
    }

    /// Whether the VM is still running.
    pub fn is_running(&mut self) -> bool {
        self.follow.as_ref().is_some_and(|h| !h.is_finished())
    }

    /// Waits until the VM exits, killing it after `timeout`, and returns how it ended.
    pub fn wait(mut self, timeout: Duration) -> Result<VmOutcome> {
        let Some(follow) = self.follow.take() else {
            return Err(Error::new("waiting for a VM", "it was already waited for"));
        };
        let shown = self.shown.clone();
        self.control.send(Request::KillAt(Instant::now() + timeout));
        let ended = follow
            .join()
            .map_err(|_| Error::new(format!("waiting for {shown}"), "its follow thread panicked"))?
            .context(|| format!("waiting for {shown}"))?;
        let duration = self.start.elapsed();
        Ok(VmOutcome {
            console: self.console.finish(),
            status: ended.status,
            timed_out: ended.killed == Some(Kill::Deadline),
            killed_after_power_off: ended.killed == Some(Kill::Grace),
            duration,
            command_line: shown,
            host_stderr: String::new(),
            events: self.events.events(),
            status_text: self.events.raw(),
        })
    }
}

/// Dropping the VM's process handle kills it: UML is PID 1 of its own PID namespace, so every
/// process it started dies with it.
impl Drop for RunningVm {
    fn drop(&mut self) {
        if let Some(follow) = self.follow.take() {
            self.control.send(Request::KillAt(Instant::now()));
            let _ = follow.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_names() {
        let vm = Vm::new("/r.img").disk("/d.img", false);
        assert_eq!(vm.disk_name(0), "/dev/ubdb");
        assert_eq!(vm.config_device_name(), "/dev/ubdc");
    }

    #[test]
    fn command_line_layout() {
        let vm = Vm::new("/r.img")
            .disk("/d.img", false)
            .disk("/e.img", true)
            .config_device_bytes(vec![0; 512])
            .cmdline_token("hostcontract=abc")
            .arg("loglevel=3");
        let joined = vm
            .command_line("id", Path::new("/c.img"))
            .unwrap()
            .join(" ");
        for part in [
            "ubd0r=/r.img",
            "ubd1=/d.img",
            "ubd2r=/e.img",
            "ubd3r=/c.img",
            "root=/dev/ubda ro",
            "umid=id uml_dir=/.vmm quiet",
            "loglevel=3 hostcontract=abc hostcontract_dev=/dev/ubdd",
        ] {
            assert!(joined.contains(part), "{part:?} not in {joined}");
        }
    }

    #[test]
    fn too_long_a_command_line_is_refused() {
        let vm = Vm::new("/r.img").cmdline_token(format!("hostcontract={}", "a".repeat(4096)));
        let err = vm.command_line("id", Path::new("/c")).unwrap_err();
        assert!(err.detail.contains("UML aborts above 4096"), "{err}");
    }

    #[test]
    fn unusable_paths_are_refused() {
        let vm = Vm::new("/a,b.img");
        assert!(vm.command_line("id", Path::new("/c")).is_err());
    }
}
