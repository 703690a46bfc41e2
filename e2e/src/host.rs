//! Host tools the tests run on disk images: `mkfs.ext4` for a data disk and `e2fsck -fn` after
//! the VM stopped, with their output in the test's failure message; and the host memory of a
//! running VM's processes, and the host CPU the VMs a benchmark compares are started on.

use std::path::Path;
use std::process::Command;

/// Runs a host tool to completion; returns its exit code (-1 when a signal ended it) and its
/// standard output followed by its standard error.
pub fn output_text(cmd: &mut Command) -> (i32, String) {
    let out = cmd.output().expect("running a host tool");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// `mkfs.ext4 -q -F DISK SIZE` (an empty file system the size of `size`, e.g. `16M`).
#[track_caller]
pub fn mkfs_ext4(disk: &Path, size: &str) {
    let (code, out) = output_text(
        Command::new("mkfs.ext4")
            .args(["-q", "-F"])
            .arg(disk)
            .arg(size),
    );
    assert_eq!(code, 0, "mkfs.ext4 {}: {out}", disk.display());
}

/// `e2fsck -fn DISK` passes: the file system is consistent (nothing to fix).
#[track_caller]
pub fn assert_fsck_clean(disk: &Path) {
    let (code, out) = output_text(Command::new("e2fsck").arg("-fn").arg(disk));
    assert_eq!(code, 0, "e2fsck -fn {}: {out}", disk.display());
}

/// Host memory of a set of processes, KiB.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    pub processes: usize,
    /// Distinct address spaces: UML's helper threads are processes sharing its memory.
    pub address_spaces: usize,
    pub rss_kib: u64,
    pub pss_kib: u64,
}

fn rollup_field(text: &str, field: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Whether two processes share one address space (`kcmp(KCMP_VM)`).
fn same_mm(a: u32, b: u32) -> bool {
    const KCMP_VM: libc::c_long = 1;
    // SAFETY: kcmp only compares kernel objects of the two processes.
    unsafe {
        libc::syscall(
            libc::SYS_kcmp,
            libc::c_long::from(a),
            libc::c_long::from(b),
            KCMP_VM,
            0,
            0,
        ) == 0
    }
}

/// Every host process of the VM whose UML has host pid `uml_pid`: each VM runs as a uid of
/// its own (see `vmm::ids`), so they are the processes of UML's uid.
pub fn vm_processes(uml_pid: u32) -> Vec<u32> {
    use std::os::unix::fs::MetadataExt;
    let Ok(uid) = std::fs::metadata(format!("/proc/{uml_pid}")).map(|m| m.uid()) else {
        return Vec::new();
    };
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok().map(|p| (p, e)))
        .filter(|(_, e)| e.metadata().is_ok_and(|m| m.uid() == uid))
        .map(|(p, _)| p)
        .collect()
}

/// Host CPU time (ns) of the VM whose UML has host pid `uml_pid`: every thread of each of
/// its [`vm_processes`] (`/proc/PID/task/TID/schedstat`'s first field).
pub fn vm_cpu_ns(uml_pid: u32) -> u64 {
    let mut total = 0;
    for pid in vm_processes(uml_pid) {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for t in tasks.flatten() {
            let s = std::fs::read_to_string(t.path().join("schedstat")).unwrap_or_default();
            total += s
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    total
}

/// RSS and PSS (`/proc/PID/smaps_rollup`) summed over the distinct address spaces of `pids`
/// (UML starts its I/O helpers with `clone(CLONE_VM)`: each shows the whole VM's memory).
pub fn memory_of(pids: &[u32]) -> Memory {
    let mut m = Memory::default();
    let mut seen: Vec<u32> = Vec::new();
    for &pid in pids {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) else {
            continue;
        };
        m.processes += 1;
        if seen.iter().any(|&s| same_mm(s, pid)) {
            continue;
        }
        seen.push(pid);
        m.address_spaces += 1;
        m.rss_kib += rollup_field(&text, "Rss:");
        m.pss_kib += rollup_field(&text, "Pss:");
    }
    m
}

/// UML's memory file as the host holds it: what the guest's memory occupies on the host's
/// tmpfs and the file's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryFile {
    /// Bytes the host has allocated for the file (`st_blocks` × 512).
    pub allocated: u64,
    /// The file's size: the guest's whole memory, allocated or not.
    pub size: u64,
}

