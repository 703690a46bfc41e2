//! The UML command line of a [`Machine`]. Pure: the same machine gives the same arguments, so
//! `host-launch check` can show exactly what `run` will start.
//!
//! Block devices: `ubd0r=` the root image (read-only, so many VMs share one image), the data
//! disks at their numbers, then the config device read-only, named to the guest by
//! `hostcontract_dev=`. Consoles: everything off (`con=null`), then `con0` (the kernel and
//! guest-init console) writes to fd 1 and `con1` (the guest's /dev/tty1, the status channel)
//! to [`STATUS_FD`]; both are pipes the launcher reads. Inside the jail every file keeps its
//! host path, UML's runtime directory (`uml_dir`, the mconsole socket) and its memory file
//! (`TMPDIR`) are the jail's private [`JAIL_TMP`].
//!
//! Boot time: Debian's UML kernel has btrfs built in, which pulls in the RAID-6 P/Q library,
//! and that benchmarks five algorithms at every boot (about 170 ms each: 0.85 s of a 1.4 s
//! kernel boot). Appliances never use RAID-6 — only a multi-device btrfs would — so unless a
//! data disk is btrfs the command line skips that initcall ([`SKIP_RAID6_BENCHMARK`]); a
//! kernel without it ignores the parameter.
//!
//! Network: each TAP device is a vector interface ([`tap_interface`]) with `gro=1`. UML opens
//! the TAP with vnet headers and offers TSO to the host, so the host hands the guest TCP
//! frames of up to 64 KiB; the driver sizes its receive buffers once, when the interface is
//! created, and only `gro=1` makes them 64 KiB. Without it every large frame was cut to
//! the MTU ("Incoming GSO frames and GRO disabled on the interface" on the console) and
//! dropped, and a host that sends faster than the guest reads stalled in retransmissions.
//! The TAP transport reads one frame at a time into a buffer allocated for it (the driver's
//! queues, whose `depth=` would multiply the buffers, are only for socket transports), so
//! the larger buffer costs the guest no memory while idle.

use contract::cmdline as wire;
use contract::uml::{self, ubd_device, MAX_UBD};
use std::path::{Path, PathBuf};

/// The descriptor UML's status console writes to (the write end of the launcher's pipe).
pub const STATUS_FD: i32 = 3;

/// The descriptor the guest's request console (`/dev/tty2`) reads from: the launcher's
/// requests FIFO ([`crate::jail::Jail::requests`]), when the VM has one.
pub const REQUESTS_FD: i32 = 4;

/// The argument that makes `/dev/tty2` the guest's request channel (input [`REQUESTS_FD`],
/// output nowhere); a caller that sets [`crate::jail::Jail::requests`] adds it to the
/// machine's `extra`.
pub const REQUESTS_CONSOLE: &str = "con2=fd:4,null";

/// The jail's private, VM-sized tmpfs: UML's memory file and its runtime directory (a name
/// no host file the VM is given lives under).
pub const JAIL_TMP: &str = "/.vmm";

/// Skips the RAID-6 algorithm benchmark (see the module documentation). Its function table
/// stays empty, so it is only given when no disk is btrfs, the one user of RAID-6 in a guest.
pub const SKIP_RAID6_BENCHMARK: &str = "initcall_blacklist=raid6_select_algo";

/// A block device after the root image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    /// The ubd number (1 → `/dev/ubdb`).
    pub ubd: usize,
    pub path: PathBuf,
    pub read_only: bool,
}

/// Everything a VM's command line depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    pub kernel: PathBuf,
    pub root: PathBuf,
    /// Data disks and, last, the config device (read-only).
    pub disks: Vec<Disk>,
    /// The ubd number of the config device among `disks`, named by `hostcontract_dev=`.
    pub config_ubd: Option<usize>,
    /// The host TAP device that becomes the guest's `vec0`.
    pub tap: Option<String>,
    pub memory_mib: u32,
    /// UML's instance name (its mconsole directory under [`JAIL_TMP`]).
    pub umid: String,
    /// Show the kernel's informational messages (default: `quiet`).
    pub kernel_log: bool,
    /// A data disk may need RAID-6 (btrfs): keep the kernel's RAID-6 set-up.
    pub needs_raid6: bool,
    /// More kernel arguments, after the standard ones (tests: `ip=`, `hostcontract=`).
    pub extra: Vec<String>,
}

