//! Where an appliance's files are: the base directory and each file's name in it.

use std::path::{Path, PathBuf};

/// Environment variable overriding the base directory (for tests and unprivileged use).
pub const STATE_DIR_ENV: &str = "HOST_LAUNCH_STATE_DIR";
/// The base directory unless [`STATE_DIR_ENV`] is set.
pub const DEFAULT_STATE_DIR: &str = "/run/host-launch";

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
    /// The console's timestamped copy (see `crate::stamped`).
    pub fn console_stamped(&self) -> PathBuf {
        self.path.join("console.stamped.log")
    }
    pub fn config_image(&self) -> PathBuf {
        self.path.join("config.img")
    }
    /// The FIFO of requests to the guest (`snapshot`'s freeze and thaw), root's, 0600.
    pub fn requests(&self) -> PathBuf {
        self.path.join("requests")
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
    /// `upgrade`'s marker: the stopping launcher leaves its TAP device and policy for the
    /// next launch of the appliance, which takes them over (see `cmd/upgrade.rs`).
    pub fn tap_handover(&self) -> PathBuf {
        self.path.join("tap-handover")
    }
}
