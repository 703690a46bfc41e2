//! Was the service ended by the guest's OOM killer? A SIGKILL alone does not say: the kernel
//! log does. The OOM killer logs `oom-kill:...,pid=N,...` and `Out of memory: Killed process
//! N (name) ...` before the victim dies, so by the time PID 1 reaps it the record is in
//! `/dev/kmsg`.
//!
//! The read is bounded (records and bytes) and non-blocking: PID 1 never waits on it, and a
//! log flooded by the service cannot make it read for long.

use std::io::{ErrorKind, Read};
use std::os::unix::fs::OpenOptionsExt;

/// The kernel log records read at most per question (the ring buffer of our kernel holds
/// far fewer; this only bounds a larger one).
const MAX_RECORDS: usize = 8192;
/// One `/dev/kmsg` read returns one record; the kernel's own limit is 1 KiB of text plus
/// its escaped dictionary, so 8 KiB holds any.
const RECORD_BYTES: usize = 8192;

/// Did the kernel log an OOM kill of `pid`? `false` when the log cannot be read (no
/// `/dev/kmsg`): an exit is then reported as before, without the flag.
pub fn killed_by_oom(pid: i32) -> bool {
    let Ok(mut log) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open("/dev/kmsg")
    else {
        return false;
    };
    let mut buf = vec![0u8; RECORD_BYTES];
    let mut found = false;
    for _ in 0..MAX_RECORDS {
        match log.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => found |= record_names_oom_kill(buf.get(..n).unwrap_or_default(), pid),
            // EPIPE: records were overwritten while reading; the next read goes on.
            Err(e) if e.raw_os_error() == Some(nix::libc::EPIPE) => continue,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => break, // EAGAIN: the end of the log
        }
    }
    found
}

/// Does one `/dev/kmsg` record (`PRI,SEQ,TS,FLAGS;MESSAGE\n...`) say the OOM killer killed
/// `pid`?
pub fn record_names_oom_kill(record: &[u8], pid: i32) -> bool {
    let text = String::from_utf8_lossy(record);
    let message = text.split_once(';').map_or(&*text, |(_, m)| m);
    let message = message.lines().next().unwrap_or_default();
    if let Some(rest) = message.split_once("Killed process ").map(|(_, r)| r) {
        return leading_pid(rest) == Some(pid);
    }
    if message.starts_with("oom-kill:") {
        return message
            .split(',')
            .filter_map(|f| f.strip_prefix("pid="))
            .any(|p| p.parse() == Ok(pid));
    }
    false
}

/// The number at the start of `text`, up to the first non-digit.
fn leading_pid(text: &str) -> Option<i32> {
    let end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    text.get(..end)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernels_oom_lines_name_the_pid() {
        let killed = b"3,812,5123456,-;Out of memory: Killed process 31 (sh) total-vm:70000kB, anon-rss:60000kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:100kB oom_score_adj:0\n";
        assert!(record_names_oom_kill(killed, 31));
        assert!(!record_names_oom_kill(killed, 3));
        assert!(!record_names_oom_kill(killed, 312));
        let summary = b"6,811,5123400,-;oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/,task=sh,pid=31,uid=0\n";
        assert!(record_names_oom_kill(summary, 31));
        assert!(!record_names_oom_kill(summary, 0));
    }

    #[test]
    fn other_lines_and_garbage_name_no_one() {
        for rec in [
            &b"6,1,2,-;sh (31): drop_caches: 1\n"[..],
            b"6,1,2,-;Killed process\n",
            b"6,1,2,-;Killed process x31\n",
            b"\xff\xfe;oom-kill:pid=\n",
            b"",
            // Only the message counts, not the dictionary lines after it.
            b"6,1,2,-;hello\n SUBSYSTEM=Killed process 31\n",
        ] {
            assert!(!record_names_oom_kill(rec, 31), "{rec:?}");
        }
    }

    #[test]
    fn a_pid_no_log_names_is_not_oom_killed() {
        // Runs against this machine's log (or none): no OOM kill of a pid that cannot exist.
        assert!(!killed_by_oom(-7));
    }
}
