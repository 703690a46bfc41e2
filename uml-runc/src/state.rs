//! A container's state directory, `ROOT/ID/` (`--root`, default [`DEFAULT_ROOT`]): its
//! `state.json`, the VM's root and config images, the jail's mount point and the fifo that
//! `start` opens. The state says which monitor process is the container (pid and start time,
//! so a reused pid is not taken for it) and what `delete` must remove on the host.

use crate::error::{io, Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const DEFAULT_ROOT: &str = "/run/uml-runc";

/// state.json is ours, but read bounded all the same.
const MAX_STATE_BYTES: u64 = 1 << 20;

/// What the runtime records about a container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub id: String,
    pub bundle: PathBuf,
    /// The monitor: the process conmon waits on, alive as long as the VM.
    pub pid: u32,
    /// Its start time (field 22 of /proc/PID/stat).
    pub pid_start: u64,
    pub created: String,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    pub uid: u32,
    /// The network namespace, TAP device and veth joined to it.
    #[serde(default)]
    pub net: Option<Net>,
    /// The bundle's root file system as `root.path` names it (absolute).
    #[serde(default)]
    pub rootfs: Option<PathBuf>,
    /// The hooks run after `create`: the bundle may have changed or gone by then.
    #[serde(default)]
    pub poststart: Vec<crate::bundle::Hook>,
    #[serde(default)]
    pub poststop: Vec<crate::bundle::Hook>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Net {
    pub netns: PathBuf,
    pub tap: String,
    pub link: String,
}

/// The OCI status of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Created,
    Running,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Stopped => "stopped",
        }
    }
}

/// A container's directory.
#[derive(Debug, Clone)]
pub struct Dir {
    pub path: PathBuf,
}

impl Dir {
    pub fn new(root: &Path, id: &str) -> Result<Dir> {
        check_id(id)?;
        Ok(Dir {
            path: root.join(id),
        })
    }
    pub fn state(&self) -> PathBuf {
        self.path.join("state.json")
    }
    pub fn root_image(&self) -> PathBuf {
        self.path.join("root.img")
    }
    pub fn config_image(&self) -> PathBuf {
        self.path.join("config.img")
    }
    pub fn jail(&self) -> PathBuf {
        self.path.join("jail")
    }
    /// Exists from `create` until `start` has opened it.
    pub fn fifo(&self) -> PathBuf {
        self.path.join("start.fifo")
    }
    /// The exit status the monitor recorded.
    pub fn exit(&self) -> PathBuf {
        self.path.join("exit")
    }

    pub fn load(&self) -> Result<State> {
        let p = self.state();
        if !p.exists() {
            return Err(Error::new(format!(
                "container {} does not exist",
                self.path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            )));
        }
        let text = crate::bundle::read_bounded(&p, MAX_STATE_BYTES)?;
        serde_json::from_slice(&text).map_err(|e| Error::new(format!("{}: {e}", p.display())))
    }

    pub fn save(&self, s: &State) -> Result<()> {
        let text = serde_json::to_vec_pretty(s)
            .map_err(|e| Error::new(format!("encoding the state: {e}")))?;
        let tmp = self.path.join(".state.json.tmp");
        std::fs::write(&tmp, text).map_err(io(format!("writing {}", tmp.display())))?;
        std::fs::rename(&tmp, self.state())
            .map_err(io(format!("writing {}", self.state().display())))
    }
}

/// A container id: what runc accepts (letters, digits, `_+-.`), and never a path.
pub fn check_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 1024
        && id != "."
        && id != ".."
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+-.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::new(format!(
            "container id {:?}: only letters, digits and _+-. are allowed",
            contract::json::printable(id)
        )))
    }
}

/// The start time of process `pid`, if it runs (field 22 of /proc/PID/stat).
pub fn start_time(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: count from the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the state's monitor still runs (a zombie counts as gone).
pub fn alive(s: &State) -> bool {
    if start_time(s.pid) != Some(s.pid_start) {
        return false;
    }
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", s.pid)).unwrap_or_default();
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next().map(str::to_string));
    state.as_deref() != Some("Z")
}

/// The container's status.
pub fn status(dir: &Dir, s: &State) -> Status {
    if !alive(s) {
        Status::Stopped
    } else if dir.fifo().exists() {
        Status::Created
    } else {
        Status::Running
    }
}

/// The OCI state JSON (runtime spec, "State").
pub fn oci_state(dir: &Dir, s: &State) -> serde_json::Value {
    let st = status(dir, s);
    let mut v = serde_json::json!({
        "ociVersion": "1.0.2",
        "id": s.id,
        "status": st.as_str(),
        "bundle": s.bundle,
        "rootfs": s.rootfs.clone().unwrap_or_else(|| s.bundle.join("rootfs")),
        "created": s.created,
        "annotations": s.annotations,
    });
    if st != Status::Stopped {
        v["pid"] = s.pid.into();
    } else {
        v["pid"] = 0.into();
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_never_paths() {
        assert!(check_id("4f0c1d2e-abc_1.2+x").is_ok());
        for bad in ["", "..", "a/b", "a b", "x\u{0}"] {
            assert!(check_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn own_start_time_is_read() {
        assert!(start_time(std::process::id()).is_some());
        assert_eq!(start_time(u32::MAX), None);
    }
}
