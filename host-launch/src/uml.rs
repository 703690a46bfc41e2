//! The UML command line. Pure: the same inputs give the same arguments, so `check` can show
//! exactly what `run` will start.
//!
//! Block devices: `ubd0r=` the root image (read-only, so many VMs share one image), the data
//! disks read-write at the numbers the merge gave them, the config device read-only after
//! them, named to the guest by `hostcontract_dev=`. Consoles: everything off (`con=null`),
//! then `con0` (the kernel and guest-init console) writes to fd 1 (the console log) and `con1`
//! (the guest's /dev/tty1, the status channel) writes to [`STATUS_FD`], a pipe the launcher
//! reads. The management console socket is `<uml_dir>/<umid>/mconsole`.
//!
//! Boot time: Debian's UML kernel has btrfs built in, which pulls in the RAID-6 P/Q library,
//! and that benchmarks five algorithms at every boot (about 170 ms each: 0.85 s of a 1.4 s
//! kernel boot). Appliances never use RAID-6 — only a multi-device btrfs would — so unless a
//! data disk is btrfs the command line skips that initcall ([`SKIP_RAID6_BENCHMARK`]); a
//! kernel without it ignores the parameter.

use contract::cmdline;
use std::path::{Path, PathBuf};

/// The descriptor UML's status console writes to (the write end of the launcher's pipe).
pub const STATUS_FD: i32 = 3;

/// Skips the RAID-6 algorithm benchmark (see the module documentation). Its function table
/// stays empty, so it is only given when no disk is btrfs, the one user of RAID-6 in a guest.
pub const SKIP_RAID6_BENCHMARK: &str = "initcall_blacklist=raid6_select_algo";

/// Whether the guest may need the kernel's RAID-6 code: a btrfs data disk.
pub fn needs_raid6(c: &contract::Contract) -> bool {
    c.mounts.disks.iter().any(|d| d.fs_type == "btrfs")
}

/// Everything the command line depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UmlConfig {
    pub image: PathBuf,
    /// (ubd number, host file) of each data disk.
    pub disks: Vec<(usize, PathBuf)>,
    pub config_ubd: usize,
    pub config_image: PathBuf,
    pub tap: Option<String>,
    pub memory_mib: u32,
    pub umid: String,
    pub uml_dir: PathBuf,
    /// Show the kernel's informational messages on the console (default: `quiet`).
    pub kernel_log: bool,
    /// Whether a data disk may need RAID-6 (btrfs): keeps the kernel's RAID-6 setup.
    pub needs_raid6: bool,
}

fn path_arg(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// The guest device of the config device.
pub fn config_device(cfg: &UmlConfig) -> String {
    crate::merge::ubd_device(cfg.config_ubd)
}

/// The kernel arguments, checked against UML's command line limit.
pub fn command_line(cfg: &UmlConfig) -> Result<Vec<String>, String> {
    let mut a = vec![format!("mem={}M", cfg.memory_mib)];
    a.push(format!("ubd0r={}", path_arg(&cfg.image)));
    for (n, p) in &cfg.disks {
        a.push(format!("ubd{n}={}", path_arg(p)));
    }
    a.push(format!(
        "ubd{}r={}",
        cfg.config_ubd,
        path_arg(&cfg.config_image)
    ));
    if let Some(tap) = &cfg.tap {
        a.push(format!("vec0:transport=tap,ifname={tap}"));
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
    a.push(format!("umid={}", cfg.umid));
    a.push(format!("uml_dir={}", path_arg(&cfg.uml_dir)));
    if !cfg.kernel_log {
        a.push("quiet".into());
    }
    if !cfg.needs_raid6 {
        a.push(SKIP_RAID6_BENCHMARK.into());
    }
    a.push(format!("{}={}", cmdline::DEVICE_PARAM, config_device(cfg)));
    let len = a.iter().map(|x| x.len() + 1).sum::<usize>();
    if len > cmdline::UML_COMMAND_LINE_SIZE {
        return Err(format!(
            "the UML command line would be {len} bytes; UML aborts above {}: use shorter paths",
            cmdline::UML_COMMAND_LINE_SIZE
        ));
    }
    Ok(a)
}

/// The mconsole socket UML creates for `umid` under `uml_dir`.
pub fn mconsole_socket(uml_dir: &Path, umid: &str) -> PathBuf {
    uml_dir.join(umid).join("mconsole")
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
pub fn comm(kernel: &std::path::Path) -> String {
    let name = kernel
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    name.chars().take(15).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> UmlConfig {
        UmlConfig {
            image: "/img/root.img".into(),
            disks: vec![(1, "/d/data.img".into()), (2, "/d/logs.img".into())],
            config_ubd: 3,
            config_image: "/run/host-launch/dns1/config.img".into(),
            tap: Some("tap-dns1".into()),
            memory_mib: 96,
            umid: "dns1-ab12".into(),
            uml_dir: "/run/host-launch/dns1/uml".into(),
            kernel_log: false,
            needs_raid6: false,
        }
    }

    #[test]
    fn layout() {
        let args = command_line(&cfg()).unwrap();
        assert_eq!(
            args.join(" "),
            "mem=96M ubd0r=/img/root.img ubd1=/d/data.img ubd2=/d/logs.img \
             ubd3r=/run/host-launch/dns1/config.img vec0:transport=tap,ifname=tap-dns1 \
             root=/dev/ubda ro init=/sbin/init con=null con0=null,fd:1 con1=null,fd:3 ssl=null \
             umid=dns1-ab12 uml_dir=/run/host-launch/dns1/uml quiet \
             initcall_blacklist=raid6_select_algo hostcontract_dev=/dev/ubdd"
        );
        assert_eq!(
            mconsole_socket(Path::new("/u"), "x-1"),
            Path::new("/u/x-1/mconsole")
        );
    }

    #[test]
    fn no_network_no_vec() {
        let mut c = cfg();
        c.tap = None;
        c.kernel_log = true;
        let args = command_line(&c).unwrap().join(" ");
        assert!(!args.contains("vec0") && !args.contains("quiet"), "{args}");
    }

    #[test]
    fn raid6_kept_for_btrfs() {
        let mut c = cfg();
        assert!(command_line(&c)
            .unwrap()
            .contains(&SKIP_RAID6_BENCHMARK.to_string()));
        c.needs_raid6 = true;
        assert!(!command_line(&c).unwrap().join(" ").contains("raid6"));
    }

    #[test]
    fn too_long() {
        let mut c = cfg();
        c.image = PathBuf::from(format!("/{}", "a".repeat(5000)));
        assert!(command_line(&c).unwrap_err().contains("aborts above 4096"));
    }
}
