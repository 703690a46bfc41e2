//! File systems: the system mounts every guest needs, the contract's data disks and tmpfs
//! mounts, and taking the data disks down cleanly at shutdown.
//!
//! A data disk is formatted only when the contract allows it and the disk is blank (its first
//! MiB is all zeroes, as a freshly created sparse file is); a disk holding anything is never
//! reformatted.

use contract::{budget, Disk, Tmpfs};
use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::process::Command;

/// A mount step that failed, with the contract path (or system directory) at fault.
#[derive(Debug)]
pub struct MountError {
    /// JSON path in the contract (`mounts.disks[0]`) or the system mount point.
    pub at: String,
    pub message: String,
}

impl fmt::Display for MountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

impl std::error::Error for MountError {}

fn err(at: impl Into<String>, message: impl Into<String>) -> MountError {
    MountError {
        at: at.into(),
        message: message.into(),
    }
}

/// One system mount: (source, target, fstype, flags, data).
type SystemMount = (&'static str, &'static str, &'static str, MsFlags, String);

/// The mount options of /run: the contract's files go there, so it holds at most what the
/// contract may claim of a `memory_mib` VM, in at most [`budget::RUN_INODES`] inodes (see
/// contract::budget: a full /run then ends in ENOSPC at a file, not in a kernel deadlock).
pub fn run_options(memory_mib: u32) -> String {
    let size = budget::claimable_bytes(memory_mib).max(1 << 20);
    format!("mode=0755,size={size},nr_inodes={}", budget::RUN_INODES)
}

/// Mounted only where the kernel has it (`CONFIG_POSIX_MQUEUE`): a service that needs POSIX
/// message queues fails at mq_open on a kernel without them, as it would without the mount.
const OPTIONAL: &str = "/dev/mqueue";

fn system_mounts() -> [SystemMount; 8] {
    let hard = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    [
        ("proc", "/proc", "proc", hard, String::new()),
        (
            "devtmpfs",
            "/dev",
            "devtmpfs",
            MsFlags::MS_NOSUID,
            "mode=0755".into(),
        ),
        (
            "devpts",
            "/dev/pts",
            "devpts",
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
            "mode=0620,gid=5,ptmxmode=0666".into(),
        ),
        (
            // Source "shm", as the OCI runtime spec's default mount names it.
            "shm",
            "/dev/shm",
            "tmpfs",
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            "mode=1777".into(),
        ),
        ("mqueue", OPTIONAL, "mqueue", hard, String::new()),
        // After /dev and its children, as the OCI runtime spec's default mounts are ordered.
        ("sysfs", "/sys", "sysfs", hard, String::new()),
        (
            "tmpfs",
            "/run",
            "tmpfs",
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            // Sized in mount_system once /proc can tell the VM's memory.
            String::new(),
        ),
        (
            "tmpfs",
            "/tmp",
            "tmpfs",
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            "mode=1777".into(),
        ),
    ]
}

/// The links of /dev the OCI runtime spec lists (`/dev/ptmx` replaces devtmpfs's node, so a
/// pty opened through it is of the devpts mounted at /dev/pts).
const DEV_LINKS: [(&str, &str); 5] = [
    ("/dev/fd", "/proc/self/fd"),
    ("/dev/stdin", "/proc/self/fd/0"),
    ("/dev/stdout", "/proc/self/fd/1"),
    ("/dev/stderr", "/proc/self/fd/2"),
    ("/dev/ptmx", "pts/ptmx"),
];

/// Mounts /proc, /dev, /dev/pts, /dev/shm, /dev/mqueue, /sys, /run and /tmp, and makes /dev's links; the
/// root stays read-only. A file system the kernel (or an earlier step) already mounted there
/// is kept.
pub fn mount_system() -> Result<(), MountError> {
    mount_system_fs()?;
    dev_links()
}

/// Makes [`DEV_LINKS`]; a link already right is kept, anything else there replaced.
fn dev_links() -> Result<(), MountError> {
    for (link, target) in DEV_LINKS {
        if std::fs::read_link(link).is_ok_and(|t| t == Path::new(target)) {
            continue;
        }
        if std::fs::symlink_metadata(link).is_ok() {
            std::fs::remove_file(link)
                .map_err(|e| err(link, format!("cannot replace it with a link: {e}")))?;
        }
        std::os::unix::fs::symlink(target, link)
            .map_err(|e| err(link, format!("cannot link it to {target}: {e}")))?;
    }
    Ok(())
}

fn mount_system_fs() -> Result<(), MountError> {
    for (source, target, fstype, flags, mut data) in system_mounts() {
        if target == "/run" {
            // /proc is mounted by now: size /run from the VM's memory.
            data = run_options(this_vm_memory_mib());
        }
        if target.starts_with("/dev/") {
            // /dev is a devtmpfs by now, so its subdirectories can be created.
            let _ = std::fs::create_dir(target);
        }
        if !Path::new(target).is_dir() {
            return Err(err(
                target,
                format!(
                    "the image has no {target} directory to mount on; image builders: create it"
                ),
            ));
        }
        match mount(
            Some(source),
            target,
            Some(fstype),
            flags,
            Some(data.as_str()),
        ) {
            Ok(()) => {}
            Err(Errno::EBUSY) if is_mounted(target) => {}
            Err(Errno::ENODEV) if target == OPTIONAL => {
                let _ = std::fs::remove_dir(target);
            }
            Err(e) => return Err(err(target, format!("cannot mount {fstype}: {e}"))),
        }
    }
    Ok(())
}

/// True if something is mounted exactly at `target` (per /proc/self/mounts, or, before /proc
/// exists, assumed true since EBUSY on a mount point means it is in use).
fn is_mounted(target: &str) -> bool {
    match std::fs::read_to_string("/proc/self/mounts") {
        Ok(text) => text.lines().any(|l| l.split(' ').nth(1) == Some(target)),
        Err(_) => true,
    }
}

/// What happened to a data disk, for the status channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskReport {
    pub device: String,
    pub mount_point: String,
    pub formatted: bool,
    pub checked: bool,
}

