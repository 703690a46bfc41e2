//! The service prepared for `exec`: everything the child needs, allocated and checked before `fork`.

use super::error::{config_err, SpawnError};
use contract::names::Capability;
use contract::{Readiness, Service};
use std::ffi::CString;
use std::os::fd::RawFd;

/// Settings of [`spawn`](super::spawn()) that are not part of the contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpawnOptions {
    /// The highest capability number the running kernel knows. `None`: read
    /// `/proc/sys/kernel/cap_last_cap` (or, without /proc, ask the kernel cap by cap).
    pub cap_last_cap: Option<u32>,
    /// File mode creation mask of the service. Set explicitly so that whatever umask PID 1
    /// happens to run with never leaks into the service.
    pub umask: u32,
}

impl Default for SpawnOptions {
    fn default() -> Self {
        SpawnOptions {
            cap_last_cap: None,
            umask: 0o022,
        }
    }
}

/// The child's view: plain numbers, since the child must not run destructors.
pub(super) struct ChildRawFds {
    pub(super) stdin: RawFd,
    pub(super) stdout: RawFd,
    pub(super) stderr: RawFd,
    /// (source, target) of the notify pipe's write end.
    pub(super) notify: Option<(RawFd, RawFd)>,
    pub(super) report: RawFd,
}

/// `_LINUX_CAPABILITY_VERSION_3`: 64-bit capability sets in two 32-bit halves.
pub(super) const CAP_V3: u32 = 0x2008_0522;

/// `struct __user_cap_header_struct` (linux/capability.h).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub(super) struct CapHeader {
    pub(super) version: u32,
    pub(super) pid: libc::c_int,
}

/// `struct __user_cap_data_struct` (linux/capability.h); v3 uses two of them.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub(super) struct CapData {
    pub(super) effective: u32,
    pub(super) permitted: u32,
    pub(super) inheritable: u32,
}

/// `struct rlimit64` of prlimit64(2): the soft and the hard limit.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Rlimit64 {
    pub(super) cur: u64,
    pub(super) max: u64,
}

/// The prepared program: no field is allocated, resized or freed after fork.
pub(super) struct Prepared {
    pub(super) path: CString,
    // Owners of the strings `argv_ptrs` and `env_ptrs` point into; never read directly.
    pub(super) _argv: Vec<CString>,
    pub(super) argv_ptrs: Vec<*const libc::c_char>,
    pub(super) _env: Vec<CString>,
    pub(super) env_ptrs: Vec<*const libc::c_char>,
    pub(super) workdir: CString,
    pub(super) uid: libc::uid_t,
    pub(super) gid: libc::gid_t,
    pub(super) groups: Vec<libc::gid_t>,
    /// Bit n set: keep capability n.
    pub(super) caps: u64,
    pub(super) cap_last_cap: u32,
    pub(super) notify_fd: Option<RawFd>,
    pub(super) umask: libc::mode_t,
    /// Upper bound for the close() loop on kernels without close_range(2).
    pub(super) fd_limit: RawFd,
    /// The contract's resource limits: (resource number of this architecture, limits).
    pub(super) rlimits: Vec<(libc::c_int, Rlimit64)>,
    /// The contract's `oom_score_adj` as the text the child writes.
    pub(super) oom_score_adj: Option<Vec<u8>>,
    /// Whether the child sets no_new_privs (the contract's `no_new_privileges`).
    pub(super) no_new_privs: bool,
}

