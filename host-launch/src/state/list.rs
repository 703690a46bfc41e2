//! Every appliance with a state directory, in natural order, as `status` and `list` show
//! them.

use super::{is_locked, Dir, State};
use std::path::Path;

/// One appliance as `status` and `list` show it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    pub dir: Dir,
    pub state: Option<State>,
    /// A launcher holds the lock.
    pub running: bool,
}

/// Every appliance with a state directory, by name.
pub fn list(base: &Path) -> Vec<Entry> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(base) else {
        return out;
    };
    for e in rd.flatten() {
        let Some(name) = e.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if appliance::spec::check_name(&name).is_err() || !e.path().is_dir() {
            continue;
        }
        out.push(entry(base, &name));
    }
    out.sort_by(|a, b| natural_cmp(&a.name, &b.name));
    out
}

/// Natural order: runs of digits compare as numbers, so d1, d2, d10 (not d1, d10, d2).
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn parts(s: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let mut start = 0;
        let b = s.as_bytes();
        for i in 1..=b.len() {
            if i == b.len() || b[i].is_ascii_digit() != b[start].is_ascii_digit() {
                out.push((b[start].is_ascii_digit(), &s[start..i]));
                start = i;
            }
        }
        out
    }
    let (pa, pb) = (parts(a), parts(b));
    for ((da, xa), (db, xb)) in pa.iter().zip(pb.iter()) {
        let o = if *da && *db {
            let (ta, tb) = (xa.trim_start_matches('0'), xb.trim_start_matches('0'));
            ta.len().cmp(&tb.len()).then(ta.cmp(tb))
        } else {
            xa.cmp(xb)
        };
        if o != std::cmp::Ordering::Equal {
            return o;
        }
    }
    pa.len().cmp(&pb.len()).then(a.cmp(b))
}

/// One appliance's entry.
pub fn entry(base: &Path, name: &str) -> Entry {
    let dir = Dir::new(base, name);
    Entry {
        name: name.to_string(),
        state: State::load(&dir),
        running: is_locked(&dir),
        dir,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_in_natural_order() {
        let mut v = vec!["d10", "d2", "web1", "d1", "d100", "d02", "dns1", "a"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, ["a", "d1", "d02", "d2", "d10", "d100", "dns1", "web1"]);
    }
}
