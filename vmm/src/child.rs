//! The child's side of a start, between `clone3` and `exec`: enter the network namespace,
//! hand over the TAP device, pin to a core, build the jail and enter it, set the limits, drop
//! every privilege, wire the console and status channel, and execute UML. The launcher has
//! threads, so nothing here allocates: every function only makes system calls on what
//! [`crate::jail::setup`] and [`crate::spawn::start`] prepared. A failed step is reported by
//! number and errno on the set-up pipe.

use crate::cmdline::{REQUESTS_FD, STATUS_FD};
use crate::jail::{self, Jail, JailSetup};
use std::ffi::{c_char, CString};
use std::os::fd::{AsRawFd, RawFd};

/// The steps of the child, named in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum Step {
    NetNs = 1,
    Tap,
    Cpu,
    Private,
    Root,
    Dirs,
    Bind,
    Remount,
    Tmp,
    Devices,
    ReadOnlyRoot,
    PivotRoot,
    Limits,
    Capabilities,
    Ids,
    Stdio,
    Exec,
}

const STEPS: [(Step, &str); 17] = [
    (Step::NetNs, "entering the network namespace"),
    (Step::Tap, "handing the TAP device to the VM's uid"),
    (Step::Cpu, "pinning to a CPU"),
    (Step::Private, "making the mount namespace private"),
    (Step::Root, "mounting the jail's root tmpfs"),
    (Step::Dirs, "making the jail's directories"),
    (Step::Bind, "binding a file into the jail"),
    (Step::Remount, "making a bound file read-only"),
    (Step::Tmp, "mounting the jail's /tmp"),
    (Step::Devices, "making the jail's device nodes"),
    (Step::ReadOnlyRoot, "making the jail's root read-only"),
    (Step::PivotRoot, "entering the jail (pivot_root)"),
    (Step::Limits, "setting resource limits"),
    (Step::Capabilities, "dropping capabilities"),
    (Step::Ids, "becoming the VM's uid and gid"),
    (Step::Stdio, "wiring the console and status channel"),
    (Step::Exec, "executing the kernel"),
];

pub(crate) fn step_name(n: u32) -> &'static str {
    STEPS
        .iter()
        .find(|(s, _)| *s as u32 == n)
        .map(|(_, t)| *t)
        .unwrap_or("an unknown step")
}

// Linux's TUN ioctls (include/uapi/linux/if_tun.h).
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const TUNSETOWNER: libc::c_ulong = 0x4004_54cc;
const TUNSETGROUP: libc::c_ulong = 0x4004_54ce;
const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;
const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;

/// What the child uses besides the jail set-up: all made before the clone.
pub(crate) struct Child<'a> {
    pub(crate) setup: &'a JailSetup,
    pub(crate) jail: &'a Jail,
    pub(crate) kernel: &'a CString,
    pub(crate) argv: &'a [*const c_char],
    pub(crate) envp: &'a [*const c_char],
    pub(crate) console: RawFd,
    pub(crate) status: RawFd,
    pub(crate) report: RawFd,
}

type Failure = (Step, i32);

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn check(step: Step, rc: libc::c_long) -> Result<(), Failure> {
    if rc < 0 {
        Err((step, errno()))
    } else {
        Ok(())
    }
}