/// Checks, formats if allowed and blank, and mounts one data disk; `at` is its JSON path.
pub fn mount_disk(at: &str, d: &Disk) -> Result<DiskReport, MountError> {
    let head = read_head(&d.device).map_err(|m| err(format!("{at}.device"), m))?;
    let mut formatted = false;
    let mut checked = false;
    if is_blank(&head) {
        if !d.format_if_blank {
            return Err(err(format!("{at}.format_if_blank"), format!("{} is blank (no file system); set format_if_blank to true to create one, or attach the disk that holds the data", d.device)));
        }
        make_fs(at, d)?;
        formatted = true;
    } else if let Some(fsck) = find_tool(&["/sbin/e2fsck", "/usr/sbin/e2fsck"])
        .filter(|_| is_ext(&d.fs_type) && ext_needs_check(&head, wall_clock_secs()).is_some())
    {
        check_fs(at, d, fsck)?;
        checked = true;
    }
    if !Path::new(&d.mount_point).is_dir() {
        return Err(err(format!("{at}.mount_point"), format!("{} does not exist in the image; image builders: create the directory (the root is read-only)", d.mount_point)));
    }
    let (flags, data) = split_options(&d.options);
    mount(
        Some(d.device.as_str()),
        d.mount_point.as_str(),
        Some(d.fs_type.as_str()),
        flags,
        Some(data.as_str()),
    )
    .map_err(|e| {
        err(
            at,
            format!(
                "cannot mount {} ({}) on {}: {e}",
                d.device, d.fs_type, d.mount_point
            ),
        )
    })?;
    Ok(DiskReport {
        device: d.device.clone(),
        mount_point: d.mount_point.clone(),
        formatted,
        checked,
    })
}

fn is_ext(fs_type: &str) -> bool {
    matches!(fs_type, "ext2" | "ext3" | "ext4")
}

/// Bytes that must be zero for a disk to count as blank: every file system we know keeps its
/// signature in the first MiB.
const BLANK_PROBE: usize = 1 << 20;