impl Prepared {
    pub(super) fn new(
        svc: &Service,
        capabilities: &[Capability],
        opts: &SpawnOptions,
    ) -> Result<Prepared, SpawnError> {
        let argv = svc
            .argv
            .iter()
            .enumerate()
            .map(|(i, a)| c_string(&format!("service.argv[{i}]"), a))
            .collect::<Result<Vec<_>, _>>()?;
        let path = match argv.first() {
            Some(p) if p.as_bytes().starts_with(b"/") => p.clone(),
            Some(_) => return Err(config_err("service.argv[0]", "must be an absolute path")),
            None => return Err(config_err("service.argv", "is empty")),
        };
        let env = svc
            .env
            .iter()
            .map(|(k, v)| env_entry(k, v))
            .collect::<Result<Vec<_>, _>>()?;
        let workdir = c_string("service.workdir", svc.workdir.as_deref().unwrap_or("/"))?;
        let cap_last_cap = match opts.cap_last_cap {
            Some(n) => n,
            None => read_cap_last_cap(),
        }
        .min(63);
        let caps = capability_mask(capabilities, cap_last_cap)?;
        Ok(Prepared {
            argv_ptrs: null_terminated(&argv),
            env_ptrs: null_terminated(&env),
            path,
            _argv: argv,
            _env: env,
            workdir,
            uid: svc.uid,
            gid: svc.gid,
            groups: svc.groups.clone(),
            caps,
            cap_last_cap,
            notify_fd: notify_fd(&svc.readiness)?,
            umask: opts.umask as libc::mode_t,
            fd_limit: fd_limit(),
            rlimits: rlimits(svc)?,
            oom_score_adj: svc.oom_score_adj.map(|a| a.to_string().into_bytes()),
            no_new_privs: svc.no_new_privileges,
        })
    }

    /// The v3 capset data: permitted = effective = inheritable = the kept capabilities.
    /// Inheritable is needed because the kernel only allows ambient capabilities that are
    /// both permitted and inheritable.
    pub(super) fn cap_data(&self) -> [CapData; 2] {
        let half = |bits: u32| CapData {
            effective: bits,
            permitted: bits,
            inheritable: bits,
        };
        let [a, b, c, d, e, f, g, h] = self.caps.to_le_bytes();
        [
            half(u32::from_le_bytes([a, b, c, d])),
            half(u32::from_le_bytes([e, f, g, h])),
        ]
    }
}

/// The contract's limits with this architecture's resource numbers (they differ on MIPS,
/// SPARC and Alpha, which is why the contract carries names).
fn rlimits(svc: &Service) -> Result<Vec<(libc::c_int, Rlimit64)>, SpawnError> {
    svc.rlimits
        .iter()
        .map(|(name, r)| {
            let resource = rlimit_resource(name).ok_or_else(|| {
                config_err(
                    format!("service.rlimits.{name}"),
                    "is not a resource limit this guest knows",
                )
            })?;
            if r.soft > r.hard {
                return Err(config_err(
                    format!("service.rlimits.{name}.soft"),
                    "is above the hard limit",
                ));
            }
            Ok((
                resource,
                Rlimit64 {
                    cur: r.soft,
                    max: r.hard,
                },
            ))
        })
        .collect()
}

/// The resource number of an `RLIMIT_*` name (see contract::names::RLIMITS).
pub(super) fn rlimit_resource(name: &str) -> Option<libc::c_int> {
    let n = match name {
        "RLIMIT_AS" => libc::RLIMIT_AS,
        "RLIMIT_CORE" => libc::RLIMIT_CORE,
        "RLIMIT_CPU" => libc::RLIMIT_CPU,
        "RLIMIT_DATA" => libc::RLIMIT_DATA,
        "RLIMIT_FSIZE" => libc::RLIMIT_FSIZE,
        "RLIMIT_LOCKS" => libc::RLIMIT_LOCKS,
        "RLIMIT_MEMLOCK" => libc::RLIMIT_MEMLOCK,
        "RLIMIT_MSGQUEUE" => libc::RLIMIT_MSGQUEUE,
        "RLIMIT_NICE" => libc::RLIMIT_NICE,
        "RLIMIT_NOFILE" => libc::RLIMIT_NOFILE,
        "RLIMIT_NPROC" => libc::RLIMIT_NPROC,
        "RLIMIT_RSS" => libc::RLIMIT_RSS,
        "RLIMIT_RTPRIO" => libc::RLIMIT_RTPRIO,
        "RLIMIT_RTTIME" => libc::RLIMIT_RTTIME,
        "RLIMIT_SIGPENDING" => libc::RLIMIT_SIGPENDING,
        "RLIMIT_STACK" => libc::RLIMIT_STACK,
        _ => return None,
    };
    Some(n as libc::c_int)
}

pub(super) fn c_string(field: &str, s: &str) -> Result<CString, SpawnError> {
    CString::new(s).map_err(|_| config_err(field, "contains a NUL character"))
}

