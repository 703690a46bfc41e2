//! Whether an upgraded appliance stays healthy for the settle time: the same launcher and VM
//! keep running, the service stays ready, and its events (written by the launcher from the
//! guest's status channel, so read bounded and parsed defensively) show no restart, exit,
//! failed liveness check or fatal error.

use crate::state::{self, Dir, Phase, State};
use std::io::{Read, Seek, SeekFrom};
use std::time::{Duration, Instant};

/// At most this much of the events file is read after the settle (a flood is itself a sign).
const EVENTS_BOUND: u64 = 1 << 20;

/// The events that fail the settle.
const UNHEALTHY: [&str; 4] = ["restarting", "exited", "liveness_failed", "fatal"];

/// Watches `dir` for `settle`; `Err` says what went wrong first.
pub fn watch(dir: &Dir, settle: Duration) -> Result<(), String> {
    let first = State::load(dir).ok_or("no state record after the upgrade")?;
    let from = std::fs::metadata(dir.events()).map_or(0, |m| m.len());
    let deadline = Instant::now() + settle;
    loop {
        still_up(dir, &first)?;
        if Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    match unhealthy_event(dir, from) {
        Some(e) => Err(format!("the guest reported '{e}' while settling")),
        None => Ok(()),
    }
}

/// The launcher and VM of `first` still run and the service is still ready.
fn still_up(dir: &Dir, first: &State) -> Result<(), String> {
    if !state::is_locked(dir) {
        return Err("the launcher ended while settling".into());
    }
    let now = State::load(dir).ok_or("the state record disappeared while settling")?;
    if now.launcher_pid != first.launcher_pid || now.uml_pid != first.uml_pid {
        return Err("the VM was restarted while settling".into());
    }
    if now.phase != Phase::Ready || !now.ready {
        return Err(format!(
            "the service stopped being ready while settling (phase {:?}{})",
            now.phase,
            now.outcome.map(|o| format!(", {o}")).unwrap_or_default()
        ));
    }
    Ok(())
}

/// The first unhealthy event written to the events file after byte `from`.
fn unhealthy_event(dir: &Dir, from: u64) -> Option<String> {
    let mut f = std::fs::File::open(dir.events()).ok()?;
    f.seek(SeekFrom::Start(from)).ok()?;
    let mut text = Vec::new();
    f.take(EVENTS_BOUND).read_to_end(&mut text).ok()?;
    first_unhealthy(&String::from_utf8_lossy(&text))
}

fn first_unhealthy(text: &str) -> Option<String> {
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v.get("event")?.as_str().map(str::to_string))
        .find(|e| UNHEALTHY.contains(&e.as_str()))
}

#[cfg(test)]
mod tests {
    use super::first_unhealthy;

    #[test]
    fn finds_restarts_and_skips_garbage() {
        let text = "{\"event\":\"log\"}\nnot json\n{\"event\":\"restarting\",\"attempt\":1}\n";
        assert_eq!(first_unhealthy(text).as_deref(), Some("restarting"));
        assert_eq!(first_unhealthy("{\"event\":\"ready\"}\n{\"x\":1}\n"), None);
        assert_eq!(
            first_unhealthy("{\"event\":\"liveness_failed\"}").as_deref(),
            Some("liveness_failed")
        );
    }
}
