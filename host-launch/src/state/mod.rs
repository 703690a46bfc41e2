//! The state directory of each appliance: `$HOST_LAUNCH_STATE_DIR/NAME/` (default
//! `/run/host-launch/NAME/`), holding
//!
//! | file            | what                                                          |
//! |-----------------|---------------------------------------------------------------|
//! | `lock`          | flock'ed by the running launcher: the appliance is up         |
//! | `state.json`    | [`State`]: phase, pids, uptime, readiness, last events        |
//! | `events.jsonl`  | every status event of the current run, one JSON per line      |
//! | `console.log`   | the guest console (kernel and guest-init) and UML's own output|
//! | `console.stamped.log` | its whole lines, each after its host time (`crate::stamped`) |
//! | `console.bootN.log` | the console of a boot repeated after the kernel ran out of memory |
//! | `config.img`    | the config block device carrying the contract (the VM's uid, 0400) |
//! | `jail/`         | where the VM's jail root is mounted, in the VM's own mount namespace only |
//! | `launcher.log`  | output of a launcher started in the background (`start`)      |
//! | `upgraded.json` | the image `upgrade` put in place of the spec's (see `upgrade`) |
//!
//! The directory is root's, mode 0700, and its files 0600 (the config device: root and the
//! VM's uid): a contract may hold secrets, and no other host user reads any of it. The
//! console and events logs are size-capped (see `vmm::channel`), with one rotated
//! predecessor each (`console.log.1`, `events.jsonl.1`).
//!
//! A launcher holds `lock` for its whole life, so a second launch of a running name fails to
//! take it; a launcher that died loses it, and the next launch cleans what it left.
//!
//! One module per job: [`dir`] (the layout), [`record`] (`state.json`), [`lock`],
//! [`process`] (/proc inspection and killing), [`list`], [`systemd`] (which unit runs the
//! launcher), [`clock`].

pub mod clock;
pub mod dir;
pub mod list;
pub mod lock;
pub mod process;
pub mod record;
pub mod systemd;

pub use clock::now_ms;
pub use dir::{base_dir, Dir, DEFAULT_STATE_DIR, STATE_DIR_ENV};
pub use list::{entry, list, natural_cmp, Entry};
pub use lock::{is_locked, try_flock, try_lock, Lock};
pub use process::{is_uml_with_umid, kill_uml_group, pid_alive, process_group};
pub use record::{
    temp_path, Dropped, GuestFigures, Phase, PolicyRecord, ServiceCounts, State, TapRecord,
    LAST_EVENTS,
};
pub use systemd::{unit_of_cgroup, Systemd};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_is_exclusive_and_visible() {
        let base = std::env::temp_dir().join(format!("hl-state-{}", std::process::id()));
        let dir = Dir::new(&base, "a1");
        std::fs::create_dir_all(&dir.path).unwrap();
        assert!(!is_locked(&dir));
        let held = try_lock(&dir).unwrap().expect("first lock");
        assert!(is_locked(&dir));
        assert!(try_lock(&dir).unwrap().is_none());
        drop(held);
        assert!(!is_locked(&dir));
        let mut s = State {
            name: "a1".into(),
            spec: "/s.json".into(),
            phase: Phase::Booting,
            launcher_pid: 1,
            uml_pid: None,
            umid: "a1-x".into(),
            image: Some("/i/root.img".into()),
            started_at_ms: 0,
            ready: false,
            ready_after_ms: None,
            booted_after_ms: None,
            service: Default::default(),
            guest: None,
            tap: None,
            policy: None,
            disks: vec![],
            outcome: None,
            exit_code: None,
            last_events: vec![],
            uid: Some(7),
            kernel: None,
            class: None,
            dropped: Default::default(),
            systemd: None,
            stop_timeout_ms: None,
            host_steps: None,
        };
        for i in 0..20 {
            s.push_event(serde_json::json!({"n": i}));
        }
        assert_eq!(s.last_events.len(), LAST_EVENTS);
        assert_eq!(s.last_events[0]["n"], 12);
        s.save(&dir).unwrap();
        assert_eq!(State::load(&dir).unwrap(), s);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.state()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "state files are root's alone");
        let l = list(&base);
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].name, "a1");
        std::fs::remove_dir_all(&base).unwrap();
        assert!(pid_alive(std::process::id()));
    }
}
