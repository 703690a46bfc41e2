//! The container's cgroup (`linux.cgroupsPath`): runc puts a container's processes there, and
//! containerd's runc shim reads a container's figures (the CRI's ContainerStats: CPU time,
//! memory) from the cgroup of the pid `create` wrote. uml-runc moves its monitor there before
//! the VM exists, so the VM's processes, its children, are counted with it. No limit is set:
//! the VM's memory is the container's limit already, and a cgroup limit below UML's own
//! overhead would kill the VM rather than its service.

use crate::error::{io, Error, Result};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where the hierarchies are mounted.
const MOUNT: &str = "/sys/fs/cgroup";

/// The file in a container's state directory naming its cgroup (for `delete` and `ps`).
pub const STATE_FILE: &str = "cgroup";

/// Checks `linux.cgroupsPath` and gives it as a path below each hierarchy's root.
/// systemd's `slice:prefix:name` form (`--systemd-cgroup`) is not placed: the error says so
/// (create keeps it as a warning: the cgroup only counts, the VM is the boundary).
pub fn relative(path: &str) -> Result<PathBuf> {
    if path.contains(':') {
        return Err(Error::new(format!(
            "config.json: linux.cgroupsPath: {path:?} is systemd's slice:prefix:name form, \
             which uml-runc does not place; use the cgroupfs driver (containerd: \
             SystemdCgroup = false; kubelet: --cgroup-driver=cgroupfs)"
        )));
    }
    let rel = PathBuf::from(path.trim_start_matches('/'));
    let plain = rel
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(_)));
    if !plain || rel.as_os_str().is_empty() {
        return Err(Error::new(format!(
            "config.json: linux.cgroupsPath: {path:?} is not a cgroup path like \
             /kubepods/pod1/ctr1 (no `..`, not empty)"
        )));
    }
    Ok(rel)
}

/// The mount points of the cgroup hierarchies (v1 controllers, v2's unified one), from
/// `/proc/self/mountinfo`.
pub fn hierarchies() -> Result<Vec<PathBuf>> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(io("reading /proc/self/mountinfo"))?;
    // Only the host's own mounts of them (a container's view of one elsewhere is the same).
    let mut found: Vec<PathBuf> = text
        .lines()
        .filter_map(cgroup_mount)
        .filter(|m| m.starts_with(MOUNT))
        .collect();
    found.sort();
    found.dedup();
    Ok(found)
}

/// The mount point of a mountinfo line whose file system is `cgroup` or `cgroup2`.
fn cgroup_mount(line: &str) -> Option<PathBuf> {
    let (head, tail) = line.split_once(" - ")?;
    let fstype = tail.split(' ').next()?;
    if fstype != "cgroup" && fstype != "cgroup2" {
        return None;
    }
    head.split(' ').nth(4).map(PathBuf::from)
}

/// Places the monitor `pid` in `linux.cgroupsPath` and records where in `state_dir`.
pub fn place(state_dir: &Path, cgroups_path: &str, pid: u32) -> Result<()> {
    let rel = relative(cgroups_path)?;
    let dirs = enter(&rel, pid);
    // What was made is recorded even when a hierarchy refused, so delete removes it.
    let made = match &dirs {
        Ok(d) => d.clone(),
        Err((d, _)) => d.clone(),
    };
    record(state_dir, &made)?;
    dirs.map(|_| ()).map_err(|(_, e)| e)
}

/// Creates `rel` in every hierarchy and moves `pid` into it; returns the directories made.
/// On failure, also the directories made before it.
pub fn enter(rel: &Path, pid: u32) -> std::result::Result<Vec<PathBuf>, (Vec<PathBuf>, Error)> {
    let mut dirs = Vec::new();
    for h in hierarchies().map_err(|e| (Vec::new(), e))? {
        let dir = h.join(rel);
        if let Err(e) = make(&h, rel) {
            return Err((dirs, e));
        }
        dirs.push(dir.clone());
        let procs = dir.join("cgroup.procs");
        if let Err(e) = std::fs::write(&procs, pid.to_string()) {
            let e = Error::new(format!("moving the monitor into {}: {e}", procs.display()));
            return Err((dirs, e));
        }
    }
    Ok(dirs)
}

