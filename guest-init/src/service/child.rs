//! The child, between `fork` and `execve`: raw system calls only, no allocation, no locks,
//! no panics (see the module documentation of [`crate::service`]).

use super::prepared::{CapHeader, ChildRawFds, Prepared, Rlimit64, CAP_V3};
use super::report::{encode_report, Step};
use nix::errno::Errno;
use std::convert::Infallible;
use std::os::fd::RawFd;

pub(super) type ChildResult = Result<(), (Step, libc::c_int)>;

/// A raw call's return value: negative means failure with errno set.
pub(super) fn check(step: Step, rc: impl Into<i64>) -> ChildResult {
    if rc.into() < 0 {
        Err((step, Errno::last_raw()))
    } else {
        Ok(())
    }
}

// On 32-bit x86 and arm the plain uid/gid system calls take 16-bit ids; the "32" variants
// are the real ones. Raw system calls are used instead of libc's wrappers because glibc and
// musl implement set*id by signalling every thread of the process, machinery that must not
// be relied on in a forked child; a raw call changes exactly the calling (only) thread.
#[cfg(any(target_arch = "x86", target_arch = "arm"))]
pub(super) mod sys {
    pub const SETGROUPS: libc::c_long = libc::SYS_setgroups32;
    pub const SETRESGID: libc::c_long = libc::SYS_setresgid32;
    pub const SETRESUID: libc::c_long = libc::SYS_setresuid32;
}
#[cfg(not(any(target_arch = "x86", target_arch = "arm")))]
pub(super) mod sys {
    pub const SETGROUPS: libc::c_long = libc::SYS_setgroups;
    pub const SETRESGID: libc::c_long = libc::SYS_setresgid;
    pub const SETRESUID: libc::c_long = libc::SYS_setresuid;
}

/// The child's whole life: set up, exec; on failure report and exit. Never returns, so no
/// destructor of PID 1's data ever runs in the child.
pub(super) fn run_child(prep: &Prepared, fds: &ChildRawFds) -> ! {
    let (step, errno) = match child_setup(prep, fds) {
        Ok(never) => match never {},
        Err(failure) => failure,
    };
    let report = encode_report(step, errno);
    // SAFETY: write and _exit are async-signal-safe; `report` lives on this stack. A failed
    // write cannot be reported anywhere; the parent then sees EOF and a child exiting 127.
    unsafe {
        libc::write(fds.report, report.as_ptr().cast(), report.len());
        libc::_exit(127)
    }
}

pub(super) fn child_setup(
    prep: &Prepared,
    fds: &ChildRawFds,
) -> Result<Infallible, (Step, libc::c_int)> {
    reset_signals()?;
    // SAFETY: setsid has no preconditions; the child of fork is never a group leader.
    check(Step::Setsid, unsafe { libc::setsid() })?;
    place_fds(fds)?;
    close_other_fds(prep, fds)?;
    // SAFETY: umask cannot fail.
    unsafe { libc::umask(prep.umask) };
    // Before the uid change, while raising a hard limit is still allowed (as runc does).
    set_rlimits(prep)?;
    // Also while root: lowering the score needs CAP_SYS_RESOURCE.
    set_oom_score_adj(prep)?;
    set_credentials(prep)?;
    set_capabilities(prep)?;
    // chdir after the uid change: the service must be able to reach its own workdir, and
    // a permission problem shows up here, named, instead of later inside the service.
    // SAFETY: workdir is a NUL-terminated string prepared before fork.
    check(Step::Chdir, unsafe { libc::chdir(prep.workdir.as_ptr()) })?;
    // No setuid binary or file capability can give the service (or anything it runs) more
    // than it has now, unless the contract says otherwise (version 3, OCI's
    // `noNewPrivileges: false`). Ambient capabilities still pass through exec.
    if prep.no_new_privs {
        // SAFETY: prctl with integer arguments only.
        check(Step::NoNewPrivs, unsafe {
            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1 as libc::c_ulong, 0, 0, 0)
        })?;
    }
    // execve, not execvpe: argv[0] is absolute and no PATH lookup is wanted.
    // SAFETY: all three pointers come from the prepared service: NUL-terminated strings and
    // null-terminated pointer arrays that outlive this call.
    unsafe {
        libc::execve(
            prep.path.as_ptr(),
            prep.argv_ptrs.as_ptr(),
            prep.env_ptrs.as_ptr(),
        )
    };
    Err((Step::Exec, Errno::last_raw()))
}

