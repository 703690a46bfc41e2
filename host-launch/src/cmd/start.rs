//! `start SPEC|NAME`: the appliance in the background, waiting until UML runs (or is ready).
//! A NAME is an appliance this host knows, started from the spec it last ran.

use crate::error::{Error, Result};
use crate::launch::{load, run};
use crate::lifecycle::{self, spawn_background};
use crate::state::{self, Dir, Phase, State};
use crate::timeline::Clocks;
use std::path::Path;
use std::time::{Duration, Instant};

/// `start SPEC|NAME`: `target` is a spec file when [`lifecycle::is_spec_path`] says so,
/// otherwise the name of an appliance this host knows.
pub fn start_target(target: &str, wait_ready: Option<Duration>) -> Result<i32> {
    let spec = if lifecycle::is_spec_path(target) {
        target.into()
    } else {
        lifecycle::last_spec(target)?
    };
    start(&spec, wait_ready)
}

/// Starts the appliance in the background: re-runs this program as `run SPEC` in a new
/// session with its output in the state directory's `launcher.log`, and waits until UML runs
/// (or, with `wait_ready`, until the service is ready).
pub fn start(spec: &Path, wait_ready: Option<Duration>) -> Result<i32> {
    let started = Clocks::now();
    // The checks `run` makes before it touches the host, so that a bad spec fails here with
    // its message; not `check`'s whole description (it runs the kernel for its version).
    let l = &load::load_for_launch(&load::SpecFile::read(spec)?, None)?;
    run::preflight(l)?;
    let dir = Dir::new(&state::base_dir(), &l.spec.name);
    let mut child = spawn_background(l, None, started)?;
    let pid = child.id();
    let limit = Instant::now() + wait_ready.unwrap_or(Duration::from_secs(30));
    let mut seen = None;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(dir.launcher_log()).unwrap_or_default();
            eprint!("{log}");
            return Ok(status.code().unwrap_or(crate::exit::HOST));
        }
        let stamp = state_stamp(&dir);
        let changed = stamp.is_some() && stamp != seen;
        seen = stamp;
        if let Some(st) = changed
            .then(|| State::load(&dir))
            .flatten()
            .filter(|s| s.launcher_pid == pid)
        {
            let up = match wait_ready {
                Some(_) => st.phase == Phase::Ready,
                None => matches!(st.phase, Phase::Booting | Phase::Ready),
            };
            if up {
                println!(
                    "started '{}' (launcher pid {pid}, UML pid {}){}; logs: {}",
                    st.name,
                    st.uml_pid.map(|p| p.to_string()).unwrap_or_default(),
                    st.ready_after_ms
                        .map(|ms| format!(", ready after {ms} ms"))
                        .unwrap_or_default(),
                    dir.launcher_log().display()
                );
                return Ok(0);
            }
        }
        if Instant::now() >= limit {
            return Err(Error::host(format!(
                "the appliance did not come up in time; see {} and `host-launch status {}`",
                dir.launcher_log().display(),
                l.spec.name
            )));
        }
        std::thread::sleep(lifecycle::WAIT_POLL);
    }
}

/// What tells a new `state.json` from the last one seen (so `start` reads it only when it
/// changed): the launcher replaces it by a rename
/// (a new inode) on every save.
fn state_stamp(dir: &Dir) -> Option<(u64, u64, i64, i64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(dir.state()).ok()?;
    Some((m.dev(), m.ino(), m.mtime(), m.mtime_nsec()))
}