/// Makes each level of `rel` below `hierarchy`; a new cpuset level gets its parent's CPUs and
/// memory nodes, as runc gives it (an empty cpuset takes no process).
fn make(hierarchy: &Path, rel: &Path) -> Result<()> {
    let mut dir = hierarchy.to_path_buf();
    for c in rel.components() {
        let parent = dir.clone();
        dir.push(c);
        if dir.is_dir() {
            continue;
        }
        std::fs::create_dir(&dir).map_err(io(format!("creating {}", dir.display())))?;
        for f in ["cpuset.cpus", "cpuset.mems"] {
            let mine = dir.join(f);
            let empty = std::fs::read_to_string(&mine).is_ok_and(|s| s.trim().is_empty());
            if empty {
                let v = std::fs::read_to_string(parent.join(f))
                    .map_err(io(format!("reading {}", parent.join(f).display())))?;
                std::fs::write(&mine, v.trim())
                    .map_err(io(format!("writing {}", mine.display())))?;
            }
        }
    }
    Ok(())
}

/// The container's cgroup directories, as `create` recorded them in the state directory.
pub fn recorded(state_dir: &Path) -> Vec<PathBuf> {
    std::fs::read_to_string(state_dir.join(STATE_FILE))
        .map(|t| t.lines().map(PathBuf::from).collect())
        .unwrap_or_default()
}

/// Records the container's cgroup directories in its state directory.
pub fn record(state_dir: &Path, dirs: &[PathBuf]) -> Result<()> {
    let text: String = dirs.iter().map(|d| format!("{}\n", d.display())).collect();
    let f = state_dir.join(STATE_FILE);
    std::fs::write(&f, text).map_err(io(format!("writing {}", f.display())))
}

/// Removes the container's cgroup directories (only its own level: the parents are the
/// pod's, kubelet's). Waits up to 2 s for the VM's last processes to be gone.
pub fn remove(dirs: &[PathBuf]) -> Vec<String> {
    let until = Instant::now() + Duration::from_secs(2);
    let mut left = Vec::new();
    for d in dirs {
        loop {
            match std::fs::remove_dir(d) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                Err(e) if Instant::now() >= until => {
                    left.push(format!("removing the cgroup {}: {e}", d.display()));
                    break;
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
    left
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cgroups_path_is_plain_below_the_root() {
        assert_eq!(
            relative("/kubepods/pod1/abc").unwrap(),
            PathBuf::from("kubepods/pod1/abc")
        );
        assert_eq!(relative("libpod/x").unwrap(), PathBuf::from("libpod/x"));
        for bad in ["/a/../b", "", "/", "system.slice:cri:abc"] {
            let e = relative(bad).unwrap_err();
            assert!(e.0.contains("linux.cgroupsPath"), "{bad}: {e}");
        }
        assert!(relative("system.slice:cri:abc")
            .unwrap_err()
            .0
            .contains("SystemdCgroup = false"));
    }

    #[test]
    fn cgroup_mounts_are_read_from_mountinfo() {
        let v1 = "35 25 0:30 / /sys/fs/cgroup/memory rw,nosuid shared:15 - cgroup cgroup rw,memory";
        let v2 = "30 25 0:26 / /sys/fs/cgroup rw shared:9 - cgroup2 cgroup2 rw";
        let other = "22 1 0:21 / /proc rw shared:12 - proc proc rw";
        assert_eq!(
            cgroup_mount(v1),
            Some(PathBuf::from("/sys/fs/cgroup/memory"))
        );
        assert_eq!(cgroup_mount(v2), Some(PathBuf::from("/sys/fs/cgroup")));
        assert_eq!(cgroup_mount(other), None);
        assert_eq!(cgroup_mount("garbage"), None);
    }
}