/// Why `e2fsck -p` has work to do on the ext2/3/4 file system whose first bytes are `head`, or
/// `None` when it would only say "clean" and exit 0: then it is not run, because its start
/// alone (a dynamically linked program under UML) took 40 ms of every boot with a data disk,
/// a fifth of an upgrade's downtime. The same tests as e2fsck's preen mode, from the
/// superblock (at byte 1024): not cleanly unmounted or errors recorded (`s_state`,
/// `s_error_count`), a journal to replay (`needs_recovery`), orphans pending, or a check due by
/// mount count or interval. Anything that does not parse as an ext superblock is checked.
pub fn ext_needs_check(head: &[u8], now_secs: u64) -> Option<&'static str> {
    let Some(sb) = head.get(1024..2048) else {
        return Some("no room for an ext superblock");
    };
    let u16_at = |o: usize| {
        sb.get(o..o + 2)
            .map_or(0, |b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |o: usize| {
        sb.get(o..o + 4)
            .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    const VALID: u16 = 1;
    const ERRORS: u16 = 2;
    const INCOMPAT_RECOVER: u32 = 0x4;
    const RO_COMPAT_ORPHAN_PRESENT: u32 = 0x1_0000;
    if u16_at(0x38) != 0xEF53 {
        return Some("no ext superblock");
    }
    let state = u16_at(0x3A);
    if state & VALID == 0 || state & ERRORS != 0 || u32_at(0x194) != 0 {
        return Some("not cleanly unmounted, or errors recorded");
    }
    if u32_at(0x60) & INCOMPAT_RECOVER != 0 {
        return Some("the journal needs recovery");
    }
    if u32_at(0xE8) != 0 || u32_at(0x64) & RO_COMPAT_ORPHAN_PRESENT != 0 {
        return Some("orphan inodes pending");
    }
    let (mounts, max_mounts) = (u16_at(0x34), u16_at(0x36) as i16);
    if max_mounts > 0 && i32::from(mounts) >= i32::from(max_mounts) {
        return Some("maximal mount count reached");
    }
    let (last, interval) = (u32_at(0x40), u32_at(0x44));
    if interval > 0 && now_secs >= u64::from(last) + u64::from(interval) {
        return Some("check interval passed");
    }
    None
}

fn wall_clock_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A disk whose first MiB is zero has no file system.
fn is_blank(head: &[u8]) -> bool {
    head.iter().all(|b| *b == 0)
}

/// The first MiB of the device (or all of it, if smaller): all zero means blank, and an ext
/// file system's superblock is in it.
fn read_head(device: &str) -> Result<Vec<u8>, String> {
    let mut f = File::open(device).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("{device} does not exist: attach the disk on the host (e.g. ubd1=FILE) or remove it from the contract"),
        _ => format!("cannot open {device}: {e}"),
    })?;
    let mut buf = vec![0u8; BLANK_PROBE];
    let mut filled = 0;
    while filled < buf.len() {
        let Some(rest) = buf.get_mut(filled..) else {
            break;
        };
        match f.read(rest) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("cannot read {device}: {e}")),
        }
    }
    if filled == 0 {
        return Err(format!(
            "{device} is empty (0 bytes); give the disk a size on the host"
        ));
    }
    buf.truncate(filled);
    Ok(buf)
}

