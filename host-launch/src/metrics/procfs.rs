//! What a VM's host processes use, read from /proc: CPU seconds, memory (PSS), storage
//! bytes, and its TAP device's counters. One walk of /proc serves every appliance.

use std::collections::HashMap;

/// What one VM's processes (UML's process group) use on the host.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Usage {
    /// How many host processes the VM has.
    pub processes: u64,
    /// User and system CPU of the group, with what its reaped children used.
    pub cpu_seconds: f64,
    /// Proportional set size: shared pages (UML's guest memory file) counted once in all.
    pub memory_bytes: u64,
    /// Bytes read from and written to the storage layer (`/proc/PID/io`; page cache hits
    /// are not reads).
    pub disk_read_bytes: u64,
    pub disk_written_bytes: u64,
}

impl Usage {
    fn add(&mut self, p: &Usage) {
        self.processes += p.processes;
        self.memory_bytes = self.memory_bytes.saturating_add(p.memory_bytes);
        self.disk_read_bytes = self.disk_read_bytes.saturating_add(p.disk_read_bytes);
        self.disk_written_bytes = self.disk_written_bytes.saturating_add(p.disk_written_bytes);
    }
}

/// A TAP device's counters as the host's kernel keeps them (`/proc/PID/net/dev`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Tap {
    /// Frames the host received on the TAP device: what the guest sent.
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_dropped: u64,
    /// Frames the host sent to the guest.
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_dropped: u64,
}

/// The usage of each of `groups` (process group ids: UML leads its own), from one walk of
/// /proc. A group with no process is absent. Without `pss` the memory is 0: the kernel walks
/// every mapped page for a PSS (about 0.5 ms per UML process, most of a look's cost).
pub fn usage_by_group(groups: &[u32], pss: bool) -> HashMap<u32, Usage> {
    let mut out: HashMap<u32, Usage> = HashMap::new();
    // CPU in clock ticks per group, turned into seconds once (no rounding of the parts).
    let mut ticks: HashMap<u32, u64> = HashMap::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(fields) = stat_fields(&stat) else {
            continue;
        };
        if !groups.contains(&fields.pgrp) {
            continue;
        }
        out.entry(fields.pgrp)
            .or_default()
            .add(&process_usage(pid, pss));
        let t = ticks.entry(fields.pgrp).or_default();
        *t = t.saturating_add(fields.ticks);
    }
    for (group, u) in &mut out {
        let t = ticks.get(group).copied().unwrap_or(0);
        // Tick counts fit an f64 exactly far beyond any uptime.
        #[allow(clippy::cast_precision_loss)]
        let t = t as f64;
        u.cpu_seconds = t / clock_ticks_per_second();
    }
    out
}

/// The fields of `/proc/PID/stat` this module reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StatFields {
    pgrp: u32,
    /// utime + stime + cutime + cstime, in clock ticks.
    ticks: u64,
}

/// Reads "pid (comm) state ppid pgrp ... utime stime cutime cstime ...": the command may
/// hold spaces and parentheses, so the fields are counted after the last ')'.
fn stat_fields(stat: &str) -> Option<StatFields> {
    let (_, rest) = stat.rsplit_once(')')?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): pgrp is field 5, utime..cstime are 14..17.
    let num = |i: usize| f.get(i - 3).and_then(|v| v.parse::<u64>().ok());
    let ticks = (14..=17).try_fold(0u64, |sum, i| num(i).map(|v| sum.saturating_add(v)))?;
    Some(StatFields {
        pgrp: u32::try_from(num(5)?).ok()?,
        ticks,
    })
}

/// One process's usage but its CPU: PSS and storage I/O.
fn process_usage(pid: u32, pss: bool) -> Usage {
    let rollup = if pss {
        std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default()
    } else {
        String::new()
    };
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
    Usage {
        processes: 1,
        cpu_seconds: 0.0,
        memory_bytes: keyed(&rollup, "Pss:").map_or(0, |kb| kb.saturating_mul(1024)),
        disk_read_bytes: keyed(&io, "read_bytes:").unwrap_or(0),
        disk_written_bytes: keyed(&io, "write_bytes:").unwrap_or(0),
    }
}

/// The number after `key` on the first line that starts with it (`Pss:   123 kB`).
fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

fn clock_ticks_per_second() -> f64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(t)) if t > 0 => f64::from(u32::try_from(t).unwrap_or(100)),
        _ => 100.0,
    }
}

/// The counters of `tap` in the network namespace of process `pid` (UML joins the TAP
/// device's namespace, so its `/proc/PID/net/dev` lists the device wherever it is).
pub fn tap(pid: u32, tap: &str) -> Option<Tap> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).ok()?;
    net_dev_line(&text, tap)
}

/// The device's line of a `/proc/net/dev` text: "name: rx bytes packets errs drop fifo
/// frame compressed multicast, tx bytes packets errs drop ...".
fn net_dev_line(text: &str, dev: &str) -> Option<Tap> {
    let line = text.lines().find_map(|l| {
        let (name, rest) = l.split_once(':')?;
        (name.trim() == dev).then_some(rest)
    })?;
    let v: Vec<u64> = line
        .split_whitespace()
        .map(|n| n.parse().ok())
        .collect::<Option<_>>()?;
    if v.len() < 16 {
        return None;
    }
    Some(Tap {
        rx_bytes: v[0],
        rx_packets: v[1],
        rx_dropped: v[3],
        tx_bytes: v[8],
        tx_packets: v[9],
        tx_dropped: v[11],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_is_read_after_the_command() {
        let stat = "4242 (linux (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 7 3 20 0 1 0 \
                    99 1000 10 18446744073709551615\n";
        assert_eq!(
            stat_fields(stat),
            Some(StatFields {
                pgrp: 4242,
                ticks: 310
            })
        );
        assert_eq!(stat_fields("12 (x"), None);
        assert_eq!(stat_fields("12 (x) S 1 2"), None);
    }

    #[test]
    fn net_dev_finds_the_device() {
        let text = "Inter-|   Receive                                                |  Transmit\n \
             face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
             lo:     100       2    0    0    0     0          0         0      100       2    0    0    0     0       0          0\n\
             hl-dns1: 5000      40    0    3    0     0          0         0     7000      50    0    4    0     0       0          0\n";
        assert_eq!(
            net_dev_line(text, "hl-dns1"),
            Some(Tap {
                rx_bytes: 5000,
                rx_packets: 40,
                rx_dropped: 3,
                tx_bytes: 7000,
                tx_packets: 50,
                tx_dropped: 4
            })
        );
        assert_eq!(net_dev_line(text, "hl-dns"), None);
        assert_eq!(net_dev_line("x: 1 2 3\n", "x"), None);
    }

    #[test]
    fn this_process_is_counted() {
        let me = nix::unistd::getpgrp().as_raw().unsigned_abs();
        let u = usage_by_group(&[me], true);
        let mine = u.get(&me).expect("this test's own process group");
        assert!(mine.processes >= 1);
        assert!(mine.memory_bytes > 0, "{mine:?}");
        assert_eq!(keyed("Rss: 5 kB\nPss:   12 kB\n", "Pss:"), Some(12));
    }
}
