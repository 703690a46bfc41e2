//! Linux names the contract refers to, with their numbers: capabilities and signals (and the
//! names of resource limits, whose numbers differ between architectures: the guest maps them).
//!
//! Kept here, as data, so that the host can validate a contract without knowing the guest, and
//! the guest can map a name to a number without a libc table of its own.

/// Capability names indexed by their number (linux/capability.h, up to CAP_CHECKPOINT_RESTORE).
pub const CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The number of a capability, accepting `CAP_NET_BIND_SERVICE` or `net_bind_service`.
pub fn capability_number(name: &str) -> Option<u32> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    CAPABILITIES
        .iter()
        .position(|c| *c == full)
        .and_then(|n| u32::try_from(n).ok())
}

/// The resource limits a contract may set (setrlimit(2), getrlimit's `RLIMIT_*` names, as in
/// OCI's `process.rlimits`).
pub const RLIMITS: &[&str] = &[
    "RLIMIT_AS",
    "RLIMIT_CORE",
    "RLIMIT_CPU",
    "RLIMIT_DATA",
    "RLIMIT_FSIZE",
    "RLIMIT_LOCKS",
    "RLIMIT_MEMLOCK",
    "RLIMIT_MSGQUEUE",
    "RLIMIT_NICE",
    "RLIMIT_NOFILE",
    "RLIMIT_NPROC",
    "RLIMIT_RSS",
    "RLIMIT_RTPRIO",
    "RLIMIT_RTTIME",
    "RLIMIT_SIGPENDING",
    "RLIMIT_STACK",
];

/// Signals a contract may name as a stop signal, with their Linux numbers (x86, arm, generic).
pub const SIGNALS: &[(&str, i32)] = &[
    ("SIGHUP", 1),
    ("SIGINT", 2),
    ("SIGQUIT", 3),
    ("SIGKILL", 9),
    ("SIGUSR1", 10),
    ("SIGUSR2", 12),
    ("SIGALRM", 14),
    ("SIGTERM", 15),
    ("SIGWINCH", 28),
    ("SIGPWR", 30),
];

/// The number of a signal, accepting `SIGTERM` or `TERM`.
pub fn signal_number(name: &str) -> Option<i32> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    SIGNALS.iter().find(|(n, _)| *n == full).map(|(_, v)| *v)
}

/// A signal a contract may name as the service's stop signal ([`SIGNALS`]), by its Linux
/// number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Hup = 1,
    Int = 2,
    Quit = 3,
    Kill = 9,
    Usr1 = 10,
    Usr2 = 12,
    Alrm = 14,
    Term = 15,
    Winch = 28,
    Pwr = 30,
}

impl Signal {
    /// The signal named `SIGTERM` or `TERM` (any case), if a contract may name it.
    pub fn from_name(name: &str) -> Option<Signal> {
        Some(match signal_number(name)? {
            1 => Signal::Hup,
            2 => Signal::Int,
            3 => Signal::Quit,
            9 => Signal::Kill,
            10 => Signal::Usr1,
            12 => Signal::Usr2,
            14 => Signal::Alrm,
            15 => Signal::Term,
            28 => Signal::Winch,
            30 => Signal::Pwr,
            _ => return None,
        })
    }

    /// Its Linux number.
    pub fn number(self) -> i32 {
        self as i32
    }

    /// Its name, e.g. `SIGTERM`.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Hup => "SIGHUP",
            Signal::Int => "SIGINT",
            Signal::Quit => "SIGQUIT",
            Signal::Kill => "SIGKILL",
            Signal::Usr1 => "SIGUSR1",
            Signal::Usr2 => "SIGUSR2",
            Signal::Alrm => "SIGALRM",
            Signal::Term => "SIGTERM",
            Signal::Winch => "SIGWINCH",
            Signal::Pwr => "SIGPWR",
        }
    }
}

/// A Linux capability a contract names ([`CAPABILITIES`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Capability {
    number: u32,
    name: &'static str,
}

impl Capability {
    /// The capability named `CAP_NET_BIND_SERVICE` or `net_bind_service`.
    pub fn from_name(name: &str) -> Option<Capability> {
        let number = capability_number(name)?;
        let name = CAPABILITIES.get(number as usize)?;
        Some(Capability { number, name })
    }

    /// Its number (`CAP_NET_BIND_SERVICE` is 10).
    pub fn number(self) -> u32 {
        self.number
    }

    /// Its name, e.g. `CAP_NET_BIND_SERVICE`.
    pub fn name(self) -> &'static str {
        self.name
    }
}

/// Syslog facility names with their numbers (RFC 5424 section 6.2.1).
pub const FACILITIES: &[(&str, u8)] = &[
    ("kern", 0),
    ("user", 1),
    ("mail", 2),
    ("daemon", 3),
    ("auth", 4),
    ("syslog", 5),
    ("lpr", 6),
    ("news", 7),
    ("uucp", 8),
    ("cron", 9),
    ("authpriv", 10),
    ("ftp", 11),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

/// The number of a syslog facility.
pub fn facility_number(name: &str) -> Option<u8> {
    FACILITIES.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_numbers_match_the_kernel() {
        assert_eq!(capability_number("CAP_NET_BIND_SERVICE"), Some(10));
        assert_eq!(capability_number("net_admin"), Some(12));
        assert_eq!(capability_number("CAP_SYS_ADMIN"), Some(21));
        assert_eq!(capability_number("CAP_CHECKPOINT_RESTORE"), Some(40));
        assert_eq!(capability_number("CAP_FLY"), None);
    }

    #[test]
    fn every_signal_and_capability_has_a_type() {
        for (name, number) in SIGNALS {
            let s = Signal::from_name(name).unwrap();
            assert_eq!((s.name(), s.number()), (*name, *number));
        }
        assert_eq!(Signal::from_name("term"), Some(Signal::Term));
        assert_eq!(Signal::from_name("SIGSEGV"), None);
        for (n, name) in CAPABILITIES.iter().enumerate() {
            let c = Capability::from_name(name).unwrap();
            assert_eq!((c.number() as usize, c.name()), (n, *name));
        }
        assert_eq!(Capability::from_name("CAP_FLY"), None);
    }

    #[test]
    fn signal_numbers_match_the_kernel() {
        assert_eq!(signal_number("SIGTERM"), Some(15));
        assert_eq!(signal_number("int"), Some(2));
        assert_eq!(signal_number("SIGSEGV"), None);
    }
}