/// Hands the persistent TAP device to the VM's uid: attach as root, set owner and group.
///
/// # Safety
/// Called in the child only; makes system calls on its own buffers.
unsafe fn give_tap(name: &[u8; libc::IFNAMSIZ], uid: u32, gid: u32) -> Result<(), Failure> {
    let fd = libc::open(c"/dev/net/tun".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
    check(Step::Tap, libc::c_long::from(fd))?;
    let mut ifr = [0u8; 40];
    ifr[..libc::IFNAMSIZ].copy_from_slice(name);
    ifr[16..18].copy_from_slice(&(IFF_TAP | IFF_NO_PI).to_ne_bytes());
    let r = (|| {
        check(
            Step::Tap,
            libc::c_long::from(libc::ioctl(fd, TUNSETIFF as _, ifr.as_mut_ptr())),
        )?;
        check(
            Step::Tap,
            libc::c_long::from(libc::ioctl(fd, TUNSETOWNER as _, libc::c_ulong::from(uid))),
        )?;
        check(
            Step::Tap,
            libc::c_long::from(libc::ioctl(fd, TUNSETGROUP as _, libc::c_ulong::from(gid))),
        )
    })();
    libc::close(fd);
    r
}

/// Builds the jail at the set-up's root and enters it.
///
/// # Safety
/// Called in the child only, between clone and exec.
unsafe fn enter_jail(c: &Child) -> Result<(), Failure> {
    let p = c.setup;
    let none = std::ptr::null::<c_char>();
    check(
        Step::Private,
        libc::c_long::from(libc::mount(
            none,
            c"/".as_ptr(),
            none,
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )),
    )?;
    check(
        Step::Root,
        libc::c_long::from(libc::mount(
            c"tmpfs".as_ptr(),
            p.root.as_ptr(),
            c"tmpfs".as_ptr(),
            libc::MS_NOSUID,
            p.root_options.as_ptr().cast(),
        )),
    )?;
    check(Step::Root, libc::c_long::from(libc::chdir(p.root.as_ptr())))?;
    libc::umask(0o022);
    for d in &p.dirs {
        check(
            Step::Dirs,
            libc::c_long::from(libc::mkdir(d.as_ptr(), 0o755)),
        )?;
    }
    for b in &p.binds {
        let mp = libc::mknod(b.target.as_ptr(), libc::S_IFREG | 0o600, 0);
        check(Step::Bind, libc::c_long::from(mp))?;
        let rc = libc::mount(
            b.source.as_ptr(),
            b.target.as_ptr(),
            none,
            libc::MS_BIND,
            std::ptr::null(),
        );
        check(Step::Bind, libc::c_long::from(rc))?;
        let rc = libc::mount(none, b.target.as_ptr(), none, b.flags, std::ptr::null());
        check(Step::Remount, libc::c_long::from(rc))?;
    }
    let tmp_flags = libc::MS_NOSUID | libc::MS_NODEV;
    let rc = libc::mount(
        c"tmpfs".as_ptr(),
        p.tmp.as_ptr(),
        c"tmpfs".as_ptr(),
        tmp_flags,
        p.tmp_options.as_ptr().cast(),
    );
    check(Step::Tmp, libc::c_long::from(rc))?;
    make_devices(c.jail.uid, c.jail.gid)?;
    make_disk_nodes(&p.nodes, c.jail.uid, c.jail.gid)?;
    let ro = libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | libc::MS_NOSUID;
    let rc = libc::mount(none, c".".as_ptr(), none, ro, std::ptr::null());
    check(Step::ReadOnlyRoot, libc::c_long::from(rc))?;
    // pivot_root(".", "."): the old root ends up on top of the new one and is detached at
    // once, so no directory for it is needed in the (read-only) jail.
    let rc = libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr());
    check(Step::PivotRoot, rc)?;
    check(
        Step::PivotRoot,
        libc::c_long::from(libc::umount2(c".".as_ptr(), libc::MNT_DETACH)),
    )?;
    check(
        Step::PivotRoot,
        libc::c_long::from(libc::chdir(c"/".as_ptr())),
    )
}

