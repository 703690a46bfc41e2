//! `ps ID`: the container's processes on the host, as containerd's shim asks for them
//! (`ctr task ps`, the task service's Pids): the monitor and the VM's processes (UML's
//! threads of execution are host processes of the VM's uid). Nothing runs "in" the
//! container besides them: the guest's processes are the guest kernel's.

use crate::error::{Error, Result};
use crate::state::{self, Dir};
use std::collections::BTreeMap;
use std::path::Path;

/// The pids of the container `id` (none once it stopped), monitor first.
pub fn pids(root: &Path, id: &str) -> Result<Vec<u32>> {
    let dir = Dir::new(root, id)?;
    let s = dir.load()?;
    if !state::alive(&s) {
        return Ok(Vec::new());
    }
    Ok(descendants(s.pid, &parents()))
}

/// `ps --format json` prints a JSON array of pids (runc's); `table` a PID column.
pub fn render(pids: &[u32], format: &str) -> Result<String> {
    match format {
        "json" => Ok(serde_json::to_string(pids).unwrap_or_else(|_| "[]".into())),
        "table" => {
            let mut out = String::from("PID\n");
            for p in pids {
                out.push_str(&format!("{p}\n"));
            }
            Ok(out.trim_end().to_string())
        }
        other => Err(Error::new(format!(
            "ps --format {other:?}: unknown; use json or table"
        ))),
    }
}

/// Every process's parent, from `/proc/PID/stat`.
fn parents() -> BTreeMap<u32, u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return BTreeMap::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            Some((pid, parent_of(&stat)?))
        })
        .collect()
}

/// The parent pid in a `/proc/PID/stat` line (after the command's closing parenthesis,
/// which may itself hold spaces and parentheses).
fn parent_of(stat: &str) -> Option<u32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// `top` and all its descendants, `top` first.
fn descendants(top: u32, parents: &BTreeMap<u32, u32>) -> Vec<u32> {
    let mut out = vec![top];
    let mut i = 0;
    while i < out.len() {
        let p = out[i];
        out.extend(parents.iter().filter(|(_, &pp)| pp == p).map(|(&c, _)| c));
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parent_comes_after_the_command() {
        assert_eq!(parent_of("42 (a) b) S 7 42 42 0"), Some(7));
        assert_eq!(parent_of("garbage"), None);
    }

    #[test]
    fn descendants_are_found_through_every_level() {
        let parents = BTreeMap::from([(2, 1), (3, 2), (4, 3), (5, 1), (9, 8)]);
        let mut d = descendants(2, &parents);
        d.sort();
        assert_eq!(d, vec![2, 3, 4]);
    }

    #[test]
    fn formats_are_runcs() {
        assert_eq!(render(&[5, 6], "json").unwrap(), "[5,6]");
        assert_eq!(render(&[], "json").unwrap(), "[]");
        assert_eq!(render(&[5], "table").unwrap(), "PID\n5");
        assert!(render(&[5], "yaml")
            .unwrap_err()
            .0
            .contains("json or table"));
    }
}
