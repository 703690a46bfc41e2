//! The image's own service, as its manifest declares it (with the operator's files), on the
//! command-line encoding when it fits: it must boot read-only, become ready only once it
//! listens, format its blank disks, and stop cleanly with the disks unmounted.

use super::{after, contract, listening_at_ready, ping, spawn, stop, BOOT};
use crate::lab::{debugfs, superblock, Lab, GUEST_V4};
use crate::report::Results;
use contract::Readiness;
use serde_json::json;
use std::time::Duration;

pub fn check(lab: &Lab, r: &mut Results) -> Result<(), String> {
    let m = &lab.manifest;
    let mut vm = lab.vm();
    let mut disks = Vec::new();
    let mut disk_json = Vec::new();
    for (i, d) in m.disks.iter().enumerate() {
        let mib = d.min_size_mib.unwrap_or(16).max(16);
        let path = if d.format_if_blank {
            lab.blank_disk(&format!("image-disk{i}.img"), mib)?
        } else {
            lab.filled_disk(&format!("image-disk{i}.img"), (0, 0))?
        };
        disk_json.push(json!({
            "device": vm.disk_name(i), "mount_point": d.mount_point, "fs_type": d.fs_type,
            "options": d.options, "format_if_blank": d.format_if_blank,
            "owner_uid": d.owner_uid, "owner_gid": d.owner_gid,
        }));
        vm = vm.disk(&path, false);
        disks.push((path, d));
    }
    let mut more = json!({
        "service": serde_json::to_value(&m.service).map_err(|e| e.to_string())?,
        "files": lab.service_files,
        "sysctl": m.sysctl,
        "mounts": {"disks": disk_json, "tmpfs": serde_json::to_value(&m.tmpfs).map_err(|e| e.to_string())?},
    });
    if let Some(x) = &m.extra {
        more["extra"] = x.clone();
    }
    let c = contract(&lab.contract("conf-image", more))?;
    let on_cmdline = contract::cmdline::encode_within(&c, 1024).is_ok();
    vm = if on_cmdline {
        vm.contract_cmdline(&c)
    } else {
        vm.contract_device(&c)
    };
    if !on_cmdline {
        r.skip(
            "C-WIRE-1",
            "the image's own contract is too long for the command line",
        );
    }
    let running = spawn(&vm)?;
    let ready = running.wait_for_event("ready", BOOT);
    let label = "image service";
    match &ready {
        Ok(e) => {
            r.check(
                "C-EV-2",
                true,
                format!("{label}: ready after {} ms", e.u64("after_ms").unwrap_or(0)),
            );
            r.check(
                "C-IMG-7",
                true,
                format!("{label}: ready on a read-only root"),
            );
            if on_cmdline {
                r.check(
                    "C-WIRE-1",
                    true,
                    format!("{label}: contract on the command line, service ready"),
                );
            }
            if let Readiness::Tcp { port, .. } = m.service.readiness {
                let (ok, ev) = listening_at_ready(lab, label, port, "");
                r.check("C-RDY-1", ok, ev);
            }
            let (ok, ev) = ping(lab, None, GUEST_V4);
            r.check("C-NET-1", ok, format!("{label}: {ev}"));
        }
        Err(e) => {
            let why = format!("{label}: no ready event: {e}");
            r.check("C-EV-2", false, &why);
            r.check("C-IMG-7", false, &why);
            if on_cmdline {
                r.check("C-WIRE-1", false, &why);
            }
        }
    }
    let limit = Duration::from_millis(m.service.stop_timeout_ms) + BOOT;
    let (o, _) = stop(running, limit)?;
    let paths: Vec<_> = disks.iter().map(|(p, _)| p.clone()).collect();
    after(r, label, &o, &paths);
    let names = o.event_names();
    let wanted = ["contract_loaded", "service_started", "shutting_down"];
    let missing: Vec<_> = wanted.iter().filter(|w| !names.contains(w)).collect();
    r.check(
        "C-EV-4",
        missing.is_empty(),
        format!("{label}: missing {missing:?}"),
    );
    for (path, d) in &disks {
        if !d.format_if_blank {
            continue;
        }
        let state = superblock(path, "Filesystem state");
        r.check(
            "C-DISK-1",
            state.is_ok(),
            format!(
                "{label}: blank {} for {}: {}",
                path.display(),
                d.mount_point,
                match &state {
                    Ok(_) => "now a file system".into(),
                    Err(e) => e.clone(),
                }
            ),
        );
        let want = (d.owner_uid.unwrap_or(0), d.owner_gid.unwrap_or(0));
        let root = debugfs(path, "stat /").unwrap_or_default();
        let owner = owner_of(&root);
        r.check(
            "C-DISK-4",
            owner == Some(want),
            format!(
                "{label}: {} root owned by {owner:?}, wanted {want:?}",
                d.mount_point
            ),
        );
    }
    if !disks.iter().any(|(_, d)| d.format_if_blank) {
        r.skip(
            "C-DISK-1",
            "the manifest declares no disk the guest formats",
        );
        r.skip(
            "C-DISK-4",
            "the manifest declares no disk the guest formats",
        );
    }
    Ok(())
}

/// `User: N Group: M` of a debugfs stat.
fn owner_of(stat: &str) -> Option<(u32, u32)> {
    let after = |k: &str| {
        stat.split(k)
            .nth(1)?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    Some((after("User:")?, after("Group:")?))
}
