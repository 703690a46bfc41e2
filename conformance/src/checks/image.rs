//! The image's own service, as its manifest declares it (with the operator's files), on the
//! command-line encoding when it fits: it must boot read-only, become ready only once it
//! listens, format its blank disks, and stop cleanly with the disks unmounted.

use super::{after, contract, listening_at_ready, ping, spawn, stop, BOOT};
use crate::error::Error;
use crate::lab::{debugfs, superblock, Lab, GUEST_V4};
use crate::report::Results;
use ::lab::{Event, Vm};
use appliance::manifest::ManifestDisk;
use contract::Readiness;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

const LABEL: &str = "image service";

pub fn check(lab: &Lab, r: &mut Results) -> Result<(), Error> {
    let m = &lab.manifest;
    let (vm, disks, disk_json) = attach_disks(lab, lab.vm())?;
    let c = own_contract(lab, disk_json)?;
    let on_cmdline = contract::cmdline::encode_within(&c, 1024).is_ok();
    let vm = if on_cmdline {
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
    check_ready(lab, r, &ready, on_cmdline);
    let limit = Duration::from_millis(m.service.stop_timeout_ms) + BOOT;
    let (o, _) = stop(running, limit)?;
    let paths: Vec<_> = disks.iter().map(|(p, _)| p.clone()).collect();
    after(r, LABEL, &o, &paths);
    let names = o.event_names();
    let wanted = ["contract_loaded", "service_started", "shutting_down"];
    let missing: Vec<_> = wanted.iter().filter(|w| !names.contains(w)).collect();
    r.check(
        "C-EV-4",
        missing.is_empty(),
        format!("{LABEL}: missing {missing:?}"),
    );
    check_disks(r, &disks);
    Ok(())
}

/// A disk of the manifest, the host file the kit made for it.
type Attached<'m> = (PathBuf, &'m ManifestDisk);

/// A host file for each disk of the manifest (blank where the guest formats it, else with a
/// file system), attached to `vm`, with the contract's `mounts.disks`.
fn attach_disks(lab: &Lab, mut vm: Vm) -> Result<(Vm, Vec<Attached<'_>>, Vec<Value>), Error> {
    let mut disks = Vec::new();
    let mut disk_json = Vec::new();
    for (i, d) in lab.manifest.disks.iter().enumerate() {
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
    Ok((vm, disks, disk_json))
}

/// The contract of the image's own service, as its manifest declares it.
fn own_contract(lab: &Lab, disk_json: Vec<Value>) -> Result<contract::Contract, Error> {
    let m = &lab.manifest;
    let mut more = json!({
        "service": serde_json::to_value(&m.service)?,
        "files": lab.service_files,
        "sysctl": m.sysctl,
        "mounts": {"disks": disk_json, "tmpfs": serde_json::to_value(&m.tmpfs)?},
    });
    if let Some(x) = &m.extra {
        more["extra"] = x.clone();
    }
    contract(&lab.contract("conf-image", more))
}

/// Ready on a read-only root, listening when it says so, answering pings.
fn check_ready(lab: &Lab, r: &mut Results, ready: &::lab::Result<Event>, on_cmdline: bool) {
    match ready {
        Ok(e) => {
            r.check(
                "C-EV-2",
                true,
                format!("{LABEL}: ready after {} ms", e.u64("after_ms").unwrap_or(0)),
            );
            r.check(
                "C-IMG-7",
                true,
                format!("{LABEL}: ready on a read-only root"),
            );
            if on_cmdline {
                r.check(
                    "C-WIRE-1",
                    true,
                    format!("{LABEL}: contract on the command line, service ready"),
                );
            }
            if let Readiness::Tcp { port, .. } = lab.manifest.service.readiness {
                let (ok, ev) = listening_at_ready(lab, LABEL, port, "");
                r.check("C-RDY-1", ok, ev);
            }
            let (ok, ev) = ping(lab, None, GUEST_V4);
            r.check("C-NET-1", ok, format!("{LABEL}: {ev}"));
        }
        Err(e) => {
            let why = format!("{LABEL}: no ready event: {e}");
            r.check("C-EV-2", false, &why);
            r.check("C-IMG-7", false, &why);
            if on_cmdline {
                r.check("C-WIRE-1", false, &why);
            }
        }
    }
}

/// The blank disks: formatted by the guest, their root owned as the manifest says.
fn check_disks(r: &mut Results, disks: &[Attached<'_>]) {
    for (path, d) in disks {
        if !d.format_if_blank {
            continue;
        }
        let state = superblock(path, "Filesystem state");
        r.check(
            "C-DISK-1",
            state.is_ok(),
            format!(
                "{LABEL}: blank {} for {}: {}",
                path.display(),
                d.mount_point,
                match &state {
                    Ok(_) => "now a file system".into(),
                    Err(e) => e.to_string(),
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
                "{LABEL}: {} root owned by {owner:?}, wanted {want:?}",
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
