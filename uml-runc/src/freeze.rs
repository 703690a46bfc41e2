//! `pause` and `resume`: the freezer of the container's cgroup ([`crate::cgroup`]) stops and
//! restarts every host process of the container, the monitor and UML's, as runc freezes a
//! container's. The guest notices nothing but a jump of its clock. A container whose config
//! named no cgroup has nothing to freeze: `pause` says so.

use crate::error::{Error, Result};
use crate::state::{self, Dir, Status};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The container's freezer: v1's `freezer.state` or v2's `cgroup.freeze`.
enum Freezer {
    V1(PathBuf),
    V2(PathBuf),
}

fn freezer(state_dir: &Path) -> Option<Freezer> {
    let dirs = crate::cgroup::recorded(state_dir);
    if let Some(d) = dirs.iter().find(|d| d.join("freezer.state").is_file()) {
        return Some(Freezer::V1(d.join("freezer.state")));
    }
    dirs.iter()
        .find(|d| d.join("cgroup.freeze").is_file())
        .map(|d| Freezer::V2(d.join("cgroup.freeze")))
}

/// `pause ID`: freezes a running container; returns once every process is frozen.
pub fn pause(root: &Path, id: &str) -> Result<()> {
    let dir = Dir::new(root, id)?;
    let s = dir.load()?;
    if state::status(&dir, &s) != Status::Running {
        return Err(Error::new(format!("container not running: {id}")));
    }
    let f = freezer(&dir.path).ok_or_else(|| {
        Error::new(format!(
            "pause: container {id} has no freezer cgroup: its config names no \
             linux.cgroupsPath (containerd and podman give one), so nothing can freeze its VM"
        ))
    })?;
    set(&f, true)
}

/// `resume ID`: thaws a paused container.
pub fn resume(root: &Path, id: &str) -> Result<()> {
    let dir = Dir::new(root, id)?;
    dir.load()?;
    match freezer(&dir.path) {
        Some(f) => set(&f, false),
        None => Err(Error::new(format!("resume: container {id} is not paused"))),
    }
}

/// Whether the container's processes are frozen (its OCI status is then `paused`).
pub fn frozen(state_dir: &Path) -> bool {
    match freezer(state_dir) {
        Some(Freezer::V1(p)) => read(&p).is_some_and(|s| s != "THAWED"),
        Some(Freezer::V2(p)) => read(&p).is_some_and(|s| s == "1"),
        None => false,
    }
}

/// Thaws the container if it is frozen, before a stop or a kill (a frozen process cannot
/// act on a signal, and a frozen VM cannot power off).
pub fn thaw(state_dir: &Path) -> Result<()> {
    match freezer(state_dir) {
        Some(f) if frozen(state_dir) => set(&f, false),
        _ => Ok(()),
    }
}

fn read(p: &Path) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
}

/// Writes the freezer's state and waits (5 s at most) until the kernel reports it reached.
fn set(f: &Freezer, freeze: bool) -> Result<()> {
    let (path, value) = match f {
        Freezer::V1(p) => (p, if freeze { "FROZEN" } else { "THAWED" }),
        Freezer::V2(p) => (p, if freeze { "1" } else { "0" }),
    };
    std::fs::write(path, value)
        .map_err(|e| Error::new(format!("writing {value} to {}: {e}", path.display())))?;
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        // v1 goes through FREEZING; v2 reports the state asked for in cgroup.events, but
        // cgroup.freeze holds what was asked, so only v1 is waited for.
        let now = read(path);
        if now.as_deref() == Some(value) || matches!(f, Freezer::V2(_)) {
            return Ok(());
        }
        if Instant::now() >= until {
            return Err(Error::new(format!(
                "{}: still {now:?} 5 s after {value} was asked",
                path.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
