//! How guest-init words a system call's error number, in every message that shows one.

use nix::errno::Errno;

/// "Permission denied (EACCES)": the sentence for people, the name for searching.
pub fn text(e: Errno) -> String {
    format!("{} ({e:?})", e.desc())
}

#[cfg(test)]
mod tests {
    #[test]
    fn sentence_then_name() {
        assert_eq!(
            super::text(nix::errno::Errno::EACCES),
            "Permission denied (EACCES)"
        );
    }
}
