//! The report pipe's message: which step of the child failed, and its errno. The child
//! writes it with one `write` (8 bytes, atomic on a pipe); the parent reads it, or end of file
//! once the exec succeeded.

use nix::errno::Errno;
use std::os::fd::{AsRawFd, OwnedFd};

/// The steps of the child, in order; the number goes through the report pipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub(super) enum Step {
    SigMask = 0,
    Setsid,
    Stdin,
    Stdout,
    Stderr,
    NotifyFd,
    CloseFds,
    Rlimit,
    OomScoreAdj,
    BoundingDrop,
    KeepCaps,
    SetGroups,
    SetResGid,
    SetResUid,
    CapSet,
    AmbientClear,
    AmbientRaise,
    Chdir,
    NoNewPrivs,
    Exec,
    Unknown,
}

impl Step {
    pub(super) const ALL: [Step; 21] = [
        Step::SigMask,
        Step::Setsid,
        Step::Stdin,
        Step::Stdout,
        Step::Stderr,
        Step::NotifyFd,
        Step::CloseFds,
        Step::Rlimit,
        Step::OomScoreAdj,
        Step::BoundingDrop,
        Step::KeepCaps,
        Step::SetGroups,
        Step::SetResGid,
        Step::SetResUid,
        Step::CapSet,
        Step::AmbientClear,
        Step::AmbientRaise,
        Step::Chdir,
        Step::NoNewPrivs,
        Step::Exec,
        Step::Unknown,
    ];

    pub(super) fn from_u32(n: u32) -> Step {
        Step::ALL.get(n as usize).copied().unwrap_or(Step::Unknown)
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            Step::SigMask => "sigprocmask",
            Step::Setsid => "setsid",
            Step::Stdin => "dup2 /dev/null to stdin",
            Step::Stdout => "dup2 stdout pipe",
            Step::Stderr => "dup2 stderr pipe",
            Step::NotifyFd => "dup2 readiness fd",
            Step::CloseFds => "close_range",
            Step::Rlimit => "prlimit64",
            Step::OomScoreAdj => "write /proc/self/oom_score_adj",
            Step::BoundingDrop => "PR_CAPBSET_DROP",
            Step::KeepCaps => "PR_SET_KEEPCAPS",
            Step::SetGroups => "setgroups",
            Step::SetResGid => "setresgid",
            Step::SetResUid => "setresuid",
            Step::CapSet => "capset",
            Step::AmbientClear => "PR_CAP_AMBIENT_CLEAR_ALL",
            Step::AmbientRaise => "PR_CAP_AMBIENT_RAISE",
            Step::Chdir => "chdir",
            Step::NoNewPrivs => "PR_SET_NO_NEW_PRIVS",
            Step::Exec => "execve",
            Step::Unknown => "unknown step",
        }
    }
}

/// Waits for the child's verdict: `None` once the exec succeeded (end of file, the kernel
/// closed the close-on-exec write end), or the failing step and its errno.
pub(super) fn read_report(fd: &OwnedFd) -> Result<Option<(Step, Errno)>, Errno> {
    let mut buf = [0u8; 8];
    let mut got = 0;
    while got < buf.len() {
        let rest = buf.get_mut(got..).unwrap_or_default();
        match nix::unistd::read(fd.as_raw_fd(), rest) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
    match got {
        0 => Ok(None),
        8 => {
            let (step, errno) = decode_report(buf);
            Ok(Some((step, errno)))
        }
        // Writes of 8 bytes to a pipe are atomic, so this means a broken child.
        _ => Err(Errno::EIO),
    }
}

pub(super) fn encode_report(step: Step, errno: libc::c_int) -> [u8; 8] {
    let mut buf = [0u8; 8];
    let (a, b) = buf.split_at_mut(4);
    a.copy_from_slice(&(step as u32).to_ne_bytes());
    b.copy_from_slice(&errno.to_ne_bytes());
    buf
}

pub(super) fn decode_report(buf: [u8; 8]) -> (Step, Errno) {
    let [a, b, c, d, e, f, g, h] = buf;
    let step = Step::from_u32(u32::from_ne_bytes([a, b, c, d]));
    let errno = Errno::from_raw(i32::from_ne_bytes([e, f, g, h]));
    (step, errno)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_round_trip() {
        for step in Step::ALL {
            let (s, e) = decode_report(encode_report(step, libc::EPERM));
            assert_eq!((s, e), (step, Errno::EPERM));
        }
        assert_eq!(Step::from_u32(999), Step::Unknown);
    }
}