/// `/dev/null`, `/dev/random`, `/dev/urandom` and a `/dev/net/tun` that only the VM's uid may
/// open. UML's hwrng driver reads the host's `/dev/random`: without it the guest's random pool
/// waits tens of seconds for entropy, and servers that seed from `getrandom()` (NSD through
/// OpenSSL) hang that long at start.
///
/// # Safety
/// Called in the child only, with the jail's root as the working directory.
unsafe fn make_devices(uid: u32, gid: u32) -> Result<(), Failure> {
    let nodes: [(&std::ffi::CStr, libc::mode_t, u32, u32); 4] = [
        (c"dev/null", 0o666, 1, 3),
        (c"dev/random", 0o444, 1, 8),
        (c"dev/urandom", 0o444, 1, 9),
        (c"dev/net/tun", 0o600, 10, 200),
    ];
    // The modes as given: the inherited umask would take /dev/null's write bits.
    let old = libc::umask(0);
    for (path, mode, major, minor) in nodes {
        let dev = libc::makedev(major, minor);
        check(
            Step::Devices,
            libc::c_long::from(libc::mknod(path.as_ptr(), libc::S_IFCHR | mode, dev)),
        )?;
    }
    libc::umask(old);
    check(
        Step::Devices,
        libc::c_long::from(libc::chown(c"dev/net/tun".as_ptr(), uid, gid)),
    )
}

/// Each block device given as a disk: a node of its own, only the VM's uid may open it.
///
/// # Safety
/// Called in the child only, with the jail's root as the working directory.
unsafe fn make_disk_nodes(nodes: &[jail::Node], uid: u32, gid: u32) -> Result<(), Failure> {
    let old = libc::umask(0);
    for n in nodes {
        let rc = libc::mknod(n.target.as_ptr(), libc::S_IFBLK | n.mode, n.rdev);
        check(Step::Devices, libc::c_long::from(rc))?;
        check(
            Step::Devices,
            libc::c_long::from(libc::chown(n.target.as_ptr(), uid, gid)),
        )?;
    }
    libc::umask(old);
    Ok(())
}

/// Limits at the jail's values, never above the hard limits this process has (raising them
/// needs CAP_SYS_RESOURCE, which a host may not give).
///
/// # Safety
/// Called in the child only.
unsafe fn set_limits(l: &jail::Limits) -> Result<(), Failure> {
    let wanted = [
        (libc::RLIMIT_NOFILE, l.open_files),
        (libc::RLIMIT_NPROC, l.processes),
        (libc::RLIMIT_FSIZE, l.file_size),
        (libc::RLIMIT_CORE, 0),
    ];
    for (res, value) in wanted {
        let mut cur = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        check(
            Step::Limits,
            libc::c_long::from(libc::getrlimit(res, &mut cur)),
        )?;
        let v = value.min(cur.rlim_max);
        let new = libc::rlimit {
            rlim_cur: v,
            rlim_max: v,
        };
        check(Step::Limits, libc::c_long::from(libc::setrlimit(res, &new)))?;
    }
    Ok(())
}

/// Every capability out of the bounding and ambient sets, then the VM's ids (which empties
/// the permitted and effective sets), then no_new_privs.
///
/// # Safety
/// Called in the child only.
unsafe fn drop_privileges(uid: u32, gid: u32) -> Result<(), Failure> {
    for cap in 0..=63 {
        if libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno() != libc::EINVAL {
            return Err((Step::Capabilities, errno()));
        }
    }
    check(
        Step::Capabilities,
        libc::c_long::from(libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        )),
    )?;
    // The system calls themselves, not glibc's wrappers: those change the ids of every thread
    // glibc believes the process has (setxid broadcast, under its thread-list lock), and the
    // cloned child inherited the parent's list without its threads; a lock held at clone time
    // hung the child for good (seen once in a test run).
    let groups = [gid];
    check(
        Step::Ids,
        libc::syscall(libc::SYS_setgroups, 1 as libc::c_long, groups.as_ptr()),
    )?;
    check(Step::Ids, libc::syscall(libc::SYS_setresgid, gid, gid, gid))?;
    check(Step::Ids, libc::syscall(libc::SYS_setresuid, uid, uid, uid))?;
    // The parent-death signal is cleared by a change of uid, so it is set after it.
    check(
        Step::Ids,
        libc::c_long::from(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0)),
    )?;
    check(
        Step::Capabilities,
        libc::c_long::from(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)),
    )
}

