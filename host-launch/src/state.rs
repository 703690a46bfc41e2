//! The state directory of each appliance: `$HOST_LAUNCH_STATE_DIR/NAME/` (default
//! `/run/host-launch/NAME/`), holding
//!
//! | file            | what                                                          |
//! |-----------------|---------------------------------------------------------------|
//! | `lock`          | flock'ed by the running launcher: the appliance is up         |
//! | `state.json`    | [`State`]: phase, pids, uptime, readiness, last events        |
//! | `events.jsonl`  | every status event of the current run, one JSON per line      |
//! | `console.log`   | the guest console (kernel and guest-init) and UML's own output|
//! | `console.bootN.log` | the console of a boot repeated after the kernel ran out of memory |
//! | `config.img`    | the config block device carrying the contract (the VM's uid, 0400) |
//! | `jail/`         | where the VM's jail root is mounted, in the VM's own mount namespace only |
//! | `launcher.log`  | output of a launcher started in the background (`start`)      |
//! | `upgraded.json` | the image `upgrade` put in place of the spec's (see `upgrade`) |
//!
//! The directory is root's, mode 0700, and its files 0600 (the config device: root and the
//! VM's uid): a contract may hold secrets, and no other host user reads any of it. The
//! console and events logs are size-capped (see `vmm::channel`), with one rotated
//! predecessor each (`console.log.1`, `events.jsonl.1`).
//!
//! A launcher holds `lock` for its whole life, so a second launch of a running name fails to
//! take it; a launcher that died loses it, and the next launch cleans what it left.

use crate::error::{Error, IoContext, Result};
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// Environment variable overriding the base directory (for tests and unprivileged use).
pub const STATE_DIR_ENV: &str = "HOST_LAUNCH_STATE_DIR";
/// The base directory unless [`STATE_DIR_ENV`] is set.
pub const DEFAULT_STATE_DIR: &str = "/run/host-launch";
/// How many recent events `state.json` keeps.
pub const LAST_EVENTS: usize = 8;

/// The base directory holding one directory per appliance.
pub fn base_dir() -> PathBuf {
    std::env::var_os(STATE_DIR_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR))
}

/// Where an appliance's files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dir {
    pub path: PathBuf,
}

impl Dir {
    pub fn new(base: &Path, name: &str) -> Dir {
        Dir {
            path: base.join(name),
        }
    }
    pub fn lock(&self) -> PathBuf {
        self.path.join("lock")
    }
    pub fn state(&self) -> PathBuf {
        self.path.join("state.json")
    }
    pub fn events(&self) -> PathBuf {
        self.path.join("events.jsonl")
    }
    pub fn console(&self) -> PathBuf {
        self.path.join("console.log")
    }
    pub fn config_image(&self) -> PathBuf {
        self.path.join("config.img")
    }
    pub fn jail(&self) -> PathBuf {
        self.path.join("jail")
    }
    pub fn launcher_log(&self) -> PathBuf {
        self.path.join("launcher.log")
    }
    pub fn upgraded(&self) -> PathBuf {
        self.path.join("upgraded.json")
    }
}

/// Where the appliance is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// The launcher is preparing the host.
    Starting,
    /// UML runs; the service is not ready yet.
    Booting,
    /// The service reported ready.
    Ready,
    /// A stop was requested.
    Stopping,
    /// The VM ended (see `outcome` and `exit_code`).
    Exited,
}

/// A TAP device the launcher uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TapRecord {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<String>,
    /// Whether this launcher created it (and so removes it).
    pub created: bool,
}

/// Where the appliance's network policy is: its chains in this nftables table
/// (`appliance::netpolicy`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRecord {
    pub table: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<String>,
    /// Its rules, as installed.
    pub rules: usize,
}

/// `state.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub name: String,
    pub spec: String,
    pub phase: Phase,
    pub launcher_pid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uml_pid: Option<u32>,
    pub umid: String,
    /// The root image this run boots (the spec's, or the one `upgrade` put in its place).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub started_at_ms: u64,
    pub ready: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_after_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tap: Option<TapRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyRecord>,
    /// The data disks' host files.
    #[serde(default)]
    pub disks: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default)]
    pub last_events: Vec<serde_json::Value>,
    /// The VM's own host uid (and gid), see `vmm::ids`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// The UML kernel and its version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<String>,
    /// The image's appliance class and version (e.g. `dns v1`), when its manifest declares one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// What the guest sent that was not kept: status lines over the length bound, and log
    /// bytes rotated away.
    #[serde(default)]
    pub dropped: Dropped,
    /// The systemd unit running this launcher, when it was started by systemd.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systemd: Option<Systemd>,
}