/// Why a machine has no UML command line.
#[derive(Debug, thiserror::Error)]
pub enum CmdlineError {
    #[error("{0} is not UTF-8, which UML cannot take")]
    NotUtf8(PathBuf),
    #[error("path {0}")]
    Path(#[from] uml::PathError),
    #[error("path {0:?} is not absolute")]
    NotAbsolute(String),
    #[error("ubd{0} is not a data disk's number: UML attaches ubd0 (the root) to ubd{last}", last = MAX_UBD - 1)]
    DataUbd(usize),
    #[error(
        "the UML command line would be {0} bytes; UML aborts above {max}: use shorter paths, \
         or the config device for a large contract",
        max = uml::COMMAND_LINE_SIZE
    )]
    TooLong(usize),
}

/// A path as UML takes it as a ubd file: absolute (inside the jail every file keeps its host
/// path), UTF-8, and what [`uml::check_path`] allows.
pub fn ubd_path(path: &Path) -> Result<String, CmdlineError> {
    let s = path
        .to_str()
        .ok_or_else(|| CmdlineError::NotUtf8(path.to_path_buf()))?;
    uml::check_path(s)?;
    if !path.is_absolute() {
        return Err(CmdlineError::NotAbsolute(s.into()));
    }
    Ok(s.to_string())
}