pub(super) fn env_entry(key: &str, value: &str) -> Result<CString, SpawnError> {
    if key.is_empty() || key.contains('=') {
        return Err(config_err(
            format!("service.env.{key}"),
            "a variable name must be non-empty and cannot contain '='",
        ));
    }
    c_string(&format!("service.env.{key}"), &format!("{key}={value}"))
}

/// The pointer array `execve` wants; the pointers stay valid as long as `strings` lives
/// (moving the Vec does not move the heap buffers of the CStrings).
pub(super) fn null_terminated(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// The contract's capabilities as a bit mask, refusing those this kernel does not know.
pub(super) fn capability_mask(caps: &[Capability], cap_last_cap: u32) -> Result<u64, SpawnError> {
    let mut mask = 0u64;
    for (i, cap) in caps.iter().enumerate() {
        let field = format!("service.capabilities[{i}]");
        let (n, name) = (cap.number(), cap.name());
        if n > cap_last_cap {
            return Err(config_err(
                &field,
                format!(
                    "'{name}' is unknown to this kernel (its last capability is {cap_last_cap})"
                ),
            ));
        }
        mask |= 1u64.checked_shl(n).unwrap_or(0);
    }
    Ok(mask)
}

/// The highest capability number of the running kernel. Read before fork (file I/O
/// allocates). Without /proc, ask the kernel: PR_CAPBSET_READ fails with EINVAL for numbers
/// it does not know.
pub(super) fn read_cap_last_cap() -> u32 {
    if let Some(n) = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
    {
        return n;
    }
    let mut last = 0;
    for cap in 0..64u32 {
        // SAFETY: PR_CAPBSET_READ only reads the calling thread's bounding set.
        let rc = unsafe { libc::prctl(libc::PR_CAPBSET_READ, libc::c_ulong::from(cap), 0, 0, 0) };
        if rc < 0 {
            break;
        }
        last = cap;
    }
    last
}

pub(super) fn notify_fd(readiness: &Readiness) -> Result<Option<RawFd>, SpawnError> {
    match readiness {
        Readiness::Notify { fd } => match RawFd::try_from(*fd) {
            // 0 to 2 are the service's stdio; validation refuses them too.
            Ok(n) if n >= 3 => Ok(Some(n)),
            _ => Err(config_err(
                "service.readiness.fd",
                format!("{fd} is not usable; use 3 or above"),
            )),
        },
        _ => Ok(None),
    }
}

/// The soft RLIMIT_NOFILE, capped so that the fallback close() loop stays short even when
/// the limit is huge; fds above the cap are close-on-exec anyway in guest-init.
pub(super) fn fd_limit() -> RawFd {
    const CAP: libc::rlim_t = 65_536;
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        lim.rlim_cur.min(CAP) as RawFd
    } else {
        1024
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_resource_limit_the_contract_names_has_a_number_here() {
        for name in contract::names::RLIMITS {
            assert!(rlimit_resource(name).is_some(), "{name}");
        }
        assert_eq!(rlimit_resource("RLIMIT_FILES"), None);
    }

    fn service(json: &str) -> Service {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn capability_masks() {
        let cap = |n: &str| Capability::from_name(n).unwrap();
        let caps = [cap("CAP_NET_BIND_SERVICE"), cap("chown")];
        assert_eq!(capability_mask(&caps, 40).unwrap(), (1 << 10) | 1);
        let err = capability_mask(&[cap("CAP_BPF")], 38).unwrap_err();
        assert!(err.to_string().contains("unknown to this kernel"), "{err}");
    }

    #[test]
    fn preparing_rejects_what_cannot_be_executed() {
        let opts = SpawnOptions::default();
        let empty = service(r#"{"argv": []}"#);
        assert!(matches!(
            Prepared::new(&empty, &[], &opts),
            Err(SpawnError::Config { .. })
        ));
        let relative = service(r#"{"argv": ["sh"]}"#);
        assert!(matches!(
            Prepared::new(&relative, &[], &opts),
            Err(SpawnError::Config { .. })
        ));
        let low_fd = service(r#"{"argv": ["/bin/sh"], "readiness": {"type": "notify", "fd": 2}}"#);
        assert!(matches!(
            Prepared::new(&low_fd, &[], &opts),
            Err(SpawnError::Config { .. })
        ));
    }
}
