//! The image's own service, booted for a class suite: the manifest's service, sysctls, tmpfs
//! and extra, its first data disk the suite's (a site for `web`, a blank disk for `syslog`),
//! any further disks blank, on the lab's network at `GUEST_V4`. The suite then talks to it
//! from the namespace as a client would, and reads its disk after a clean stop.

use crate::checks::{contract, spawn, stop, BOOT};
use crate::lab::Lab;
use e2e::{RunningVm, VmOutcome};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A running image, ready.
pub struct Service {
    vm: RunningVm,
    stop_limit: Duration,
    /// Every data disk it has, the suite's first.
    pub disks: Vec<PathBuf>,
    /// How long from the spawn to the `ready` event.
    pub ready_after: Duration,
}

/// Boots the lab's image with `data` as its first data disk and waits until it is ready.
pub fn boot(lab: &Lab, data: &Path) -> Result<Service, String> {
    let m = &lab.manifest;
    if m.disks.is_empty() {
        return Err(
            "the manifest declares no data disk, which this class requires \
                    (docs/classes/): add one mounted at /data"
                .into(),
        );
    }
    let mut vm = lab.vm();
    let mut disks = Vec::new();
    let mut disk_json = Vec::new();
    for (i, d) in m.disks.iter().enumerate() {
        let path = if i == 0 {
            data.to_path_buf()
        } else {
            lab.blank_disk(&format!("class-disk{i}.img"), d.min_size_mib.unwrap_or(16))?
        };
        disk_json.push(json!({
            "device": vm.disk_name(i), "mount_point": d.mount_point, "fs_type": d.fs_type,
            "options": d.options, "format_if_blank": d.format_if_blank,
            "owner_uid": d.owner_uid, "owner_gid": d.owner_gid,
        }));
        vm = vm.disk(&path, false);
        disks.push(path);
    }
    let tmpfs = serde_json::to_value(&m.tmpfs).map_err(|e| e.to_string())?;
    let mut more = json!({
        "service": serde_json::to_value(&m.service).map_err(|e| e.to_string())?,
        "sysctl": m.sysctl,
        "mounts": {"disks": disk_json, "tmpfs": tmpfs},
    });
    if let Some(x) = &m.extra {
        more["extra"] = x.clone();
    }
    let c = contract(&lab.contract("class-suite", more))?;
    let started = std::time::Instant::now();
    let running = spawn(&vm.contract_device(&c))?;
    if let Err(e) = running.wait_for_event("ready", BOOT) {
        let console = running.console();
        let tail: Vec<&str> = console.lines().rev().take(6).collect();
        return Err(format!(
            "the image's service never became ready: {e}; console ends: {}",
            tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
        ));
    }
    Ok(Service {
        vm: running,
        stop_limit: Duration::from_millis(m.service.stop_timeout_ms) + BOOT,
        disks,
        ready_after: started.elapsed(),
    })
}

impl Service {
    /// Asks for a clean stop and waits for the VM to end.
    pub fn stop(self) -> Result<VmOutcome, String> {
        stop(self.vm, self.stop_limit).map(|(o, _)| o)
    }
}