/// The contract's resource limits. prlimit64 as a raw call: musl's setrlimit signals every
/// thread (like its set*id), which a forked child must not rely on.
pub(super) fn set_rlimits(prep: &Prepared) -> ChildResult {
    for (resource, limit) in &prep.rlimits {
        // SAFETY: prlimit64 on this process (pid 0) reads one struct rlimit64 prepared
        // before fork; the old-limit pointer is null.
        check(Step::Rlimit, unsafe {
            libc::syscall(
                libc::SYS_prlimit64,
                0 as libc::c_long,
                libc::c_long::from(*resource),
                limit as *const Rlimit64,
                std::ptr::null_mut::<Rlimit64>(),
            )
        })?;
    }
    Ok(())
}

/// The contract's `oom_score_adj`, written to /proc/self/oom_score_adj (text prepared before
/// the clone); children of the service inherit it.
pub(super) fn set_oom_score_adj(prep: &Prepared) -> ChildResult {
    let Some(text) = &prep.oom_score_adj else {
        return Ok(());
    };
    // SAFETY: open of a NUL-terminated literal path.
    let fd = unsafe {
        libc::open(
            c"/proc/self/oom_score_adj".as_ptr(),
            libc::O_WRONLY | libc::O_CLOEXEC,
        )
    };
    check(Step::OomScoreAdj, fd)?;
    // SAFETY: write of a byte buffer prepared before the clone, within its length.
    let n = unsafe { libc::write(fd, text.as_ptr().cast(), text.len()) };
    let written = check(Step::OomScoreAdj, n as i64);
    // SAFETY: close of the descriptor opened above.
    unsafe { libc::close(fd) };
    written
}

/// Size of the kernel's signal set, the `sigsetsize` argument of rt_sigaction and
/// rt_sigprocmask: 64 signals everywhere except MIPS (128).
#[cfg(not(any(target_arch = "mips", target_arch = "mips64")))]
pub(super) const KERNEL_SIGSET_SIZE: usize = 8;
#[cfg(any(target_arch = "mips", target_arch = "mips64"))]
pub(super) const KERNEL_SIGSET_SIZE: usize = 16;

/// Highest signal number of the kernel (`_NSIG`): one bit per signal of the kernel's set.
#[cfg(not(any(target_arch = "mips", target_arch = "mips64")))]
pub(super) const KERNEL_NSIG: libc::c_int = 64;
#[cfg(any(target_arch = "mips", target_arch = "mips64"))]
pub(super) const KERNEL_NSIG: libc::c_int = 128;

/// An all-zero kernel `struct sigaction` (handler SIG_DFL, no flags, empty mask) or an
/// all-zero kernel signal set, large enough for every architecture's layout. All-zero is
/// what we want in every field, so the per-architecture field order does not matter.
pub(super) const ZERO_KERNEL_STRUCT: [u64; 8] = [0; 8];

/// Default disposition for every signal, then an empty mask (see `SignalsBlocked`).
///
/// Handlers would be reset by execve anyway, but *ignored* signals survive exec (PID 1
/// ignores some, the Rust runtime ignores SIGPIPE, and whoever started us may have ignored
/// more), and until exec a handler of PID 1 could run in the child. Raw system calls rather
/// than libc's sigaction/sigprocmask: libc refuses to touch the real-time signals it reserves
/// for itself (32 and 33 in glibc), and an ignored signal 32 would then reach the service.
/// Errors of rt_sigaction are expected and ignored: SIGKILL and SIGSTOP cannot be changed.
pub(super) fn reset_signals() -> ChildResult {
    let zero = ZERO_KERNEL_STRUCT;
    for sig in 1..=KERNEL_NSIG {
        // SAFETY: rt_sigaction reads a zeroed buffer larger than any kernel sigaction.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                libc::c_long::from(sig),
                zero.as_ptr(),
                std::ptr::null_mut::<u64>(),
                KERNEL_SIGSET_SIZE,
            )
        };
    }
    // SAFETY: rt_sigprocmask reads a zeroed set of at least KERNEL_SIGSET_SIZE bytes.
    check(Step::SigMask, unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::c_long::from(libc::SIG_SETMASK),
            zero.as_ptr(),
            std::ptr::null_mut::<u64>(),
            KERNEL_SIGSET_SIZE,
        )
    })
}

/// stdin, stdout, stderr and the notify fd onto their numbers. The sources are all above
/// the targets (see `Fds::new`), and dup2 clears close-on-exec on the new fd.
pub(super) fn place_fds(fds: &ChildRawFds) -> ChildResult {
    // SAFETY: dup2 on fds that are open in this process.
    check(Step::Stdin, unsafe { libc::dup2(fds.stdin, 0) })?;
    // SAFETY: as above.
    check(Step::Stdout, unsafe { libc::dup2(fds.stdout, 1) })?;
    // SAFETY: as above.
    check(Step::Stderr, unsafe { libc::dup2(fds.stderr, 2) })?;
    if let Some((source, target)) = fds.notify {
        // SAFETY: as above; `target` is the contract's notify fd, above 2.
        check(Step::NotifyFd, unsafe { libc::dup2(source, target) })?;
    }
    Ok(())
}

