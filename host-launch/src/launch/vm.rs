//! The VM of a loaded spec, in [`vmm`]'s terms: its command line ([`machine`]), its own uid
//! ([`assign_uid`]) and its jail ([`jail`]).

use crate::error::{Error, IoContext, Result};
use crate::launch::load::Loaded;
use crate::state::{self, Dir};
use std::path::Path;
use vmm::cmdline::{Disk, Machine};
use vmm::jail::Jail;
use vmm::launch::UidError;

/// Whether the guest may need the kernel's RAID-6 code: a btrfs data disk.
pub fn needs_raid6(c: &contract::Contract) -> bool {
    c.mounts.disks.iter().any(|d| d.fs_type == "btrfs")
}

/// The UML machine for a loaded spec, its state directory and umid.
pub fn machine(l: &Loaded, dir: &Dir, umid: String, kernel_log: bool) -> Machine {
    let mut disks: Vec<Disk> = l
        .merged
        .disks
        .iter()
        .zip(&l.disk_files)
        .map(|(d, f)| Disk {
            ubd: d.ubd,
            path: f.clone(),
            read_only: false,
        })
        .collect();
    disks.push(Disk {
        ubd: l.merged.config_ubd,
        path: dir.config_image(),
        read_only: true,
    });
    Machine {
        kernel: l.kernel.clone(),
        root: l.image.clone(),
        disks,
        config_ubd: Some(l.merged.config_ubd),
        tap: l.merged.tap.clone(),
        memory_mib: l.merged.memory_mib,
        umid,
        kernel_log,
        needs_raid6: needs_raid6(&l.merged.contract),
        // The guest's request channel (docs/contract.md): /dev/tty2 reads the FIFO that
        // [`jail`] hands UML.
        extra: vec![vmm::cmdline::REQUESTS_CONSOLE.to_string()],
    }
}

/// The uids other appliances' state directories record.
fn recorded_uids(entries: &[state::Entry], except: &str) -> Vec<u32> {
    entries
        .iter()
        .filter(|e| e.name != except)
        .filter_map(|e| e.state.as_ref().and_then(|s| s.uid))
        .collect()
}

/// The VM's own uid (also its gid): the one its state directory records if it is still its
/// own, else a new one from the configured range (see [`vmm::ids`]).
pub fn assign_uid(base: &Path, name: &str, recorded: Option<u32>) -> Result<u32> {
    assign_uid_among(&state::list(base), name, recorded)
}

/// [`assign_uid`] among the appliances `entries` (`state::list`), read once by a launch that
/// also checks them for collisions: at 500 appliances each list is 500 state files.
pub fn assign_uid_among(
    entries: &[state::Entry],
    name: &str,
    recorded: Option<u32>,
) -> Result<u32> {
    let (range, _) = vmm::ids::configured_range().map_err(|e| Error::invalid(e.to_string()))?;
    let others = recorded_uids(entries, name);
    let free = |id: u32| !others.contains(&id) && !vmm::ids::host_account_exists(id);
    if let Some(id) = recorded.filter(|&id| range.contains(id) && free(id)) {
        return Ok(id);
    }
    vmm::launch::choose_uid(name, |id| others.contains(&id)).map_err(|e| match e {
        UidError::Range(m) => Error::invalid(m.to_string()),
        UidError::Full { .. } => Error::host(e.to_string()),
    })
}

/// A data disk that another VM's uid owns belongs to that appliance: refuse it rather than
/// take it over.
pub fn check_disk_owner(at: &str, path: &Path, uid: u32) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(());
    };
    let owner = meta.uid();
    let in_range = vmm::ids::configured_range()
        .map(|(r, _)| r.contains(owner))
        .unwrap_or(false);
    if in_range && owner != uid {
        return Err(Error::busy(format!(
            "{at}.file: {} belongs to another appliance's VM (uid {owner}; this one's is \
             {uid}); a data disk belongs to one appliance: give it another file, or `chown \
             root {}` if it is meant to move here",
            path.display(),
            path.display()
        )));
    }
    Ok(())
}

/// The jail of a VM: vmm's for its machine, plus its namespace and TAP device and the spec's
/// limits.
pub fn jail(l: &Loaded, dir: &Dir, uid: u32, m: &Machine) -> Result<Jail> {
    let jail_dir = dir.jail();
    let _ = std::fs::remove_dir_all(&jail_dir);
    std::fs::create_dir(&jail_dir).io_context(|| format!("creating {}", jail_dir.display()))?;
    let mut j = vmm::launch::jail_for(m, jail_dir, uid).map_err(|e| Error::host(e.to_string()))?;
    if let Some(n) = &l.spec.network {
        j.netns = n.netns.as_ref().map(|ns| Path::new("/run/netns").join(ns));
        j.taps = vec![n.tap.clone()];
    }
    j.requests = Some(requests_fifo(dir)?);
    if let Some(lim) = &l.spec.limits {
        j.limits.open_files = lim.open_files.unwrap_or(j.limits.open_files);
        j.limits.processes = lim.processes.unwrap_or(j.limits.processes);
    }
    Ok(j)
}

/// A new FIFO for the host's requests to the guest (see [`vmm::jail::Jail::requests`]),
/// root's alone: only the launcher and `host-launch snapshot` write it.
fn requests_fifo(dir: &Dir) -> Result<std::path::PathBuf> {
    let path = dir.requests();
    let _ = std::fs::remove_file(&path);
    nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .map_err(|e| Error::host(format!("creating the request FIFO {}: {e}", path.display())))?;
    Ok(path)
}