/// Which systemd unit (and which start of it) runs the launcher; read at start from
/// `INVOCATION_ID` (set by systemd for every service it starts) and `/proc/self/cgroup`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Systemd {
    pub unit: String,
    pub invocation_id: String,
}

impl Systemd {
    /// This process's unit, if systemd started it.
    pub fn detect() -> Option<Systemd> {
        let invocation_id = std::env::var("INVOCATION_ID")
            .ok()
            .filter(|v| !v.is_empty())?;
        let cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        Some(Systemd {
            unit: unit_of_cgroup(&cgroup).unwrap_or_else(|| "?".into()),
            invocation_id,
        })
    }
}

/// The service unit in a `/proc/PID/cgroup` text: the last `*.service` component of the
/// systemd (v1 `name=systemd`, or v2 `0::`) hierarchy's path.
pub fn unit_of_cgroup(text: &str) -> Option<String> {
    text.lines()
        .filter(|l| l.starts_with("0::") || l.contains(":name=systemd:"))
        .filter_map(|l| l.rsplit(':').next())
        .flat_map(|path| path.rsplit('/'))
        .find(|c| c.ends_with(".service"))
        .map(str::to_string)
}

/// What the bounds on a guest's output dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dropped {
    /// Status lines longer than the bound.
    pub status_lines: u64,
    /// Bytes of console rotated out (older than the kept ones).
    pub console_bytes: u64,
    /// Bytes of the events log rotated out.
    pub events_bytes: u64,
    /// Events not printed to the launcher's output (rate-limited).
    pub unprinted_events: u64,
}

impl State {
    /// Writes `state.json` atomically (temporary file, then rename).
    pub fn save(&self, dir: &Dir) -> Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let tmp = temp_path(dir);
        let text = serde_json::to_string_pretty(self).unwrap_or_default();
        OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut f| f.write_all((text + "\n").as_bytes()))
            .io_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, dir.state())
            .io_context(|| format!("writing {}", dir.state().display()))
    }

    /// Reads `state.json`, if there is one that parses.
    pub fn load(dir: &Dir) -> Option<State> {
        let text = std::fs::read(dir.state()).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Keeps the event among the last few.
    pub fn push_event(&mut self, event: serde_json::Value) {
        self.last_events.push(event);
        let extra = self.last_events.len().saturating_sub(LAST_EVENTS);
        self.last_events.drain(..extra);
    }
}

/// The temporary file [`State::save`] renames over `state.json`: one per process, so that
/// two writers (a launcher, and `status` cleaning up after a dead one) never write into each
/// other's file and rename a mix, or find theirs gone.
pub fn temp_path(dir: &Dir) -> PathBuf {
    dir.path
        .join(format!("state.json.tmp.{}", std::process::id()))
}

/// The running launcher's hold on an appliance name.
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

/// Takes the appliance's lock without waiting; `Ok(None)` when another launcher holds it.
pub fn try_lock(dir: &Dir) -> Result<Option<Lock>> {
    let path = dir.lock();
    use std::os::unix::fs::OpenOptionsExt;
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .io_context(|| format!("opening {}", path.display()))?;
    // SAFETY: flock on a descriptor this function owns.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        Ok(Some(Lock { _file: file }))
    } else {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            Ok(None)
        } else {
            Err(Error::host(format!("locking {}: {e}", path.display())))
        }
    }
}

/// Whether a launcher holds the appliance's lock now.
pub fn is_locked(dir: &Dir) -> bool {
    let Ok(file) = File::open(dir.lock()) else {
        return false;
    };
    // SAFETY: flock on a descriptor this function owns; a shared lock is dropped with it.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) };
    rc != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EWOULDBLOCK)
}

/// Whether a process with this pid exists.
pub fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) => true,
        Err(e) => e == nix::errno::Errno::EPERM,
    }
}

/// Whether `pid` is a UML process started with `umid=UMID` (so a recycled pid is not killed).
pub fn is_uml_with_umid(pid: u32, umid: &str) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let want = format!("umid={umid}");
    cmdline.split(|b| *b == 0).any(|a| a == want.as_bytes())
}

/// The processes of process group `pgid`, from /proc. UML leads its own group (its id is UML's
/// pid): its helpers and the host processes of the guest's address spaces stay in it.
pub fn process_group(pgid: u32) -> Vec<u32> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids = Vec::new();
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid pgrp ...": the command may hold spaces and parentheses.
        let pgrp = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(2))
            .and_then(|g| g.parse::<u32>().ok());
        if pgrp == Some(pgid) {
            pids.push(pid);
        }
    }
    pids
}

