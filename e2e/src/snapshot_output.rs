//! What tests and benches read from `host-launch snapshot` and `backup` output: the first
//! line `... consistent (quiesce Q ms, frozen G ms in the guest, H ms seen by the host)`, a
//! snapshot's `DISK -> COPY (METHOD, ...)` lines, a backup's `ARCHIVE (...)` line.

use std::path::PathBuf;

/// The guest's frozen time, in ms.
pub fn frozen_ms(text: &str) -> Option<u64> {
    number_after(text, "frozen ")
}

/// The frozen time the host saw, in ms.
pub fn host_frozen_ms(text: &str) -> Option<u64> {
    number_after(text, "in the guest, ")
}

/// The first disk's copy.
pub fn first_copy(text: &str) -> Option<PathBuf> {
    text.lines()
        .find_map(|l| l.trim().split(" -> ").nth(1))
        .and_then(|r| r.split(" (").next())
        .map(PathBuf::from)
}

/// A backup's archive.
pub fn archive(text: &str) -> Option<PathBuf> {
    text.lines()
        .find_map(|l| {
            l.trim()
                .split(" (")
                .next()
                .filter(|p| p.ends_with(".tar.gz"))
        })
        .map(PathBuf::from)
}

/// The number right after the first `marker` in `text` (e.g. `quiesce ` in `(quiesce 312 ms,`).
pub fn number_after(text: &str, marker: &str) -> Option<u64> {
    text.split(marker)
        .nth(1)?
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_and_a_backup_are_read() {
        let snap = "snapshot of 's': consistent (quiesce 344 ms, frozen 21 ms in the guest, 9 ms \
                    seen by the host)\n  /dev/ubdb -> /s/disk0.img (sparse copy, 64 MiB)\n";
        assert_eq!(frozen_ms(snap), Some(21));
        assert_eq!(host_frozen_ms(snap), Some(9));
        assert_eq!(first_copy(snap), Some(PathBuf::from("/s/disk0.img")));
        let backup = "backup of 's': consistent (frozen 3 ms in the guest, 1 ms seen by the \
                      host)\n  /b/s-1.tar.gz (5 MiB), sha256 ab\n";
        assert_eq!(archive(backup), Some(PathBuf::from("/b/s-1.tar.gz")));
        assert_eq!(first_copy(backup), None);
    }
}
