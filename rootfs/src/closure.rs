//! The shared-library closure of a set of programs and plugins: every library they need
//! (`DT_NEEDED`, recursively), found the way the dynamic loader finds it (`DT_RPATH`, then
//! `DT_RUNPATH`, then the system directories), plus each program's loader (`PT_INTERP`).
//!
//! The image keeps host paths: a library found at `/lib/x86_64-linux-gnu/libc.so.6` on the
//! host is `/lib/x86_64-linux-gnu/libc.so.6` in the image (a regular file: symlinks on the
//! host are followed), so the guest's loader finds it in its default directories without an
//! `ld.so.cache`.

use crate::elf;
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};

/// Where the loader looks when an object has no run path (Debian's multiarch order; an image
/// has no `/etc/ld.so.cache`, so these are what the guest's loader searches too).
pub const SYSTEM_DIRS: &[&str] = &[
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
];

/// One ELF object in the closure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    /// The host file to copy (symlinks resolved).
    pub source: PathBuf,
    /// Who needed it first (a program, a plugin or another library), for messages.
    pub needed_by: Option<String>,
    /// Its `DT_NEEDED` names.
    pub needed: Vec<String>,
    /// Whether it is executable (programs and loaders) rather than a library.
    pub executable: bool,
}

/// The closure: image path → object.
pub type Closure = BTreeMap<String, Object>;

/// What to resolve: a program (executable) or a plugin loaded with `dlopen`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Root {
    Program,
    Plugin,
}

/// Resolves `roots` (image path = host path) under `host_root` (`/` normally; another
/// directory for tests). Returns every object, or every problem found.
pub fn resolve(roots: &[(String, Root)], host_root: &Path) -> Result<Closure, Vec<String>> {
    let mut out = Closure::new();
    let mut problems = Vec::new();
    let mut queue: VecDeque<(String, Option<String>, bool)> = VecDeque::new();
    for (path, kind) in roots {
        queue.push_back((path.clone(), None, *kind == Root::Program));
    }
    // Loader basenames: a DT_NEEDED of the loader's own name is satisfied by the loader.
    let mut loaders: Vec<String> = Vec::new();
    let mut machine: Option<u16> = None;
    while let Some((path, needed_by, is_root_program)) = queue.pop_front() {
        if out.contains_key(&path) {
            continue;
        }
        let host = host_path(host_root, &path);
        let via = needed_by
            .as_ref()
            .map(|n| format!(" (needed by {n})"))
            .unwrap_or_default();
        let bytes = match std::fs::read(&host) {
            Ok(b) => b,
            Err(e) => {
                problems.push(format!("{path}{via}: cannot read {}: {e}", host.display()));
                continue;
            }
        };
        let dynamic = match elf::parse(&bytes) {
            Ok(d) => d,
            Err(e) => {
                problems.push(format!("{path}{via}: {e}"));
                continue;
            }
        };
        if machine.is_some_and(|m| m != dynamic.machine) {
            problems.push(format!(
                "{path}{via}: ELF machine {} differs from the programs' ({})",
                dynamic.machine,
                machine.unwrap_or_default()
            ));
            continue;
        }
        machine = Some(dynamic.machine);
        let source = std::fs::canonicalize(&host).unwrap_or(host);
        if let Some(interp) = &dynamic.interpreter {
            if let Some(base) = interp.rsplit('/').next() {
                if !loaders.iter().any(|l| l == base) {
                    loaders.push(base.to_string());
                }
            }
            queue.push_back((interp.clone(), Some(path.clone()), true));
        }
        let dir = Path::new(&path)
            .parent()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|| "/".into());
        for name in &dynamic.needed {
            if loaders.iter().any(|l| l == name) {
                continue;
            }
            match find_library(name, &dynamic, &dir, host_root, dynamic.machine) {
                Some(found) => queue.push_back((found, Some(path.clone()), false)),
                None => {
                    let mut dirs: Vec<String> = dynamic.rpath.clone();
                    dirs.extend(dynamic.runpath.iter().cloned());
                    dirs.extend(SYSTEM_DIRS.iter().map(|s| s.to_string()));
                    problems.push(format!(
                        "library {name} needed by {path}{via} not found in {}",
                        dirs.join(", ")
                    ));
                }
            }
        }
        out.insert(
            path,
            Object {
                source,
                needed_by,
                needed: dynamic.needed.clone(),
                executable: is_root_program,
            },
        );
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        problems.sort();
        problems.dedup();
        Err(problems)
    }
}

fn host_path(host_root: &Path, guest: &str) -> PathBuf {
    host_root.join(guest.trim_start_matches('/'))
}

/// The loader's search: `DT_RPATH` (only without `DT_RUNPATH`), `DT_RUNPATH`, then the
/// system directories; `$ORIGIN` is the directory of the object. A candidate of another
/// machine is skipped, as the loader does.
fn find_library(
    name: &str,
    d: &elf::Dynamic,
    origin: &str,
    host_root: &Path,
    machine: u16,
) -> Option<String> {
    if name.contains('/') {
        return Some(name.to_string()).filter(|p| host_path(host_root, p).is_file());
    }
    let mut dirs: Vec<String> = Vec::new();
    if d.runpath.is_empty() {
        dirs.extend(d.rpath.iter().cloned());
    }
    dirs.extend(d.runpath.iter().cloned());
    let dirs = dirs
        .into_iter()
        .map(|dir| dir.replace("${ORIGIN}", origin).replace("$ORIGIN", origin))
        .chain(SYSTEM_DIRS.iter().map(|s| s.to_string()));
    for dir in dirs {
        let candidate = format!("{}/{name}", dir.trim_end_matches('/'));
        let host = host_path(host_root, &candidate);
        let Ok(bytes) = std::fs::read(&host) else {
            continue;
        };
        if elf::parse(&bytes).is_ok_and(|o| o.machine == machine) {
            return Some(normalise(&candidate));
        }
    }
    None
}

/// Removes `.` and `..` components from an absolute path (from `$ORIGIN/../lib`).
fn normalise(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_origin_paths() {
        assert_eq!(normalise("/usr/bin/../lib/x.so"), "/usr/lib/x.so");
        assert_eq!(normalise("/a/./b//c"), "/a/b/c");
    }

    #[test]
    fn closure_of_the_host_shell() {
        let c = resolve(&[("/bin/sh".into(), Root::Program)], Path::new("/")).unwrap();
        assert!(c.contains_key("/bin/sh"));
        assert!(c.contains_key("/lib64/ld-linux-x86-64.so.2"), "{c:#?}");
        assert!(c.contains_key("/lib/x86_64-linux-gnu/libc.so.6"), "{c:#?}");
        // libc needs the loader by its soname; the loader is not copied twice.
        assert!(!c.contains_key("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"));
        assert!(c["/lib64/ld-linux-x86-64.so.2"].executable);
        assert!(!c["/lib/x86_64-linux-gnu/libc.so.6"].executable);
    }

    #[test]
    fn missing_program_is_named() {
        let e = resolve(
            &[("/usr/sbin/no-such".into(), Root::Program)],
            Path::new("/"),
        )
        .unwrap_err();
        assert!(e[0].starts_with("/usr/sbin/no-such: cannot read"), "{e:?}");
    }
}
