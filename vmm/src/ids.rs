//! Each VM's own host uid and gid, never root and never shared with another VM: a VM that
//! escapes into its UML process then owns only its own processes and files, and cannot
//! ptrace or signal a neighbour's.
//!
//! The ids come from a range reserved for VMs, configured like subordinate ids: a line
//! `host-launch:START:COUNT` in `/etc/subuid` (what `usermod --add-subuids` writes), or
//! `HOST_LAUNCH_IDS=START:COUNT` in the environment, else [`DEFAULT_RANGE`]. A name's id is
//! stable: the range slot its name hashes to, or the next free one after it (free: no
//! user or group of that number, not recorded for another VM). The gid is the same number.

use std::path::Path;

/// The environment variable that overrides the range.
pub const RANGE_ENV: &str = "HOST_LAUNCH_IDS";
/// The subordinate-id file and the owner name whose entry is the range.
pub const SUBUID_FILE: &str = "/etc/subuid";
pub const SUBUID_OWNER: &str = "host-launch";

/// A range of ids: `start .. start + count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub start: u32,
    pub count: u32,
}

/// Far above the ids of people, system users (below 65536) and the usual subordinate ranges
/// (from 100000 in steps of 65536).
pub const DEFAULT_RANGE: Range = Range {
    start: 0x6000_0000,
    count: 65536,
};

impl Range {
    pub fn contains(&self, id: u32) -> bool {
        id >= self.start && id - self.start < self.count
    }
}

/// Why a configured range is refused (the message names where it came from).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    #[error("{0:?} is not START:COUNT (two numbers, e.g. 1610612736:65536)")]
    NotStartCount(String),
    #[error("{0:?}: the range must not start at 0 (root) or be empty")]
    RootOrEmpty(String),
    #[error("{0:?}: the range runs past the largest id")]
    PastLargest(String),
    #[error("{RANGE_ENV}: {0}")]
    Env(Box<RangeError>),
    #[error("{SUBUID_FILE}: the {SUBUID_OWNER} entry {0}")]
    Subuid(Box<RangeError>),
}

/// `START:COUNT`, checked: never 0 (root), never past the last valid id.
pub fn parse_range(s: &str) -> Result<Range, RangeError> {
    let bad = || RangeError::NotStartCount(s.to_string());
    let (a, b) = s.trim().split_once(':').ok_or_else(bad)?;
    let start: u32 = a.trim().parse().map_err(|_| bad())?;
    let count: u32 = b.trim().parse().map_err(|_| bad())?;
    if start == 0 || count == 0 {
        return Err(RangeError::RootOrEmpty(s.to_string()));
    }
    if u64::from(start) + u64::from(count) > u64::from(u32::MAX) {
        return Err(RangeError::PastLargest(s.to_string()));
    }
    Ok(Range { start, count })
}

/// The `host-launch:START:COUNT` entry of a subuid file's text.
pub fn subuid_entry(text: &str) -> Option<Result<Range, RangeError>> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix(SUBUID_OWNER)?.strip_prefix(':'))
        .map(parse_range)
        .next()
}

/// The configured range and where it came from (for messages).
pub fn configured_range() -> Result<(Range, String), RangeError> {
    if let Some(v) = std::env::var_os(RANGE_ENV).filter(|v| !v.is_empty()) {
        let v = v.to_string_lossy();
        return parse_range(&v)
            .map(|r| (r, RANGE_ENV.to_string()))
            .map_err(|e| RangeError::Env(Box::new(e)));
    }
    if let Ok(text) = std::fs::read_to_string(Path::new(SUBUID_FILE)) {
        if let Some(r) = subuid_entry(&text) {
            return r
                .map(|r| (r, format!("{SUBUID_FILE} ({SUBUID_OWNER}:...)")))
                .map_err(|e| RangeError::Subuid(Box::new(e)));
        }
    }
    Ok((DEFAULT_RANGE, "the default range".into()))
}

/// FNV-1a: a stable hash (std's is randomly seeded per process).
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The id for `name`: its hash's slot, or the first after it that `taken` does not refuse.
pub fn pick(name: &str, range: Range, taken: impl Fn(u32) -> bool) -> Option<u32> {
    // Below `count`, so it fits.
    let first = u32::try_from(fnv1a(name) % u64::from(range.count)).unwrap_or(0);
    (0..range.count)
        .map(|i| range.start + (first + i) % range.count)
        .find(|&id| !taken(id))
}

/// Whether a user or group of this number exists on the host (a VM must not share it).
pub fn host_account_exists(id: u32) -> bool {
    // SAFETY: getpwuid_r/getgrgid_r write into the buffers given, within their lengths.
    unsafe {
        let mut buf = vec![0 as libc::c_char; 16384];
        let mut pw: libc::passwd = std::mem::zeroed();
        let mut out: *mut libc::passwd = std::ptr::null_mut();
        libc::getpwuid_r(id, &mut pw, buf.as_mut_ptr(), buf.len(), &mut out);
        if !out.is_null() {
            return true;
        }
        let mut gr: libc::group = std::mem::zeroed();
        let mut gout: *mut libc::group = std::ptr::null_mut();
        libc::getgrgid_r(id, &mut gr, buf.as_mut_ptr(), buf.len(), &mut gout);
        !gout.is_null()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(
            parse_range("100000:65536"),
            Ok(Range {
                start: 100000,
                count: 65536
            })
        );
        assert!(parse_range("0:10")
            .unwrap_err()
            .to_string()
            .contains("root"));
        assert!(parse_range("4294967000:1000")
            .unwrap_err()
            .to_string()
            .contains("largest"));
        assert!(parse_range("x")
            .unwrap_err()
            .to_string()
            .contains("START:COUNT"));
        let text = "alice:100000:65536\nhost-launch:300000:1000\n";
        assert_eq!(
            subuid_entry(text),
            Some(Ok(Range {
                start: 300000,
                count: 1000
            }))
        );
        assert_eq!(subuid_entry("host-launcher:1:2\n"), None);
        assert!(DEFAULT_RANGE.contains(DEFAULT_RANGE.start + 65535));
        assert!(!DEFAULT_RANGE.contains(DEFAULT_RANGE.start + 65536));
    }

    #[test]
    fn ids_are_stable_and_unique() {
        let r = Range {
            start: 5000,
            count: 4,
        };
        let a = pick("dns1", r, |_| false).unwrap();
        assert_eq!(pick("dns1", r, |_| false), Some(a), "stable for a name");
        assert!(r.contains(a));
        // Its slot taken: the next one, wrapping round.
        let b = pick("dns1", r, |id| id == a).unwrap();
        assert_ne!(a, b);
        assert_eq!(b, r.start + (a - r.start + 1) % 4);
        assert_eq!(pick("dns1", r, |_| true), None, "range full");
    }

    #[test]
    fn root_has_an_account() {
        assert!(host_account_exists(0));
        assert!(!host_account_exists(DEFAULT_RANGE.start + 17));
    }
}
