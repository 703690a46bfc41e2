//! When a running launcher writes `state.json`: a phase or readiness change at once, the rest
//! (last events, dropped counts) at most once per [`REFRESH`], and nothing while nothing
//! changed, so that an idle appliance's launcher never wakes up for it (500 idle launchers
//! waking every second cost the fleet CPU). A write that fails (a full or busy state
//! directory) leaves the state unsaved and is tried again one [`REFRESH`] later: a phase
//! change is never lost because its one write failed (when 500 VMs ran at once, one `status`
//! said "ready: no" although its events held `ready`).

use crate::state::{Dir, State};
use std::time::{Duration, Instant};

/// The least time between two writes that no phase change forces.
pub const REFRESH: Duration = Duration::from_secs(1);

/// What is written of one run's state, and when.
#[derive(Debug)]
pub struct Saver {
    /// When the state file was last written (or a write last tried).
    last: Instant,
    /// The state holds what the file does not.
    dirty: bool,
}

impl Saver {
    pub fn new(now: Instant) -> Saver {
        Saver {
            last: now,
            dirty: false,
        }
    }

    /// The state changed; `urgent` (its phase or readiness) writes it now, anything else when
    /// [`REFRESH`] has passed since the last write.
    pub fn changed(&mut self, st: &State, dir: &Dir, urgent: bool, now: Instant) {
        self.dirty = true;
        if urgent || now.saturating_duration_since(self.last) >= REFRESH {
            self.save(st, dir, now);
        }
    }

    /// Writes what is unsaved if [`REFRESH`] has passed since the last write.
    pub fn tick(&mut self, st: &State, dir: &Dir, now: Instant) {
        if self.dirty && now.saturating_duration_since(self.last) >= REFRESH {
            self.save(st, dir, now);
        }
    }

    /// How long until [`Saver::tick`] has something to write; `None` while all is saved.
    pub fn due(&self, now: Instant) -> Option<Duration> {
        self.dirty
            .then(|| REFRESH.saturating_sub(now.saturating_duration_since(self.last)))
    }

    fn save(&mut self, st: &State, dir: &Dir, now: Instant) {
        self.last = now;
        // A failed write stays dirty and is tried again at the next tick.
        self.dirty = st.save(dir).is_err();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Phase;

    fn state() -> State {
        let text = r#"{"name":"s1","spec":"/s.json","phase":"booting","launcher_pid":1,
            "umid":"s1-x","started_at_ms":0,"ready":false}"#;
        serde_json::from_str(text).unwrap()
    }

    fn dir(label: &str) -> Dir {
        let base = std::env::temp_dir().join(format!("hl-saver-{label}-{}", std::process::id()));
        let d = Dir::new(&base, "s1");
        let _ = std::fs::remove_dir_all(&d.path);
        std::fs::create_dir_all(&d.path).unwrap();
        d
    }

    /// Makes every write of `dir`'s state fail (its temporary file's name is a directory).
    fn block_writes(d: &Dir, blocked: bool) {
        let tmp = crate::state::temp_path(d);
        if blocked {
            std::fs::create_dir_all(tmp.join("x")).unwrap();
        } else {
            std::fs::remove_dir_all(tmp).unwrap();
        }
    }

    #[test]
    fn a_phase_change_whose_write_failed_is_written_later() {
        let d = dir("retry");
        let t0 = Instant::now();
        let mut s = Saver::new(t0);
        let mut st = state();
        s.changed(&st, &d, true, t0);
        assert_eq!(State::load(&d).unwrap().phase, Phase::Booting);
        block_writes(&d, true);
        st.phase = Phase::Ready;
        st.ready = true;
        s.changed(&st, &d, true, t0);
        assert!(!State::load(&d).unwrap().ready, "the write failed");
        assert_eq!(s.due(t0), Some(REFRESH), "the failed write is due again");
        block_writes(&d, false);
        s.tick(&st, &d, t0 + REFRESH / 2);
        assert!(!State::load(&d).unwrap().ready, "not before REFRESH");
        s.tick(&st, &d, t0 + REFRESH);
        let back = State::load(&d).unwrap();
        assert!(
            back.ready && back.phase == Phase::Ready,
            "written at the retry"
        );
        assert_eq!(s.due(t0 + REFRESH), None, "all saved: no wake-up needed");
        std::fs::remove_dir_all(&d.path).unwrap();
    }

    #[test]
    fn other_changes_are_throttled_but_never_dropped() {
        let d = dir("throttle");
        let t0 = Instant::now();
        let mut s = Saver::new(t0);
        let mut st = state();
        assert_eq!(s.due(t0), None, "nothing to write: the launcher may sleep");
        st.push_event(serde_json::json!({"event": "a"}));
        s.changed(&st, &d, false, t0);
        assert!(State::load(&d).is_none(), "throttled");
        st.push_event(serde_json::json!({"event": "b"}));
        s.changed(&st, &d, false, t0 + REFRESH / 2);
        assert!(State::load(&d).is_none(), "still throttled");
        assert_eq!(s.due(t0 + REFRESH / 2), Some(REFRESH / 2));
        s.tick(&st, &d, t0 + REFRESH);
        assert_eq!(
            State::load(&d).unwrap().last_events.len(),
            2,
            "the last event too"
        );
        assert_eq!(s.due(t0 + REFRESH), None);
        std::fs::remove_dir_all(&d.path).unwrap();
    }
}
