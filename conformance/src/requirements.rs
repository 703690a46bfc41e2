//! The requirements of docs/contract.md that bind an image, by their stable IDs, and how the
//! kit checks each: from outside, with the probe, or not at all (then the reason why it cannot
//! be checked from outside). The spec and this list name the same IDs at the same level; a
//! test (tests/spec.rs) holds them together.

/// MUST, SHOULD or MAY (RFC 2119).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Must,
    Should,
    May,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Must => "MUST",
            Level::Should => "SHOULD",
            Level::May => "MAY",
        }
    }
}

/// How the kit checks a requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    /// From outside: events, console, network, disks, the image's files.
    Outside,
    /// With the probe the kit hands the image as a contract file and runs as the service;
    /// skipped (said so) when the probe cannot run.
    Probe,
    /// Not checked; why it cannot be checked from outside.
    Not(&'static str),
}

#[derive(Debug, Clone, Copy)]
pub struct Requirement {
    pub id: &'static str,
    pub level: Level,
    pub title: &'static str,
    pub how: How,
}

const fn r(id: &'static str, level: Level, title: &'static str, how: How) -> Requirement {
    Requirement {
        id,
        level,
        title,
        how,
    }
}

use How::{Not, Outside, Probe};
use Level::{May, Must, Should};

const HOST: &str =
    "a requirement on the host: the kit is such a host (the vmm crate), an image cannot show it";

