//! The processes of a VM on the host, seen through /proc: alive, which UML, its group, and
//! killing what a dead launcher left.

/// Whether a process with this pid exists.
pub fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) => true,
        Err(e) => e == nix::errno::Errno::EPERM,
    }
}

/// Whether `pid` is a UML process started with `umid=UMID` (so a recycled pid is not killed).
pub fn is_uml_with_umid(pid: u32, umid: &str) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let want = format!("umid={umid}");
    cmdline.split(|b| *b == 0).any(|a| a == want.as_bytes())
}

/// The processes of process group `pgid`, from /proc. UML leads its own group (its id is UML's
/// pid): its helpers and the host processes of the guest's address spaces stay in it.
pub fn process_group(pgid: u32) -> Vec<u32> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids = Vec::new();
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid pgrp ...": the command may hold spaces and parentheses.
        let pgrp = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(2))
            .and_then(|g| g.parse::<u32>().ok());
        if pgrp == Some(pgid) {
            pids.push(pid);
        }
    }
    pids
}

/// Kills every process of UML's process group (UML calls setsid, so the group id is its pid)
/// that still carries `umid=UMID` on its command line: UML itself and its helper processes,
/// which outlive a killed UML and keep its data disks locked. Returns how many were killed.
pub fn kill_uml_group(pgid: u32, umid: &str) -> usize {
    let mut killed = 0;
    for pid in process_group(pgid) {
        if is_uml_with_umid(pid, umid) {
            if let Ok(p) = i32::try_from(pid) {
                if nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(p),
                    nix::sys::signal::Signal::SIGKILL,
                )
                .is_ok()
                {
                    killed += 1;
                }
            }
        }
    }
    killed
}