/// Whether an open file's link (`/proc/PID/fd/N`) is UML's memory file: an unlinked file it
/// made in `TMPDIR` (`arch/um/os-Linux/mem.c`; the jail's `/.vmm`), `#INODE` when made with
/// `O_TMPFILE`, else `vm_file-XXXXXX`.
pub fn is_uml_memory_file(link: &str) -> bool {
    let Some(path) = link.strip_suffix(" (deleted)") else {
        return false;
    };
    let name = path.rsplit('/').next().unwrap_or(path);
    let tmpfile = name
        .strip_prefix('#')
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    let named = name
        .strip_prefix("vm_file-")
        .is_some_and(|n| !n.is_empty() && !n.contains(' '));
    path.starts_with('/') && (tmpfile || named)
}

/// The memory file of the UML whose kernel process is `uml_pid`, through its open
/// descriptor (the file is unlinked and inside the jail's own tmpfs).
pub fn uml_memory_file(uml_pid: u32) -> Option<MemoryFile> {
    use std::os::unix::fs::MetadataExt;
    let fds = std::fs::read_dir(format!("/proc/{uml_pid}/fd")).ok()?;
    fds.flatten()
        .find(|e| {
            std::fs::read_link(e.path()).is_ok_and(|l| l.to_str().is_some_and(is_uml_memory_file))
        })
        .and_then(|e| std::fs::metadata(e.path()).ok())
        .map(|m| MemoryFile {
            allocated: m.blocks() * 512,
            size: m.size(),
        })
}

/// Becomes `uid` (gid the same number, no supplementary groups): a non-root uid, so no
/// capabilities either. Only system calls, for a `pre_exec` between fork and exec.
pub fn become_uid(uid: u32) -> std::io::Result<()> {
    let g = [uid];
    // SAFETY: setgroups reads one gid from `g`; setgid and setuid take plain numbers.
    let failed = unsafe {
        libc::setgroups(1, g.as_ptr()) != 0 || libc::setgid(uid) != 0 || libc::setuid(uid) != 0
    };
    if failed {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Makes `cmd` run as `uid` (see [`become_uid`]): how the tests act as a VM's escaped UML
/// process or as another host user.
pub fn as_uid(cmd: &mut std::process::Command, uid: u32) -> &mut std::process::Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: become_uid only makes system calls, as pre_exec requires.
    unsafe { cmd.pre_exec(move || become_uid(uid)) }
}

/// Runs `f` with this thread (and so what it starts) allowed only on host CPU `cpu`, if
/// given, then on the CPUs it had. vmm pins each VM to the least used core it may use, which
/// for two sides of a comparison can be a loaded core and an idle one; a benchmark's `--cpu N`
/// puts both on the same.
pub fn started_on<T>(cpu: Option<usize>, f: impl FnOnce() -> T) -> T {
    let Some(cpu) = cpu else { return f() };
    let size = std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: a zeroed cpu_set_t is a valid empty set; the calls read and write only the sets.
    unsafe {
        let mut before: libc::cpu_set_t = std::mem::zeroed();
        assert_eq!(libc::sched_getaffinity(0, size, &mut before), 0);
        let mut one: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut one);
        assert_eq!(libc::sched_setaffinity(0, size, &one), 0, "CPU {cpu}");
        let r = f();
        assert_eq!(libc::sched_setaffinity(0, size, &before), 0);
        r
    }
}

/// The host CPU's model name (`/proc/cpuinfo`), which every benchmark prints with its figures.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            Some(
                l.strip_prefix("model name")?
                    .split(':')
                    .nth(1)?
                    .trim()
                    .to_string(),
            )
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::is_uml_memory_file;

    #[test]
    fn the_memory_file_is_known_by_its_name_alone() {
        assert!(is_uml_memory_file("/.vmm/#3 (deleted)"));
        assert!(is_uml_memory_file("/.vmm/vm_file-Ab12Cd (deleted)"));
        assert!(!is_uml_memory_file("/.vmm/vm_file-Ab12Cd"), "not unlinked");
        assert!(!is_uml_memory_file("/.vmm/# (deleted)"));
        assert!(!is_uml_memory_file("/.vmm/#3x (deleted)"));
        assert!(!is_uml_memory_file("/.vmm/vm_file- (deleted)"));
        assert!(!is_uml_memory_file("/.vmm/mconsole (deleted)"));
        assert!(!is_uml_memory_file("socket:[1234]"));
        assert!(!is_uml_memory_file("/tmp/root.img"));
    }
}
