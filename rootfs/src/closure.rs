//! The shared-library closure of a set of programs and plugins: every library they need
//! (`DT_NEEDED`, recursively), found the way the dynamic loader finds it (`DT_RPATH`, then
//! `DT_RUNPATH`, then the system directories), plus each program's loader (`PT_INTERP`).
//!
//! Everything is looked up under one root: the builder's staging root of unpacked Debian
//! packages (never the host's own files), or `/` for the test harness. Symbolic links are
//! followed inside that root (an absolute target such as libc6's
//! `/lib64/ld-linux-x86-64.so.2 -> /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2` means the
//! root's file, not the host's).
//!
//! The image keeps the root's paths: a library found at `/lib/x86_64-linux-gnu/libc.so.6`
//! under the root is `/lib/x86_64-linux-gnu/libc.so.6` in the image (a regular file: links are
//! followed), so the guest's loader finds it in its default directories without an
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
    /// The file to copy, under the root (symlinks resolved inside the root).
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

/// Resolves `roots` (image path = path under `host_root`) under `host_root` (the staging root
/// of unpacked packages, or `/` for the test harness). Returns every object, or every
/// problem found.
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
        let via = needed_by
            .as_ref()
            .map(|n| format!(" (needed by {n})"))
            .unwrap_or_default();
        let (source, dynamic) = match read_object(host_root, &path, &via) {
            Ok(o) => o,
            Err(e) => {
                problems.push(e.to_string());
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
        if let Some(interp) = &dynamic.interpreter {
            if let Some(base) = interp.rsplit('/').next() {
                if !loaders.iter().any(|l| l == base) {
                    loaders.push(base.to_string());
                }
            }
            queue.push_back((interp.clone(), Some(path.clone()), true));
        }
        for found in needed_libraries(&path, &via, &dynamic, &loaders, host_root, &mut problems) {
            queue.push_back((found, Some(path.clone()), false));
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

/// The object at guest path `path` in the host root: where it is read from and its dynamic
/// section, or why not (`via` says which object needed it).
fn read_object(
    host_root: &Path,
    path: &str,
    via: &str,
) -> Result<(PathBuf, elf::Dynamic), ObjectError> {
    let unreadable = |file: PathBuf| {
        move |source| ObjectError::Unreadable {
            object: format!("{path}{via}"),
            file,
            source,
        }
    };
    let host = locate(host_root, path).map_err(unreadable(host_path(host_root, path)))?;
    let bytes = std::fs::read(&host).map_err(unreadable(host.clone()))?;
    let dynamic = elf::parse(&bytes).map_err(|source| ObjectError::NotElf {
        object: format!("{path}{via}"),
        source,
    })?;
    Ok((host, dynamic))
}

/// Why an object of the closure cannot be taken (one line of the closure's problems).
#[derive(Debug, thiserror::Error)]
enum ObjectError {
    #[error("{object}: cannot read {}: {source}", file.display())]
    Unreadable {
        object: String,
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{object}: {source}")]
    NotElf {
        object: String,
        source: elf::ElfError,
    },
}

/// The guest paths of the libraries `path` needs (the loader aside), each one not found
/// added to `problems` with the directories searched.
fn needed_libraries(
    path: &str,
    via: &str,
    dynamic: &elf::Dynamic,
    loaders: &[String],
    host_root: &Path,
    problems: &mut Vec<String>,
) -> Vec<String> {
    let dir = Path::new(path)
        .parent()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|| "/".into());
    let mut found = Vec::new();
    for name in &dynamic.needed {
        if loaders.iter().any(|l| l == name) {
            continue;
        }
        match find_library(name, dynamic, &dir, host_root, dynamic.machine) {
            Some(f) => found.push(f),
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
    found
}

fn host_path(host_root: &Path, guest: &str) -> PathBuf {
    host_root.join(guest.trim_start_matches('/'))
}

/// The file `guest` names under `root`, with every symbolic link on the way followed inside
/// `root` (an absolute target is taken from `root`, `..` never leaves it). At most 40 links,
/// as the kernel allows.
pub fn locate(root: &Path, guest: &str) -> std::io::Result<PathBuf> {
    let mut done: Vec<String> = Vec::new();
    let mut todo: VecDeque<String> = guest
        .split('/')
        .filter(|c| !c.is_empty())
        .map(String::from)
        .collect();
    let mut links = 0;
    while let Some(c) = todo.pop_front() {
        match c.as_str() {
            "." => continue,
            ".." => {
                done.pop();
                continue;
            }
            _ => {}
        }
        let at = root.join(done.join("/")).join(&c);
        let meta = std::fs::symlink_metadata(&at)?;
        if !meta.file_type().is_symlink() {
            done.push(c);
            continue;
        }
        links += 1;
        if links > 40 {
            return Err(std::io::Error::other(format!(
                "too many levels of symbolic links at {}",
                at.display()
            )));
        }
        let target = std::fs::read_link(&at)?;
        let target = target.to_string_lossy();
        if target.starts_with('/') {
            done.clear();
        }
        for (i, t) in target.split('/').filter(|t| !t.is_empty()).enumerate() {
            todo.insert(i, t.to_string());
        }
    }
    Ok(root.join(done.join("/")))
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
        return Some(name.to_string()).filter(|p| locate(host_root, p).is_ok_and(|h| h.is_file()));
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
        let Ok(bytes) = locate(host_root, &candidate).and_then(std::fs::read) else {
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
    fn links_are_followed_inside_the_root() {
        let dir = std::env::temp_dir().join(format!("closure-locate-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("lib/x")).unwrap();
        std::fs::create_dir_all(dir.join("lib64")).unwrap();
        std::fs::write(dir.join("lib/x/ld.so"), b"loader").unwrap();
        // Absolute and relative links, and a `..` that would leave the root.
        std::os::unix::fs::symlink("/lib/x/ld.so", dir.join("lib64/ld")).unwrap();
        std::os::unix::fs::symlink("../lib/x/ld.so", dir.join("lib64/rel")).unwrap();
        std::os::unix::fs::symlink("../../../../lib/x/ld.so", dir.join("lib64/up")).unwrap();
        std::os::unix::fs::symlink("loop", dir.join("lib64/loop")).unwrap();
        for l in ["/lib64/ld", "/lib64/rel", "/lib64/up"] {
            assert_eq!(locate(&dir, l).unwrap(), dir.join("lib/x/ld.so"), "{l}");
        }
        assert!(locate(&dir, "/lib64/loop").is_err());
        assert!(locate(&dir, "/lib64/none").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
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
