//! Once the service is first ready, PID 1 gives back what the boot left in the page cache and
//! will not read again: read-ahead and files read once (the contract, guest-init's own
//! configuration, the service's start script). `vm.drop_caches = 1` drops clean page cache
//! that no process maps, so the service's mapped binaries and libraries stay; the freed
//! pages go back to the host through the kernel's free page reporting (the project's kernel,
//! kernel/patches/0009). It waits [`AFTER_READY`] after `ready`, so that neither the ready
//! event nor the first answer waits for it, and so that what the service reads right after
//! it listens (Knot's zone) is read first. Figures: guest-init/README.md.

use std::time::{Duration, Instant};

/// How long after the service's first `ready` the page cache is dropped.
pub const AFTER_READY: Duration = Duration::from_secs(5);

const DROP_CACHES: &str = "/proc/sys/vm/drop_caches";

/// When to trim: once per boot, [`AFTER_READY`] after the first `ready` (a restarted
/// service's `ready` does not trim again: what it reads is what it needs).
#[derive(Debug, Default)]
pub struct Trim {
    at: Option<Instant>,
    done: bool,
}

impl Trim {
    /// The service became ready at `now`.
    pub fn on_ready(&mut self, now: Instant) {
        if !self.done && self.at.is_none() {
            self.at = Some(now + AFTER_READY);
        }
    }

    /// When the trim is due, if it is still to come (a poll deadline).
    pub fn deadline(&self) -> Option<Instant> {
        self.at
    }

    /// Whether the trim is due at `now`; true once, then never again.
    pub fn take_due(&mut self, now: Instant) -> bool {
        match self.at {
            Some(t) if t <= now => {
                self.at = None;
                self.done = true;
                true
            }
            _ => false,
        }
    }
}

/// Drops the clean, unmapped page cache; the error says what failed.
pub fn drop_page_cache() -> Result<(), String> {
    std::fs::write(DROP_CACHES, b"1")
        .map_err(|e| format!("memory: writing 1 to {DROP_CACHES}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_once_after_the_first_ready() {
        let t0 = Instant::now();
        let mut t = Trim::default();
        assert_eq!(t.deadline(), None, "nothing before ready");
        assert!(!t.take_due(t0 + Duration::from_secs(60)));
        t.on_ready(t0);
        assert_eq!(t.deadline(), Some(t0 + AFTER_READY));
        assert!(!t.take_due(t0), "not at ready itself");
        // A second ready (the service restarted) before the trim does not postpone it.
        t.on_ready(t0 + Duration::from_secs(1));
        assert_eq!(t.deadline(), Some(t0 + AFTER_READY));
        assert!(t.take_due(t0 + AFTER_READY));
        assert_eq!(t.deadline(), None);
        assert!(!t.take_due(t0 + AFTER_READY * 2));
        // A ready after the trim does not trim again.
        t.on_ready(t0 + AFTER_READY * 3);
        assert_eq!(t.deadline(), None);
    }
}
