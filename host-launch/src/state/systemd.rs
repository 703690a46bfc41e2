//! Whether systemd runs this launcher, and as which unit.

use serde::{Deserialize, Serialize};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