/// Every requirement, in the order of the spec.
pub const ALL: &[Requirement] = &[
    // Host (the kit is the host; an image cannot show these).
    r("H-BOOT-1", Must, "host boots the image read-only as /dev/ubda with root=/dev/ubda ro init=/sbin/init", Not(HOST)),
    r("H-BOOT-2", Must, "host passes mem=<MiB>M", Not(HOST)),
    r("H-CON-1", Must, "host wires con0 as the console and con1 (/dev/tty1) as the status channel", Not(HOST)),
    r("H-CFG-1", Must, "host writes the config device byte for byte as specified and attaches it read-only", Not(HOST)),
    r("H-CFG-2", Must, "host gives the same contract on both encodings when it uses both", Not(HOST)),
    r("H-STOP-1", Must, "host asks for a stop with ctrl-alt-del (mconsole cad) and waits at least stop_timeout_ms", Not(HOST)),
    r("H-VER-1", Must, "host gives an image only a contract of the version its manifest declares", Not(HOST)),
    r("H-MEM-1", Must, "host checks the memory budget before boot", Not(HOST)),
    r("H-SIZE-1", Must, "host refuses a contract larger than the config device's 16 MiB before boot", Not(HOST)),
    // The image's files and manifest.
    r("C-MAN-1", Must, "manifest beside the image is a valid manifest v1", Outside),
    r("C-IMG-1", Must, "root image is an ext2/3/4 file system", Outside),
    r("C-IMG-2", Must, "/sbin/init is an executable file", Outside),
    r("C-IMG-3", Must, "/proc, /sys, /dev, /run and /tmp are directories", Outside),
    r("C-IMG-4", Must, "/etc/resolv.conf is a symlink to /run/resolv.conf", Outside),
    r("C-IMG-5", Must, "/etc/hosts is a symlink to /run/hosts", Outside),
    r("C-IMG-6", Must, "each manifest disk's and tmpfs's mount point is a directory", Outside),
    r("C-IMG-7", Must, "the image runs from a read-only root", Outside),
    // Reading the contract.
    r("C-WIRE-1", Must, "reads the contract from hostcontract= on the command line", Outside),
    r("C-WIRE-2", Must, "reads the contract from the config device named by hostcontract_dev=", Outside),
    r("C-WIRE-3", Must, "refuses when both encodings are given and differ", Outside),
    r("C-WIRE-4", Must, "refuses a contract version it does not speak", Outside),
    r("C-WIRE-5", Must, "refuses JSON with a key twice in one object", Outside),
    r("C-WIRE-6", Must, "refuses unknown fields", Outside),
    r("C-ORDER-1", Must, "network, sysctls, disks, files and /run/contract are set up before the service starts", Probe),
    r("C-ORDER-2", Must, "remote logging is on before the service starts", Outside),
    // Status channel.
    r("C-EV-1", Must, "status channel: one JSON object per line with event, ts_us, boot_us, init_us", Outside),
    r("C-EV-2", Must, "a ready event when the service is ready", Outside),
    r("C-EV-3", Must, "a power_off event, with its reason, before powering off", Outside),
    r("C-EV-4", Should, "contract_loaded, service_started, exited, restarting, shutting_down events", Outside),
    // Settings.
    r("C-HOST-1", Must, "the hostname is set", Probe),
    r("C-NET-1", Must, "IPv4 addresses are configured and the interface is up", Outside),
    r("C-NET-2", Must, "IPv6 addresses are configured", Outside),
    r("C-NET-3", Must, "IPv4 routes are installed", Outside),
    r("C-NET-4", Must, "IPv6 routes are installed", Outside),
    r("C-NET-5", Must, "loopback is up", Probe),
    r("C-NET-6", Should, "no IPv6 of the kernel's own: off without IPv6, no router advertisements with it", Probe),
    r("C-DNS-1", Must, "/run/resolv.conf: nameserver lines in order, the search domains", Probe),
    r("C-DNS-2", Must, "/run/hosts: localhost and the hostname", Probe),
    r("C-SYSCTL-1", Must, "the sysctls are set", Probe),
    r("C-FILE-1", Must, "files are written with their content, mode and owner", Probe),
    r("C-FILE-2", Must, "base64 files are decoded", Probe),
    r("C-EXTRA-1", Must, "extra is handed to the service as /run/contract/extra.json", Probe),
    // Disks.
    r("C-DISK-1", Must, "a blank disk with format_if_blank is formatted", Outside),
    r("C-DISK-2", Must, "a disk that holds a file system is never formatted", Outside),
    r("C-DISK-3", Must, "disks are mounted at their mount points with their options before the service starts", Probe),
    r("C-DISK-4", Must, "the root of a file system the image creates is owned by owner_uid:owner_gid", Outside),
    r("C-TMPFS-1", Must, "tmpfs mounts are mounted", Probe),
    // Logging.
    r("C-LOG-1", Must, "with logging.console the service's output reaches the console", Outside),
    r("C-LOG-2", Must, "remote syslog in RFC 5424", Outside),
    r("C-LOG-3", Must, "remote syslog in RFC 3164", Outside),
    r("C-LOG-4", Must, "remote syslog over UDP, one message per datagram", Outside),
    r("C-LOG-5", Must, "remote syslog over TCP with octet counting", Outside),
    r("C-LOG-6", Must, "syslog facility, hostname and app-name as the contract says", Outside),
    // The service.
    r("C-SVC-1", Must, "argv exactly as given", Probe),
    r("C-SVC-2", Must, "environment exactly as given, nothing inherited", Probe),
    r("C-SVC-3", Must, "uid, gid and supplementary groups", Probe),
    r("C-SVC-4", Must, "only the kept capabilities (effective, permitted, bounding)", Probe),
    r("C-SVC-5", Must, "the working directory", Probe),
    r("C-SVC-6", Should, "no_new_privs is set", Probe),
    r("C-RLIMIT-1", Must, "version 2: the service has exactly the resource limits given", Probe),
    r("C-OOM-1", Must, "version 3: the service has the oom_score_adj given", Probe),
    r("C-RST-1", Must, "on-failure restarts after a non-zero exit", Outside),
    r("C-RST-2", Must, "restarts wait backoff_min_ms first, doubling up to backoff_max_ms", Outside),
    r("C-RST-3", Must, "always restarts after exit 0", Outside),
    r("C-RST-4", Must, "never: the VM powers off when the service exits", Outside),
    r("C-RDY-1", Must, "tcp readiness: ready only once the port accepts connections", Outside),
    r("C-RDY-2", Must, "notify readiness: ready only after the newline on the fd", Outside),
    r("C-REAP-1", Must, "every child is reaped, orphans too", Not("zombies exist only in the guest's process table, which neither the host nor the service (the probe sees only its own children) can read")),
    // Stop and power-off.
    r("C-STOP-1", Must, "a stop request sends stop_signal to the service", Probe),
    r("C-STOP-2", Must, "after stop_timeout_ms the service is killed and the VM powers off, not sooner", Outside),
    r("C-STOP-3", Should, "SIGTERM and SIGPWR for PID 1 are stop requests too", Not("the host reaches PID 1 only through the kernel's ctrl-alt-del; it cannot send it SIGTERM or SIGPWR")),
    r("C-OFF-1", Must, "a clean power-off (UML exits 0), no panic", Outside),
    r("C-OFF-2", Must, "data disks are unmounted (clean, no journal to replay)", Outside),
    r("C-PID1-1", Must, "PID 1 never exits (no 'Attempted to kill init')", Outside),
    // Refusal.
    r("C-FATAL-1", Must, "a refused contract: fatal event, no service, power-off", Outside),
    r("C-FATAL-2", Should, "the fatal event names the contract field at fault", Outside),
    r("C-FATAL-3", Must, "a contract it cannot honour (a missing mount point) is refused the same way", Outside),
    r("C-MEM-1", May, "refuses a contract beyond the memory budget (guest-init's choice)", Not("a choice, not a requirement")),
];

/// The requirement with this ID.
pub fn get(id: &str) -> Option<&'static Requirement> {
    ALL.iter().find(|r| r.id == id)
}
