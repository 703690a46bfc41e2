//! The launch step every caller takes: a validated machine ([`crate::cmdline::Machine`]) and
//! the VM's own uid ([`choose_uid`]) give its jail ([`jail_for`]), and [`launch`] starts UML
//! in it. What comes back, a [`Vm`], is what [`crate::follow`] follows.

use crate::cmdline::Machine;
use crate::ids::{self, Range};
use crate::jail::{Access, Jail};
use crate::mconsole::Target;
use crate::spawn::Process;
use std::fmt;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

/// A started VM: its process, the read end of its (non-blocking) status channel, and its
/// mconsole. [`launch`] hands the console's read end over beside it: each caller copies it
/// where it wants it.
#[derive(Debug)]
pub struct Vm {
    pub process: Process,
    pub status: OwnedFd,
    pub mconsole: Target,
    /// The command line, for people.
    pub shown: String,
}

/// Why no uid could be chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UidError {
    /// The configured range is refused (the message names where it came from).
    Range(crate::ids::RangeError),
    /// Every id of the range is taken.
    Full { range: Range, source: String },
}

impl fmt::Display for UidError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UidError::Range(e) => e.fmt(f),
            UidError::Full { range, source } => write!(
                f,
                "no free VM uid left in {}..{} ({source}); widen the range",
                range.start,
                u64::from(range.start) + u64::from(range.count)
            ),
        }
    }
}

impl std::error::Error for UidError {}

/// Why a jail could not be made for a machine.
#[derive(Debug, thiserror::Error)]
#[error("kernel: {0}")]
pub struct JailForError(#[from] pub crate::elf::KernelFilesError);

/// Why a VM could not be launched (nothing of it is left).
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error(transparent)]
    Start(#[from] crate::spawn::StartError),
    #[error("making the status pipe non-blocking: {0}")]
    Nonblocking(std::io::Error),
}

/// The VM's own uid (also its gid) for `name`: from the configured range ([`ids`]), never
/// one a host account has or `taken` refuses (the caller's other VMs).
pub fn choose_uid(name: &str, taken: impl Fn(u32) -> bool) -> Result<u32, UidError> {
    let (range, source) = ids::configured_range().map_err(UidError::Range)?;
    ids::pick(name, range, |id| taken(id) || ids::host_account_exists(id))
        .ok_or(UidError::Full { range, source })
}

/// The jail of `machine` run as `uid` on the empty directory `dir`: the kernel's files, the
/// root image read-only, each disk as the machine attaches it, one core, and limits sized
/// for its memory and its largest file. The caller adds its network namespace, TAP devices
/// and its own limits.
pub fn jail_for(machine: &Machine, dir: PathBuf, uid: u32) -> Result<Jail, JailForError> {
    let largest = std::iter::once(&machine.root)
        .chain(machine.disks.iter().map(|d| &d.path))
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|meta| meta.len())
        .max()
        .unwrap_or(0);
    let mut jail = Jail::sized(dir, uid, uid, machine.memory_mib, largest);
    jail.files = crate::elf::runtime_files(&machine.kernel)?;
    jail.files.push((machine.root.clone(), Access::ReadOnly));
    for d in &machine.disks {
        let access = if d.read_only {
            Access::ReadOnly
        } else {
            Access::ReadWrite
        };
        jail.files.push((d.path.clone(), access));
    }
    // See crate::cpu: a VM on one core runs its guest's system calls faster.
    jail.cpu = crate::cpu::pick(&crate::cmdline::comm(&machine.kernel));
    Ok(jail)
}

/// Starts `machine` in `jail`: the VM and its console. `Err` means UML never ran (and nothing
/// of it is left).
pub fn launch(machine: &Machine, jail: &Jail) -> Result<(Vm, std::fs::File), LaunchError> {
    let started = crate::spawn::start(machine, jail)?;
    crate::channel::set_nonblocking(&started.status).map_err(LaunchError::Nonblocking)?;
    let mconsole = Target::jailed(
        started.process.pid(),
        &machine.umid,
        jail.netns.clone(),
        jail.uid,
    );
    let vm = Vm {
        process: started.process,
        status: started.status,
        mconsole,
        shown: started.shown,
    };
    Ok((vm, std::fs::File::from(started.console)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_range_names_its_bounds_and_source() {
        let e = UidError::Full {
            range: Range {
                start: 10,
                count: 5,
            },
            source: "the default range".into(),
        };
        assert_eq!(
            e.to_string(),
            "no free VM uid left in 10..15 (the default range); widen the range"
        );
    }

    #[test]
    fn a_jail_binds_root_and_disks_as_attached() {
        let dir = std::env::temp_dir().join(format!("vmm-launch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let root = dir.join("root.img");
        let data = dir.join("data.img");
        std::fs::write(&root, vec![0u8; 4096]).unwrap();
        std::fs::write(&data, vec![0u8; 8 << 20]).unwrap();
        let m = Machine {
            kernel: PathBuf::from("/proc/self/exe"),
            root: root.clone(),
            disks: vec![crate::cmdline::Disk {
                ubd: 1,
                path: data.clone(),
                read_only: false,
            }],
            config_ubd: None,
            tap: None,
            memory_mib: 1,
            umid: "t".into(),
            kernel_log: false,
            needs_raid6: false,
            extra: Vec::new(),
        };
        let j = jail_for(&m, dir.join("jail"), 4242).unwrap();
        assert!(j.files.contains(&(root, Access::ReadOnly)));
        assert!(j.files.contains(&(data, Access::ReadWrite)));
        assert_eq!((j.uid, j.gid), (4242, 4242));
        assert_eq!(j.limits.file_size, 8 << 20);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