/// Closes every fd above 2 except the notify fd and the report pipe (which exec closes).
/// PID 1 opens everything close-on-exec, but a leaked fd (a console, a disk, the contract)
/// in the service would be a hole, so this does not rely on it.
pub(super) fn close_other_fds(prep: &Prepared, fds: &ChildRawFds) -> ChildResult {
    // The notify target is below the report fd (see `Fds::new`), so the kept fds are sorted.
    let keep = [fds.notify.map_or(-1, |(_, t)| t), fds.report];
    let mut from: RawFd = 3;
    for k in keep {
        if k >= from {
            // Saturating: a panic (debug overflow check) in the forked child must be impossible.
            close_range(from, k.saturating_sub(1), prep.fd_limit)?;
            from = k.saturating_add(1);
        }
    }
    close_range(from, RawFd::MAX, prep.fd_limit)
}

/// Closes fds `first..=last`: close_range(2) (Linux 5.9), or one by one up to `limit`.
pub(super) fn close_range(first: RawFd, last: RawFd, limit: RawFd) -> ChildResult {
    if first > last {
        return Ok(());
    }
    // SAFETY: close_range takes plain integers.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first.unsigned_abs(),
            last.unsigned_abs(),
            0 as libc::c_uint,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    if Errno::last_raw() != libc::ENOSYS {
        return Err((Step::CloseFds, Errno::last_raw()));
    }
    let mut fd = first;
    while fd <= last && fd < limit {
        // SAFETY: closing a number that may or may not be open; EBADF is fine.
        unsafe { libc::close(fd) };
        fd += 1;
    }
    Ok(())
}

/// Groups, gid, uid, in that order: setgroups and setresgid need CAP_SETGID, which is gone
/// once the uid is no longer 0. The bounding set is reduced first, while CAP_SETPCAP is
/// still effective, and PR_SET_KEEPCAPS keeps the permitted set across the uid change (the
/// flag itself is cleared by execve).
pub(super) fn set_credentials(prep: &Prepared) -> ChildResult {
    for cap in 0..=prep.cap_last_cap {
        if prep.caps & 1u64.checked_shl(cap).unwrap_or(0) == 0 {
            // SAFETY: prctl with integer arguments only.
            check(Step::BoundingDrop, unsafe {
                libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0)
            })?;
        }
    }
    // SAFETY: prctl with integer arguments only.
    check(Step::KeepCaps, unsafe {
        libc::prctl(libc::PR_SET_KEEPCAPS, 1 as libc::c_ulong, 0, 0, 0)
    })?;
    // SAFETY: the group list was prepared before fork; its length matches the pointer.
    check(Step::SetGroups, unsafe {
        libc::syscall(sys::SETGROUPS, prep.groups.len(), prep.groups.as_ptr())
    })?;
    // Passed as longs, the width a system call argument has.
    let (g, u) = (libc::c_long::from(prep.gid), libc::c_long::from(prep.uid));
    // SAFETY: integer arguments only.
    check(Step::SetResGid, unsafe {
        libc::syscall(sys::SETRESGID, g, g, g)
    })?;
    // SAFETY: integer arguments only.
    check(Step::SetResUid, unsafe {
        libc::syscall(sys::SETRESUID, u, u, u)
    })
}

/// Permitted, effective and inheritable set to exactly the kept capabilities, then the
/// ambient set: that is what makes a non-root service still hold them after execve.
pub(super) fn set_capabilities(prep: &Prepared) -> ChildResult {
    let mut header = CapHeader {
        version: CAP_V3,
        pid: 0,
    };
    let data = prep.cap_data();
    // SAFETY: header and two data structs, the v3 layout, live on this stack.
    check(Step::CapSet, unsafe {
        libc::syscall(
            libc::SYS_capset,
            &mut header as *mut CapHeader,
            data.as_ptr(),
        )
    })?;
    // SAFETY: prctl with integer arguments only.
    check(Step::AmbientClear, unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    })?;
    for cap in 0..=prep.cap_last_cap {
        if prep.caps & 1u64.checked_shl(cap).unwrap_or(0) != 0 {
            // SAFETY: prctl with integer arguments only.
            check(Step::AmbientRaise, unsafe {
                libc::prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                    libc::c_ulong::from(cap),
                    0 as libc::c_ulong,
                    0 as libc::c_ulong,
                )
            })?;
        }
    }
    Ok(())
}