/// `path` with `.` and `..` resolved by the text alone (`/a/b/../c` → `/a/c`). Inside the jail
/// a file has its host path and no other: a `..` would need the directory it climbs out of.
pub fn normalized(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

impl Machine {
    /// The machine with every path [`normalized`].
    pub fn normalized(&self) -> Machine {
        let mut m = self.clone();
        m.kernel = normalized(&m.kernel);
        m.root = normalized(&m.root);
        for d in &mut m.disks {
            d.path = normalized(&d.path);
        }
        m
    }
}

/// The kernel arguments, checked against UML's command line limit.
pub fn command_line(m: &Machine) -> Result<Vec<String>, CmdlineError> {
    let normal = m.normalized();
    let m = &normal;
    let mut a = vec![format!("mem={}M", m.memory_mib)];
    a.push(format!("ubd0r={}", ubd_path(&m.root)?));
    for d in &m.disks {
        if !(1..MAX_UBD).contains(&d.ubd) {
            return Err(CmdlineError::DataUbd(d.ubd));
        }
        let flag = if d.read_only { "r" } else { "" };
        a.push(format!("ubd{}{flag}={}", d.ubd, ubd_path(&d.path)?));
    }
    if let Some(tap) = &m.tap {
        a.push(tap_interface(0, tap));
    }
    a.extend(
        [
            "root=/dev/ubda",
            "ro",
            "init=/sbin/init",
            "con=null",
            "con0=null,fd:1",
        ]
        .map(String::from),
    );
    a.push(format!("con1=null,fd:{STATUS_FD}"));
    a.push("ssl=null".into());
    a.push(format!("umid={}", m.umid));
    a.push(format!("uml_dir={JAIL_TMP}"));
    if m.kernel_log {
        // Each message with its time since boot: what the log is asked for is mostly where a
        // slow boot spends its time.
        a.push("printk.time=1".into());
    } else {
        a.push("quiet".into());
    }
    if !m.needs_raid6 {
        a.push(SKIP_RAID6_BENCHMARK.into());
    }
    a.extend(m.extra.iter().cloned());
    if let Some(n) = m.config_ubd {
        a.push(format!("{}={}", wire::DEVICE_PARAM, ubd_device(n)));
    }
    let len = a.iter().map(|x| x.len() + 1).sum::<usize>();
    if len > uml::COMMAND_LINE_SIZE {
        return Err(CmdlineError::TooLong(len));
    }
    Ok(a)
}

/// The guest's interface `vec<index>` on the host TAP device `tap`, taking the host's
/// 64 KiB TCP frames (`gro=1`: see the module documentation).
pub fn tap_interface(index: u32, tap: &str) -> String {
    format!("vec{index}:transport=tap,ifname={tap},gro=1")
}

/// The mconsole socket inside the jail.
pub fn mconsole_in_jail(umid: &str) -> PathBuf {
    Path::new(JAIL_TMP).join(umid).join("mconsole")
}

/// A shell-like rendering of a command line, for people.
pub fn shown(kernel: &Path, args: &[String]) -> String {
    let mut s = kernel.display().to_string();
    for a in args {
        s.push(' ');
        s.push_str(a);
    }
    s
}

/// The host's name for a running UML kernel's processes (`comm`: the executable's file name,
/// cut to 15 bytes as the kernel does).
pub fn comm(kernel: &Path) -> String {
    let name = kernel
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    name.chars().take(15).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine() -> Machine {
        Machine {
            kernel: "/usr/bin/linux.uml".into(),
            root: "/img/root.img".into(),
            disks: vec![
                Disk {
                    ubd: 1,
                    path: "/d/data.img".into(),
                    read_only: false,
                },
                Disk {
                    ubd: 2,
                    path: "/d/logs.img".into(),
                    read_only: false,
                },
                Disk {
                    ubd: 3,
                    path: "/run/host-launch/dns1/config.img".into(),
                    read_only: true,
                },
            ],
            config_ubd: Some(3),
            tap: Some("tap-dns1".into()),
            memory_mib: 96,
            umid: "dns1-ab12".into(),
            kernel_log: false,
            needs_raid6: false,
            extra: Vec::new(),
        }
    }

    #[test]
    fn layout() {
        let args = command_line(&machine()).unwrap();
        assert_eq!(
            args.join(" "),
            "mem=96M ubd0r=/img/root.img ubd1=/d/data.img ubd2=/d/logs.img \
             ubd3r=/run/host-launch/dns1/config.img vec0:transport=tap,ifname=tap-dns1,gro=1 \
             root=/dev/ubda ro init=/sbin/init con=null con0=null,fd:1 con1=null,fd:3 ssl=null \
             umid=dns1-ab12 uml_dir=/.vmm quiet \
             initcall_blacklist=raid6_select_algo hostcontract_dev=/dev/ubdd"
        );
        assert_eq!(mconsole_in_jail("x-1"), Path::new("/.vmm/x-1/mconsole"));
    }

    #[test]
    fn tap_interfaces_take_the_hosts_large_frames() {
        // Without gro=1 the driver's receive buffers are the MTU's size and the host's
        // 64 KiB TCP frames are cut and dropped (tests/bulk_tcp.rs of host-launch).
        assert_eq!(
            tap_interface(1, "tap-x"),
            "vec1:transport=tap,ifname=tap-x,gro=1"
        );
    }

    #[test]
    fn no_network_no_vec_and_extra_arguments_last() {
        let mut m = machine();
        m.tap = None;
        m.kernel_log = true;
        m.config_ubd = None;
        m.extra = vec!["hostcontract=abc".into()];
        let args = command_line(&m).unwrap().join(" ");
        assert!(!args.contains("vec0") && !args.contains("quiet"), "{args}");
        assert!(args.contains("printk.time=1"), "{args}");
        assert!(args.ends_with("hostcontract=abc"), "{args}");
    }

    #[test]
    fn raid6_kept_for_btrfs() {
        let mut m = machine();
        assert!(command_line(&m)
            .unwrap()
            .contains(&SKIP_RAID6_BENCHMARK.to_string()));
        m.needs_raid6 = true;
        assert!(!command_line(&m).unwrap().join(" ").contains("raid6"));
    }

    #[test]
    fn too_long_and_unusable_paths() {
        let mut m = machine();
        m.root = PathBuf::from(format!("/{}", "a".repeat(5000)));
        assert!(command_line(&m)
            .unwrap_err()
            .to_string()
            .contains("aborts above 4096"));
        m.root = "/a,b.img".into();
        assert!(command_line(&m).unwrap_err().to_string().contains("','"));
        m.root = "rel.img".into();
        assert!(command_line(&m)
            .unwrap_err()
            .to_string()
            .contains("not absolute"));
    }

    #[test]
    fn paths_are_normalized() {
        assert_eq!(normalized(Path::new("/a/b/../c/./d")), Path::new("/a/c/d"));
        let mut m = machine();
        m.root = "/x/examples/../build/dns.img".into();
        assert!(command_line(&m)
            .unwrap()
            .contains(&"ubd0r=/x/build/dns.img".to_string()));
    }

    #[test]
    fn disks_are_within_uml_limits() {
        let mut m = machine();
        m.root = "/srv/a=b.img".into();
        assert!(command_line(&m)
            .unwrap()
            .contains(&"ubd0r=/srv/a=b.img".to_string()));
        m.disks.push(Disk {
            ubd: MAX_UBD,
            path: "/d.img".into(),
            read_only: false,
        });
        assert!(command_line(&m)
            .unwrap_err()
            .to_string()
            .contains("ubd16 is not"));
    }
}
