//! Who the UML process runs as. A root launcher creates what needs root (the TAP device, the
//! state directory) and then runs UML as an unprivileged user: `run_as` from the spec, default
//! `nobody`; root only when the spec says `"run_as": "root"`. A non-root launcher runs UML as
//! itself.

use crate::error::{Error, Result};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The default user of a root launcher's VMs.
pub const DEFAULT_USER: &str = "nobody";

/// The user UML runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    pub uid: u32,
    pub gid: u32,
    pub name: String,
    /// Whether the launcher must switch to this user (it is root and the user is not).
    pub switch: bool,
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Resolves the spec's `run_as` for this launcher.
pub fn resolve(run_as: Option<&str>) -> Result<RunAs> {
    let me = nix::unistd::geteuid().as_raw();
    let my_gid = nix::unistd::getegid().as_raw();
    if me != 0 {
        let wanted = match run_as {
            None => return Ok(current(me, my_gid)),
            Some(w) => lookup(w)?,
        };
        if wanted.uid != me {
            return Err(Error::invalid(format!(
                "run_as: running the VM as '{}' (uid {}) needs a root launcher; leave run_as out \
                 to run it as yourself (uid {me})",
                wanted.name, wanted.uid
            )));
        }
        return Ok(current(me, my_gid));
    }
    let mut r = lookup(run_as.unwrap_or(DEFAULT_USER))?;
    r.switch = r.uid != 0;
    Ok(r)
}

fn current(uid: u32, gid: u32) -> RunAs {
    let name = nix::unistd::User::from_uid(uid.into())
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string());
    RunAs {
        uid,
        gid,
        name,
        switch: false,
    }
}

/// `name`, `uid` or `uid:gid` → ids.
pub fn lookup(s: &str) -> Result<RunAs> {
    if let Some((u, g)) = s.split_once(':') {
        let uid = u.parse::<u32>();
        let gid = g.parse::<u32>();
        if let (Ok(uid), Ok(gid)) = (uid, gid) {
            return Ok(RunAs {
                uid,
                gid,
                name: s.to_string(),
                switch: false,
            });
        }
    }
    if let Ok(uid) = s.parse::<u32>() {
        let user = nix::unistd::User::from_uid(uid.into()).ok().flatten();
        return Ok(RunAs {
            uid,
            gid: user.as_ref().map(|u| u.gid.as_raw()).unwrap_or(uid),
            name: user.map(|u| u.name).unwrap_or_else(|| uid.to_string()),
            switch: false,
        });
    }
    match nix::unistd::User::from_name(s) {
        Ok(Some(u)) => Ok(RunAs {
            uid: u.uid.as_raw(),
            gid: u.gid.as_raw(),
            name: u.name,
            switch: false,
        }),
        _ => Err(Error::invalid(format!(
            "run_as: there is no user '{s}' on this host; create it, or give a numeric uid:gid"
        ))),
    }
}

/// Whether `who` may read (and, if `write`, write) `path`, judging by its mode bits alone
/// (root may do anything). Group access counts only for the primary group.
pub fn may_access(path: &Path, who: &RunAs, write: bool) -> bool {
    if who.uid == 0 {
        return true;
    }
    let Ok(m) = std::fs::metadata(path) else {
        return false;
    };
    let mode = m.mode();
    let (r, w) = if m.uid() == who.uid {
        (0o400, 0o200)
    } else if m.gid() == who.gid {
        (0o040, 0o020)
    } else {
        (0o004, 0o002)
    };
    mode & r != 0 && (!write || mode & w != 0)
}

/// Whether `who` can walk down to `path` (search permission on every directory above it).
pub fn may_traverse(path: &Path, who: &RunAs) -> Option<std::path::PathBuf> {
    if who.uid == 0 {
        return None;
    }
    let mut dirs: Vec<&Path> = path.ancestors().skip(1).collect();
    dirs.reverse();
    for d in dirs {
        let Ok(m) = std::fs::metadata(d) else {
            return Some(d.to_path_buf());
        };
        let mode = m.mode();
        let x = if m.uid() == who.uid {
            0o100
        } else if m.gid() == who.gid {
            0o010
        } else {
            0o001
        };
        if mode & x == 0 {
            return Some(d.to_path_buf());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_forms() {
        let r = lookup("1234:5678").unwrap();
        assert_eq!((r.uid, r.gid), (1234, 5678));
        assert_eq!(lookup("0").unwrap().uid, 0);
        assert!(lookup("no-such-user-here")
            .unwrap_err()
            .message
            .contains("no user 'no-such-user-here'"));
    }

    #[test]
    fn mode_bits() {
        let who = RunAs {
            uid: 4242,
            gid: 4242,
            name: "x".into(),
            switch: true,
        };
        assert!(may_access(Path::new("/etc/passwd"), &who, false));
        assert!(!may_access(Path::new("/etc/passwd"), &who, true));
        assert_eq!(may_traverse(Path::new("/etc/passwd"), &who), None);
    }
}
