//! `state.json`: what the launcher records of its appliance (phase, pids, readiness, last
//! events, what the bounds dropped), written atomically.

use super::{Dir, Systemd};
use crate::error::{IoContext, Result};
use serde::{Deserialize, Serialize};
use std::fs::OpenOptions;
use std::path::PathBuf;

/// How many recent events `state.json` keeps.
pub const LAST_EVENTS: usize = 8;

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

impl Phase {
    /// The phase in words, as `state.json` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Booting => "booting",
            Phase::Ready => "ready",
            Phase::Stopping => "stopping",
            Phase::Exited => "exited",
        }
    }
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
    /// When guest-init's first status event came, after the start: the kernel's boot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub booted_after_ms: Option<u64>,
    /// What the service did this run, as its events told (counted by the host).
    #[serde(default)]
    pub service: ServiceCounts,
    /// The guest's own figures, from its last `figures` event (clamped: the guest's word).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest: Option<GuestFigures>,
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
    /// The service's stop timeout (the merged contract's), for `stop`'s default wait.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_timeout_ms: Option<u64>,
    /// The host's steps of this start up to UML's exec ([`crate::timeline`]), written with the
    /// `booting` phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_steps: Option<crate::timeline::HostSteps>,
}

/// The service's restarts, exits and failed liveness checks in this run: one per event the
/// host received, so a guest cannot claim more than it sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceCounts {
    pub restarts: u64,
    pub exits: u64,
    /// Exits the guest reported as its OOM killer's (`exited` with `oom`; absent in older
    /// state files and from inits that do not tell).
    #[serde(default)]
    pub oom_kills: u64,
    pub liveness_failures: u64,
    /// The last exit's code, or 128 + the signal that ended it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_exit_code: Option<i32>,
}

/// The guest's last `figures` event, clamped to what a VM can have: a guest may send any
/// number, and these land in graphs and sums.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct GuestFigures {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_total_kb: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_available_kb: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load1: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime_s: Option<f64>,
}

/// 1 TiB in kB: more than any appliance has.
const MAX_MEM_KB: u64 = 1 << 30;
/// A load average or uptime (s, ~30 years) beyond these is a lie.
const MAX_LOAD: f64 = 1e6;
const MAX_UPTIME_S: f64 = 1e9;

impl GuestFigures {
    /// The figures as sent, each clamped; the available memory no more than the total.
    pub fn clamped(
        mem_total_kb: Option<u64>,
        mem_available_kb: Option<u64>,
        load1: Option<f64>,
        uptime_s: Option<f64>,
    ) -> GuestFigures {
        let total = mem_total_kb.map(|t| t.min(MAX_MEM_KB));
        let cap = total.unwrap_or(MAX_MEM_KB);
        let within =
            |v: Option<f64>, max: f64| v.filter(|v| v.is_finite()).map(|v| v.clamp(0.0, max));
        GuestFigures {
            mem_total_kb: total,
            mem_available_kb: mem_available_kb.map(|a| a.min(cap)),
            load1: within(load1, MAX_LOAD),
            uptime_s: within(uptime_s, MAX_UPTIME_S),
        }
    }
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

#[cfg(test)]
mod guest_figures_tests {
    use super::*;

    #[test]
    fn a_guests_figures_are_clamped() {
        let f = GuestFigures::clamped(Some(u64::MAX), Some(u64::MAX), Some(-3.0), Some(f64::MAX));
        assert_eq!(f.mem_total_kb, Some(MAX_MEM_KB));
        assert_eq!(f.mem_available_kb, Some(MAX_MEM_KB));
        assert_eq!(f.load1, Some(0.0));
        assert_eq!(f.uptime_s, Some(MAX_UPTIME_S));
        let f = GuestFigures::clamped(Some(60_000), Some(90_000), Some(f64::NAN), None);
        assert_eq!(f.mem_available_kb, Some(60_000));
        assert_eq!((f.load1, f.uptime_s), (None, None));
        let f = GuestFigures::clamped(Some(60_000), Some(40_000), Some(0.5), Some(12.5));
        assert_eq!(
            f,
            GuestFigures {
                mem_total_kb: Some(60_000),
                mem_available_kb: Some(40_000),
                load1: Some(0.5),
                uptime_s: Some(12.5)
            }
        );
    }
}
