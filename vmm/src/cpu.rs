//! Which host CPU a VM runs on.
//!
//! A UML guest is one CPU, but its kernel and its guest processes are separate host processes
//! that hand every guest system call to each other through ptrace. When the host scheduler
//! puts them on different cores, each hand-over is a cross-core wake-up: measured here, guest
//! system calls then run about 2.5 times slower (guest-init's first steps: 7-8 ms instead of
//! 3 ms). Pinning all of a VM's processes to one core keeps the hand-overs local. Each new VM
//! goes to the allowed core that the fewest running UML processes are pinned to, so many
//! appliances still spread over the host.

use std::collections::BTreeMap;

/// The CPUs this process may run on.
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: sched_getaffinity writes at most size_of::<cpu_set_t>() bytes into `set`.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Vec::new();
    }
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: CPU_ISSET reads the set within its size.
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect()
}

/// A `Cpus_allowed_list` of exactly one CPU (`"3"`), as pinned VMs have.
fn single_cpu(list: &str) -> Option<usize> {
    list.trim().parse().ok()
}

/// How many processes of the given executable name are pinned to each CPU.
fn pinned_counts(comm: &str) -> BTreeMap<usize, usize> {
    let mut counts = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return counts;
    };
    for entry in dir.flatten() {
        let path = entry.path();
        let is_vm = std::fs::read_to_string(path.join("comm")).is_ok_and(|c| c.trim() == comm);
        if !is_vm {
            continue;
        }
        let Ok(status) = std::fs::read_to_string(path.join("status")) else {
            continue;
        };
        let cpu = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .and_then(single_cpu);
        if let Some(cpu) = cpu {
            *counts.entry(cpu).or_insert(0) += 1;
        }
    }
    counts
}

/// The least used allowed CPU, counting processes named `comm` (the UML kernel's executable
/// name, e.g. `linux.uml`) already pinned; `None` when there is only one CPU or none is known.
pub fn pick(comm: &str) -> Option<usize> {
    // VMs started at the same moment all see the same counts; the salt (this process and how
    // many VMs it started) spreads their ties instead of piling them onto the first core.
    static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let salt = (std::process::id() as usize)
        .wrapping_add(STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    choose(&allowed_cpus(), &pinned_counts(comm), salt)
}

/// The pure part of [`pick`]: fewest pinned processes first; among equals, the one `salt`
/// points at (counting round from it).
pub fn choose(allowed: &[usize], pinned: &BTreeMap<usize, usize>, salt: usize) -> Option<usize> {
    if allowed.len() < 2 {
        return None;
    }
    let n = allowed.len();
    allowed
        .iter()
        .copied()
        .enumerate()
        .min_by_key(|(i, c)| {
            let count = pinned.get(c).copied().unwrap_or(0);
            (count, (i + n - salt % n) % n)
        })
        .map(|(_, c)| c)
}

/// Pins the calling process (and so everything it starts) to `cpu`. Async-signal-safe: meant
/// for `pre_exec`, between fork and exec.
pub fn pin_self(cpu: usize) -> std::io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET stays within it for
    // cpu < CPU_SETSIZE (checked); sched_setaffinity reads the set within its size.
    unsafe {
        if cpu >= libc::CPU_SETSIZE as usize {
            return Ok(());
        }
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_used_cpu_wins() {
        let pinned = BTreeMap::from([(0, 6), (1, 6), (2, 1)]);
        assert_eq!(choose(&[0, 1, 2, 3], &pinned, 0), Some(3));
        assert_eq!(choose(&[0, 1, 2], &pinned, 0), Some(2));
        assert_eq!(choose(&[0, 1], &BTreeMap::from([(0, 1)]), 0), Some(1));
        assert_eq!(
            choose(&[5], &BTreeMap::new(), 0),
            None,
            "one CPU: nothing to choose"
        );
        assert_eq!(single_cpu("3\n"), Some(3));
        assert_eq!(single_cpu("0-1"), None);
    }

    #[test]
    fn ties_are_spread_by_the_salt() {
        let none = BTreeMap::new();
        let picks: Vec<_> = (0..4)
            .map(|salt| choose(&[0, 1, 2, 3], &none, salt))
            .collect();
        assert_eq!(picks, [Some(0), Some(1), Some(2), Some(3)]);
        assert_eq!(choose(&[4, 6], &none, 3), Some(6));
        // A less used core still wins whatever the salt.
        assert_eq!(choose(&[0, 1], &BTreeMap::from([(1, 2)]), 1), Some(0));
    }

    #[test]
    fn a_pinned_child_runs_on_its_cpu() {
        use std::os::unix::process::CommandExt;
        let Some(cpu) = pick("no-such-process") else {
            return; // a one-CPU machine: pinning changes nothing there
        };
        let mut cmd = std::process::Command::new("/bin/sh");
        cmd.args(["-c", "grep Cpus_allowed_list /proc/self/status"]);
        // SAFETY: pin_self only makes the sched_setaffinity system call.
        unsafe {
            cmd.pre_exec(move || pin_self(cpu));
        }
        let out = cmd.output().expect("sh");
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(text.trim(), format!("Cpus_allowed_list:\t{cpu}"));
    }
}