/// Kills every process of UML's process group (UML calls setsid, so the group id is its pid)
/// that still carries `umid=UMID` on its command line: UML itself and its helper processes,
/// which outlive a killed UML and keep its data disks locked. Returns how many were killed.
pub fn kill_uml_group(pgid: u32, umid: &str) -> usize {
    let mut killed = 0;
    for pid in process_group(pgid) {
        if is_uml_with_umid(pid, umid) {
            if let Ok(p) = i32::try_from(pid) {
                if nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(p),
                    nix::sys::signal::Signal::SIGKILL,
                )
                .is_ok()
                {
                    killed += 1;
                }
            }
        }
    }
    killed
}

/// One appliance as `status` and `list` show it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    pub dir: Dir,
    pub state: Option<State>,
    /// A launcher holds the lock.
    pub running: bool,
}

/// Every appliance with a state directory, by name.
pub fn list(base: &Path) -> Vec<Entry> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(base) else {
        return out;
    };
    for e in rd.flatten() {
        let Some(name) = e.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if appliance::spec::check_name(&name).is_err() || !e.path().is_dir() {
            continue;
        }
        out.push(entry(base, &name));
    }
    out.sort_by(|a, b| natural_cmp(&a.name, &b.name));
    out
}

/// Natural order: runs of digits compare as numbers, so d1, d2, d10 (not d1, d10, d2).
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn parts(s: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let mut start = 0;
        let b = s.as_bytes();
        for i in 1..=b.len() {
            if i == b.len() || b[i].is_ascii_digit() != b[start].is_ascii_digit() {
                out.push((b[start].is_ascii_digit(), &s[start..i]));
                start = i;
            }
        }
        out
    }
    let (pa, pb) = (parts(a), parts(b));
    for ((da, xa), (db, xb)) in pa.iter().zip(pb.iter()) {
        let o = if *da && *db {
            let (ta, tb) = (xa.trim_start_matches('0'), xb.trim_start_matches('0'));
            ta.len().cmp(&tb.len()).then(ta.cmp(tb))
        } else {
            xa.cmp(xb)
        };
        if o != std::cmp::Ordering::Equal {
            return o;
        }
    }
    pa.len().cmp(&pb.len()).then(a.cmp(b))
}

/// One appliance's entry.
pub fn entry(base: &Path, name: &str) -> Entry {
    let dir = Dir::new(base, name);
    Entry {
        name: name.to_string(),
        state: State::load(&dir),
        running: is_locked(&dir),
        dir,
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_in_natural_order() {
        let mut v = vec!["d10", "d2", "web1", "d1", "d100", "d02", "dns1", "a"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, ["a", "d1", "d02", "d2", "d10", "d100", "dns1", "web1"]);
    }

    #[test]
    fn the_unit_is_read_from_the_cgroup() {
        let v1 = "9:name=systemd:/system.slice/system-host\\x2dlaunch.slice/host-launch@dns1.service\n8:pids:/x\n";
        assert_eq!(
            unit_of_cgroup(v1).as_deref(),
            Some("host-launch@dns1.service")
        );
        let v2 = "0::/system.slice/host-launch@web1.service\n";
        assert_eq!(
            unit_of_cgroup(v2).as_deref(),
            Some("host-launch@web1.service")
        );
        assert_eq!(unit_of_cgroup("0::/user.slice/session-1.scope\n"), None);
    }

    #[test]
    fn lock_is_exclusive_and_visible() {
        let base = std::env::temp_dir().join(format!("hl-state-{}", std::process::id()));
        let dir = Dir::new(&base, "a1");
        std::fs::create_dir_all(&dir.path).unwrap();
        assert!(!is_locked(&dir));
        let held = try_lock(&dir).unwrap().expect("first lock");
        assert!(is_locked(&dir));
        assert!(try_lock(&dir).unwrap().is_none());
        drop(held);
        assert!(!is_locked(&dir));
        let mut s = State {
            name: "a1".into(),
            spec: "/s.json".into(),
            phase: Phase::Booting,
            launcher_pid: 1,
            uml_pid: None,
            umid: "a1-x".into(),
            image: Some("/i/root.img".into()),
            started_at_ms: 0,
            ready: false,
            ready_after_ms: None,
            tap: None,
            policy: None,
            disks: vec![],
            outcome: None,
            exit_code: None,
            last_events: vec![],
            uid: Some(7),
            kernel: None,
            class: None,
            dropped: Default::default(),
            systemd: None,
        };
        for i in 0..20 {
            s.push_event(serde_json::json!({"n": i}));
        }
        assert_eq!(s.last_events.len(), LAST_EVENTS);
        assert_eq!(s.last_events[0]["n"], 12);
        s.save(&dir).unwrap();
        assert_eq!(State::load(&dir).unwrap(), s);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.state()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "state files are root's alone");
        let l = list(&base);
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].name, "a1");
        std::fs::remove_dir_all(&base).unwrap();
        assert!(pid_alive(std::process::id()));
    }
}