/// fd 0 is /dev/null, 1 and 2 the console pipe, 3 the status pipe, 4 the requests FIFO if
/// the jail has one; nothing else survives the exec.
///
/// # Safety
/// Called in the child only, inside the jail.
unsafe fn wire_stdio(c: &Child) -> Result<(), Failure> {
    let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY);
    check(Step::Stdio, libc::c_long::from(null))?;
    for (from, to) in [
        (null, 0),
        (c.console, 1),
        (c.console, 2),
        (c.status, STATUS_FD),
    ] {
        check(Step::Stdio, libc::c_long::from(libc::dup2(from, to)))?;
    }
    // The last descriptor kept (small non-negative constants: the conversions never fail).
    let mut keep = libc::c_uint::try_from(STATUS_FD).unwrap_or(3);
    if let Some(r) = &c.setup.requests {
        check(
            Step::Stdio,
            libc::c_long::from(libc::dup2(r.as_raw_fd(), REQUESTS_FD)),
        )?;
        keep = libc::c_uint::try_from(REQUESTS_FD).unwrap_or(4);
    }
    let rc = libc::syscall(
        libc::SYS_close_range,
        keep + 1,
        libc::c_uint::MAX,
        CLOSE_RANGE_CLOEXEC,
    );
    check(Step::Stdio, rc)?;
    let mut none: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut none);
    libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
    // Rust ignores SIGPIPE; UML expects the default, as any program does.
    libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    Ok(())
}

/// The child's whole life: set up, execute UML, or report the failed step and exit.
///
/// # Safety
/// Called in the child only, right after clone3; never returns.
pub(crate) unsafe fn child_main(c: &Child) -> ! {
    let failure = (|| -> Result<(), Failure> {
        if let Some(ns) = &c.setup.netns {
            check(
                Step::NetNs,
                libc::c_long::from(libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET)),
            )?;
        }
        for tap in &c.setup.taps {
            give_tap(tap, c.jail.uid, c.jail.gid)?;
        }
        if let Some(cpu) = c.jail.cpu {
            crate::cpu::pin_self(cpu).map_err(|e| (Step::Cpu, e.raw_os_error().unwrap_or(0)))?;
        }
        no_address_randomization();
        libc::setsid();
        enter_jail(c)?;
        set_limits(&c.jail.limits)?;
        drop_privileges(c.jail.uid, c.jail.gid)?;
        wire_stdio(c)?;
        libc::execve(c.kernel.as_ptr(), c.argv.as_ptr(), c.envp.as_ptr());
        Err((Step::Exec, errno()))
    })();
    let (step, err) = failure.err().unwrap_or((Step::Exec, 0));
    let mut msg = [0u8; 8];
    msg[..4].copy_from_slice(&(step as u32).to_ne_bytes());
    msg[4..].copy_from_slice(&err.to_ne_bytes());
    libc::write(c.report, msg.as_ptr().cast(), msg.len());
    libc::_exit(127)
}

/// UML is started with host address-space randomization off (`personality(ADDR_NO_RANDOMIZE)`).
///
/// UML's physical memory starts at its own binary, and at boot it adds the gap between the end
/// of the binary and the host's (randomized) start of its heap to the memory it manages. On
/// x86-64 the host randomizes the heap start over 1 GiB, and the kernel's page array for the
/// gap (64 bytes per 4 KiB page, up to 16 MiB) is taken out of `mem=`. With `mem=32M` about
/// every second boot then ended in "Kernel panic - not syncing: System is deadlocked on
/// memory". Without randomization the gap is empty and every boot has the same memory. The
/// binary is not position-independent, so its text is at a fixed address anyway; the guest's
/// processes are laid out by the UML kernel, not by this host setting.
fn no_address_randomization() {
    // SAFETY: personality(0xffffffff) only reads the persona; setting it changes only how the
    // next exec lays out memory.
    unsafe {
        let persona = libc::personality(0xffff_ffff);
        if persona & libc::ADDR_NO_RANDOMIZE == 0 {
            // A negative persona is an error: leave it.
            if let Ok(p) = libc::c_ulong::try_from(persona | libc::ADDR_NO_RANDOMIZE) {
                libc::personality(p);
            }
        }
    }
}
