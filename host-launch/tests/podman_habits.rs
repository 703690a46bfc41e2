//! A podman user's first commands against a real appliance (the busybox httpd of the other
//! tests, in a network namespace): `start SPEC`, `ps`, `logs -f` and `events -f` that keep
//! following across a `restart`, `status --format json` and `status NAME`, `stop --all`,
//! `start NAME` from the last spec, `stop NAME -t`, `logs --tail`, `rm`, `help`, and the
//! answer to a word that is no command.
//!
//! Needs root (network namespace, TAP device); fails, rather than skips, without it.

mod common;

use common::{host_launch, http_get, setup, Setup, GUEST};
use e2e::host::output_text;
use std::io::Read;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// A `logs -f` or `events -f` running in the background, its output collected.
struct Follower {
    child: Child,
    out: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Follower {
    fn start(state: &Path, args: &[&str]) -> Follower {
        let mut child = host_launch(state, args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("host-launch follower");
        let mut stdout = child.stdout.take().expect("stdout");
        let out = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = out.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Follower { child, out }
    }

    fn text(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    /// Waits up to 20 s until the output holds `want` (the follower polls every 200 ms).
    fn wait_for(&self, want: impl Fn(&str) -> bool) -> String {
        let limit = Instant::now() + Duration::from_secs(20);
        loop {
            let t = self.text();
            if want(&t) || Instant::now() >= limit {
                return t;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_podman_users_first_commands() {
    let Setup { dir, ns, spec, .. } = setup("habits", 64);
    let test_start = host_launch::state::now_ms();
    let state = dir.join("state");
    let hl = |args: &[&str]| output_text(&mut host_launch(&state, args));
    let spec_s = spec.to_str().unwrap();

    let (code, out) = hl(&["start", spec_s, "--wait-ready", "60"]);
    assert_eq!(code, 0, "start SPEC: {out}");
    started_launcher_is_its_own_and_timed(&state.join("habits/state.json"));
    let (code, out) = hl(&["ps"]);
    assert_eq!(code, 0, "{out}");
    let row = out.lines().find(|l| l.starts_with("habits ")).unwrap_or("");
    assert!(row.contains("running") && row.contains("yes"), "ps: {out}");

    // Followers started now must see the restart's console and events.
    let logs = Follower::start(&state, &["logs", "-f", "habits"]);
    let events = Follower::start(&state, &["events", "--follow", "habits"]);
    let events_json = Follower::start(&state, &["events", "-f", "--format", "json", "habits"]);
    let seen = events.wait_for(|t| t.contains("ready: "));
    assert!(
        seen.contains("ready: "),
        "events -f before the restart: {seen}"
    );

    let (code, out) = hl(&["status", "--format", "json"]);
    assert_eq!(code, 0, "{out}");
    let all: serde_json::Value = serde_json::from_str(&out).expect("status --format json");
    assert_eq!(all[0]["name"], "habits", "{out}");
    assert_eq!(all[0]["running"], true, "{out}");
    let (code, one) = hl(&["inspect", "habits", "--json"]);
    assert_eq!(code, 0, "{one}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&one).unwrap()[0]["name"],
        "habits"
    );

    let first_console = std::fs::read_to_string(state.join("habits/console.log")).unwrap();
    let (code, out) = hl(&["restart", "habits", "--wait-ready", "60"]);
    assert_eq!(code, 0, "restart: {out}");
    assert!(out.contains("stopped 'habits': clean power-off"), "{out}");
    assert!(out.contains("started 'habits'"), "{out}");
    let body = http_get(&ns, &format!("{GUEST}:8080")).expect("HTTP after the restart");
    assert!(body.contains("hello from the appliance"), "{body}");

    // The events follower saw the power-off and the second run's ready; the JSON one the same
    // as objects; the console follower every line of the second run's console.
    let ev = events.wait_for(|t| t.matches("ready: ").count() >= 2);
    assert!(
        ev.contains("power off: ") && ev.matches("ready: ").count() >= 2,
        "{ev}"
    );
    let js = events_json.wait_for(|t| t.matches("\"ready\"").count() >= 2);
    for line in js.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("one JSON object a line");
        assert!(v["event"].is_string() && v["name"] == "habits", "{line}");
        assert!(
            v["guest_time"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{line}"
        );
    }
    assert!(js.matches("\"event\":\"ready\"").count() >= 2, "{js}");
    let console = std::fs::read_to_string(state.join("habits/console.log")).unwrap();
    let last = console
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap()
        .to_string();
    // The two runs print alike: the second run's last line is counted, not just found.
    let times =
        first_console.matches(last.as_str()).count() + console.matches(last.as_str()).count();
    let followed = logs.wait_for(|t| t.matches(last.as_str()).count() >= times);
    assert!(
        followed.matches(last.as_str()).count() >= times,
        "logs -f did not follow the restart to {last:?} ({times} times):\n{followed}"
    );
    drop((logs, events, events_json));

    let (code, out) = hl(&["stop", "--all"]);
    assert_eq!(code, 0, "stop --all: {out}");
    assert!(out.contains("stopped 'habits': clean power-off"), "{out}");
    // By name, from the spec it last ran; stopped with podman's -t.
    let (code, out) = hl(&["start", "habits", "--wait-ready", "60"]);
    assert_eq!(code, 0, "start NAME: {out}");
    let (code, out) = hl(&["stop", "habits", "-t", "60"]);
    assert_eq!(code, 0, "stop -t: {out}");

    // Times: each line after the host time it arrived; --since a time or a duration.
    let (code, stamped) = hl(&["logs", "habits", "--timestamps"]);
    assert_eq!(code, 0, "{stamped}");
    assert!(stamped.lines().count() > 3, "{stamped}");
    for line in stamped.lines() {
        let (ms, _) = host_launch::stamped::parse(line).expect("an RFC 3339 time first");
        assert!(
            ms >= test_start && ms <= host_launch::state::now_ms(),
            "{line}"
        );
    }
    let (code, recent) = hl(&["logs", "habits", "--since", "1h"]);
    assert_eq!(code, 0, "{recent}");
    assert_eq!(recent.lines().count(), stamped.lines().count(), "{recent}");
    let (_, future) = hl(&["logs", "habits", "--since", "2100-01-01T00:00:00Z"]);
    assert_eq!(future, "", "--since the future");
    let (code, out) = hl(&["logs", "habits", "--since", "soonish"]);
    assert_eq!(code, 128, "{out}");
    assert!(out.contains("--since \"soonish\""), "{out}");

    let (code, out) = hl(&["logs", "habits", "--tail", "3"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.lines().count(), 3, "logs --tail 3: {out}");
    let (code, out) = hl(&["status", "habits"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("habits: exited"), "{out}");
    assert!(!out.contains("Exited"), "no debug forms: {out}");

    let (code, out) = hl(&["stpo", "habits"]);
    assert_eq!(code, 128, "{out}");
    assert!(
        out.contains("unknown command 'stpo'; did you mean 'stop'?"),
        "{out}"
    );
    let (code, out) = hl(&["help"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("restart") && out.contains("HOST_LAUNCH_STATE_DIR"),
        "{out}"
    );
    let (code, out) = hl(&["rm", "habits"]);
    assert_eq!(code, 0, "rm: {out}");
    assert!(!state.join("habits").exists());
    let (code, out) = hl(&["start", "habits"]);
    assert_eq!(code, 126, "a forgotten name: {out}");
}

/// What `start` leaves in the state: a launcher in a session of its own (it calls setsid
/// itself, `run --new-session`, since `start` spawns it without a fork), the host's steps
/// in order up to UML's exec (`host_steps`, on the clock of `start`), and a readiness time
/// counted from `start`, so no shorter than those steps.
fn started_launcher_is_its_own_and_timed(state_file: &Path) {
    let st: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state_file).unwrap()).unwrap();
    let pid = st["launcher_pid"].as_u64().unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // After the command's closing parenthesis: state, ppid, pgrp, session.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    assert_eq!(fields[3], pid.to_string(), "the launcher's session: {stat}");
    let steps: Vec<(String, u64)> = st["host_steps"]["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("no host_steps in {st}"))
        .iter()
        .map(|s| {
            (
                s["step"].as_str().unwrap().to_string(),
                s["at_us"].as_u64().unwrap(),
            )
        })
        .collect();
    let names: Vec<&str> = steps.iter().map(|(n, _)| n.as_str()).collect();
    for want in [
        "launcher", "loaded", "locked", "uid", "tap", "nft", "jail", "uml_exec",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    assert_eq!(names.last(), Some(&"uml_exec"), "{names:?}");
    assert!(
        steps.windows(2).all(|w| w[0].1 <= w[1].1),
        "the steps are not in order: {steps:?}"
    );
    let start_us = st["host_steps"]["start_us"].as_u64().unwrap();
    assert!(
        start_us / 1000 <= st["started_at_ms"].as_u64().unwrap(),
        "start_us is after the launcher's first state: {st}"
    );
    let uml_exec_ms = steps.last().unwrap().1 / 1000;
    assert!(
        st["ready_after_ms"].as_u64().unwrap() >= uml_exec_ms,
        "ready_after_ms is not counted from start: {st}"
    );
}