fn find_tool(candidates: &[&'static str]) -> Option<&'static str> {
    candidates.iter().copied().find(|p| Path::new(p).exists())
}

fn make_fs(at: &str, d: &Disk) -> Result<(), MountError> {
    let tool = find_tool(&["/sbin/mke2fs", "/usr/sbin/mke2fs"]).ok_or_else(|| {
        err(format!("{at}.format_if_blank"), format!("{} is blank, but the image has no /sbin/mke2fs to create a file system; image builders: include e2fsprogs' mke2fs, or format the disk on the host", d.device))
    })?;
    // The root directory belongs to the service's user, so it can write to its own disk.
    let extended = format!(
        "lazy_itable_init=1,lazy_journal_init=1,root_owner={}:{}",
        d.owner_uid.unwrap_or(0),
        d.owner_gid.unwrap_or(0)
    );
    let out = Command::new(tool)
        .args(["-q", "-F", "-t", &d.fs_type, "-E", &extended, &d.device])
        .env_clear()
        .output()
        .map_err(|e| err(at, format!("cannot run {tool}: {e}")))?;
    if !out.status.success() {
        return Err(err(
            at,
            format!(
                "{tool} failed on {} ({}): {}",
                d.device,
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    Ok(())
}

/// `e2fsck -p` (preen): fixes what is safe to fix alone. Exit codes 0 to 3 mean the file system
/// is usable; 4 and above mean it needs a person.
fn check_fs(at: &str, d: &Disk, tool: &str) -> Result<(), MountError> {
    let out = Command::new(tool)
        .args(["-p", &d.device])
        .env_clear()
        .output()
        .map_err(|e| err(at, format!("cannot run {tool}: {e}")))?;
    match out.status.code() {
        Some(0..=3) => Ok(()),
        _ => Err(err(at, format!("{} has file system errors that `e2fsck -p` could not fix ({}): {}; repair the disk file on the host with `e2fsck -f FILE`", d.device, out.status, String::from_utf8_lossy(&out.stdout).trim()))),
    }
}

/// Splits contract mount options into kernel flags and the file-system specific data string.
pub fn split_options(options: &[String]) -> (MsFlags, String) {
    let mut flags = MsFlags::empty();
    let mut data: Vec<&str> = Vec::new();
    for o in options {
        match flag_for(o) {
            Some(f) => flags |= f,
            None if o == "rw" || o == "defaults" => {}
            None => data.push(o),
        }
    }
    (flags, data.join(","))
}

fn flag_for(option: &str) -> Option<MsFlags> {
    Some(match option {
        "ro" => MsFlags::MS_RDONLY,
        "nosuid" => MsFlags::MS_NOSUID,
        "nodev" => MsFlags::MS_NODEV,
        "noexec" => MsFlags::MS_NOEXEC,
        "sync" => MsFlags::MS_SYNCHRONOUS,
        "dirsync" => MsFlags::MS_DIRSYNC,
        "noatime" => MsFlags::MS_NOATIME,
        "nodiratime" => MsFlags::MS_NODIRATIME,
        "relatime" => MsFlags::MS_RELATIME,
        "strictatime" => MsFlags::MS_STRICTATIME,
        "lazytime" => MsFlags::MS_LAZYTIME,
        _ => return None,
    })
}

/// The VM's memory in MiB as the host gave it (`mem=` on the kernel command line), else what
/// the kernel reports plus what it keeps for itself; `None` if neither can be read.
pub fn memory_mib(cmdline: &str, meminfo: &str) -> Option<u32> {
    let from_cmdline = cmdline
        .split_ascii_whitespace()
        .rev()
        .find_map(|a| a.strip_prefix("mem="))
        .and_then(parse_size_mib);
    from_cmdline.or_else(|| {
        let kib: u64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))?
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse()
            .ok()?;
        u32::try_from(kib / 1024)
            .ok()?
            .checked_add(budget::KERNEL_MIB)
    })
}

/// `64M`, `1G`, `65536K` or bytes, as UML's `mem=` takes them, in MiB.
fn parse_size_mib(s: &str) -> Option<u32> {
    let (num, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => s.split_at(i),
        None => (s, ""),
    };
    let n: u64 = num.parse().ok()?;
    let bytes = match unit {
        "" => n,
        "K" | "k" => n.checked_mul(1 << 10)?,
        "M" | "m" => n.checked_mul(1 << 20)?,
        "G" | "g" => n.checked_mul(1 << 30)?,
        _ => return None,
    };
    u32::try_from(bytes >> 20).ok()
}

/// The VM's memory (see [`memory_mib`]) read from /proc, which [`mount_system`] mounts first;
/// 24 MiB (the least a UML guest boots with) when it cannot be read, so limits err small.
pub fn this_vm_memory_mib() -> u32 {
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    memory_mib(&cmdline, &meminfo).unwrap_or(24)
}

/// Mounts the contract's tmpfs file systems, each with a size (its own, else
/// [`budget::default_tmpfs_mib`]) and an inode limit, so none can fill the VM's memory.
pub fn mount_tmpfs(list: &[Tmpfs], memory_mib: u32) -> Result<(), MountError> {
    for (i, t) in list.iter().enumerate() {
        let at = format!("mounts.tmpfs[{i}]");
        if !Path::new(&t.mount_point).is_dir() {
            return Err(err(
                format!("{at}.mount_point"),
                format!(
                    "{} does not exist in the image; image builders: create the directory",
                    t.mount_point
                ),
            ));
        }
        let size = t
            .size_mib
            .unwrap_or_else(|| budget::default_tmpfs_mib(memory_mib));
        let mut data = vec![
            format!("size={size}m"),
            format!("nr_inodes={}", budget::tmpfs_inodes(size)),
        ];
        if let Some(mode) = &t.mode {
            data.push(format!("mode={mode}"));
        }
        mount(
            Some("tmpfs"),
            t.mount_point.as_str(),
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some(data.join(",").as_str()),
        )
        .map_err(|e| err(&at, format!("cannot mount tmpfs on {}: {e}", t.mount_point)))?;
    }
    Ok(())
}

/// How a data disk was taken down at shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unmounted {
    Unmounted,
    /// Still busy: remounted read-only, so the file system is clean on disk.
    RemountedReadOnly,
    Failed(Errno),
}

/// Unmounts data disks in reverse order; a busy one is remounted read-only instead.
pub fn unmount_disks(disks: &[Disk]) -> Vec<(String, Unmounted)> {
    disks
        .iter()
        .rev()
        .map(|d| (d.mount_point.clone(), unmount(&d.mount_point)))
        .collect()
}

fn unmount(target: &str) -> Unmounted {
    match umount2(target, MntFlags::empty()) {
        Ok(()) => Unmounted::Unmounted,
        Err(_) => {
            let flags = MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
            match mount(None::<&str>, target, None::<&str>, flags, None::<&str>) {
                Ok(()) => Unmounted::RemountedReadOnly,
                Err(e) => Unmounted::Failed(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_split_into_flags_and_data() {
        let opts: Vec<String> = [
            "noatime",
            "nodev",
            "data=journal",
            "rw",
            "errors=remount-ro",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let (flags, data) = split_options(&opts);
        assert_eq!(flags, MsFlags::MS_NOATIME | MsFlags::MS_NODEV);
        assert_eq!(data, "data=journal,errors=remount-ro");
    }

    #[test]
    fn a_clean_ext_superblock_needs_no_check_and_anything_else_does() {
        // A superblock as mke2fs leaves it: magic, state valid, no max mount count or interval.
        let mut head = vec![0u8; 4096];
        let put16 = |h: &mut Vec<u8>, o: usize, v: u16| {
            h[1024 + o..1026 + o].copy_from_slice(&v.to_le_bytes())
        };
        let put32 = |h: &mut Vec<u8>, o: usize, v: u32| {
            h[1024 + o..1028 + o].copy_from_slice(&v.to_le_bytes())
        };
        put16(&mut head, 0x38, 0xEF53);
        put16(&mut head, 0x3A, 1);
        put16(&mut head, 0x36, 0xFFFF); // -1: no mount-count check
        assert_eq!(ext_needs_check(&head, 1_700_000_000), None);
        let with = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut h = head.clone();
            f(&mut h);
            ext_needs_check(&h, 1_700_000_000)
        };
        assert!(with(&|h| put16(h, 0x38, 0)).is_some(), "no magic");
        assert!(
            with(&|h| put16(h, 0x3A, 0)).is_some(),
            "not cleanly unmounted"
        );
        assert!(with(&|h| put16(h, 0x3A, 3)).is_some(), "errors");
        assert!(with(&|h| put32(h, 0x194, 2)).is_some(), "error count");
        assert!(
            with(&|h| put32(h, 0x60, 0x4 | 0x40)).is_some(),
            "journal to replay"
        );
        assert!(with(&|h| put32(h, 0xE8, 12)).is_some(), "orphans");
        assert!(
            with(&|h| {
                put16(h, 0x36, 20);
                put16(h, 0x34, 20)
            })
            .is_some(),
            "mount count"
        );
        assert_eq!(
            with(&|h| {
                put16(h, 0x36, 20);
                put16(h, 0x34, 3)
            }),
            None
        );
        assert!(
            with(&|h| {
                put32(h, 0x40, 1_600_000_000);
                put32(h, 0x44, 86_400)
            })
            .is_some(),
            "interval"
        );
        assert_eq!(
            with(&|h| {
                put32(h, 0x40, 1_699_999_000);
                put32(h, 0x44, 86_400)
            }),
            None
        );
        assert!(
            ext_needs_check(&head[..1500], 0).is_some(),
            "too short to hold a superblock"
        );
    }

    #[test]
    fn blank_detection_reads_the_first_mib() {
        let dir = std::env::temp_dir().join(format!("gi-blank-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let blank = dir.join("blank.img");
        let used = dir.join("used.img");
        let f = File::create(&blank).expect("create");
        f.set_len(4 << 20).expect("len");
        let mut bytes = vec![0u8; 4 << 20];
        bytes[1080] = 0x53; // where an ext superblock's magic lives
        std::fs::write(&used, &bytes).expect("write");
        let blank_of =
            |p: &std::path::Path| read_head(p.to_str().expect("utf8")).map(|h| is_blank(&h));
        assert_eq!(blank_of(&blank), Ok(true));
        assert_eq!(blank_of(&used), Ok(false));
        let missing = read_head("/dev/ubdz-nope").expect_err("missing");
        assert!(missing.contains("does not exist"), "{missing}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn the_vm_memory_comes_from_mem_or_meminfo() {
        let meminfo = "MemTotal:          21504 kB\nMemFree: 1 kB\n";
        assert_eq!(
            memory_mib("ubd0r=/x mem=48M root=/dev/ubda", meminfo),
            Some(48)
        );
        assert_eq!(memory_mib("mem=1G", ""), Some(1024));
        assert_eq!(memory_mib("mem=65536K", ""), Some(64));
        assert_eq!(memory_mib("mem=33554432", ""), Some(32));
        assert_eq!(memory_mib("root=/dev/ubda", meminfo), Some(33));
        assert_eq!(memory_mib("mem=lots", "MemTotal: x kB"), None);
    }

    #[test]
    fn run_is_limited() {
        assert_eq!(
            run_options(32),
            format!(
                "mode=0755,size={},nr_inodes={}",
                10 << 20,
                budget::RUN_INODES
            )
        );
        assert!(run_options(0).contains("size=1048576"));
    }
}
