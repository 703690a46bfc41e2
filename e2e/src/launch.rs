//! Appliances run by `host-launch` in tests and benchmarks: the executable, the user UML runs
//! as, and a `host-launch run SPEC` child of the test whose output is collected until its
//! "ready" line and which is stopped with SIGTERM.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The host-launch executable, built once per process with cargo for the host (for the tests
/// of other packages; host-launch's own have `CARGO_BIN_EXE_host-launch`).
pub fn host_launch_exe() -> PathBuf {
    crate::build_host("host-launch", "host-launch")
}

/// A `host-launch run SPEC` in the foreground, its output lines (standard error's marked
/// `(stderr) `) collected on threads.
#[derive(Debug)]
pub struct Launch {
    pub child: Child,
    pub name: String,
    pub state: PathBuf,
    pub started: Instant,
    rx: mpsc::Receiver<String>,
    pub lines: Vec<String>,
}

impl Launch {
    /// Starts `EXE run SPEC` for appliance `name` with the state base directory `state`.
    pub fn start(exe: &Path, spec: &Path, name: &str, state: &Path) -> Launch {
        Launch::start_with_env(exe, spec, name, state, &[])
    }

    /// [`Launch::start`] with more environment (e.g. `HOST_LAUNCH_CACHE_DIR`).
    pub fn start_with_env(
        exe: &Path,
        spec: &Path,
        name: &str,
        state: &Path,
        env: &[(&str, &Path)],
    ) -> Launch {
        let started = Instant::now();
        let mut child = Command::new(exe)
            .arg("run")
            .arg(spec)
            .env("HOST_LAUNCH_STATE_DIR", state)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("host-launch");
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        let tx2 = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx2.send(format!("(stderr) {line}"));
            }
        });
        Launch {
            child,
            name: name.to_string(),
            state: state.to_path_buf(),
            started,
            rx,
            lines: Vec::new(),
        }
    }

    /// Waits for the "ready" line (`[<time>] ready: ...`); returns the time since the start,
    /// or (the launcher killed) the output so far and the console's end.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<Duration, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(l) => {
                    let ready = l.starts_with('[') && l.contains(" ready: ");
                    self.lines.push(l);
                    if ready {
                        return Ok(self.started.elapsed());
                    }
                }
                Err(e) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    self.drain(Duration::from_millis(500));
                    return Err(format!(
                        "no ready event within {} s ({e:?}):\n{}\n--- console:\n{}",
                        timeout.as_secs(),
                        self.lines.join("\n"),
                        self.console_tail(40)
                    ));
                }
            }
        }
    }

    fn drain(&mut self, quiet_for: Duration) {
        while let Ok(l) = self.rx.recv_timeout(quiet_for) {
            self.lines.push(l);
        }
    }

    /// SIGTERM, then waits for the launcher; returns its exit code and all its output.
    pub fn stop(mut self) -> (Option<i32>, String) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let code = self.child.wait().unwrap().code();
        self.drain(Duration::from_millis(500));
        (code, std::mem::take(&mut self.lines).join("\n"))
    }

    /// The appliance's `state.json`.
    pub fn state_json(&self) -> Value {
        let p = self.state.join(&self.name).join("state.json");
        serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap()
    }

    /// The status events of the run so far.
    pub fn events(&self) -> Vec<Value> {
        let p = self.state.join(&self.name).join("events.jsonl");
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The first event called `name`.
    pub fn event(&self, name: &str) -> Option<Value> {
        self.events().into_iter().find(|e| e["event"] == name)
    }

    pub fn uml_pid(&self) -> u32 {
        let pid = self.state_json()["uml_pid"].as_u64().expect("uml_pid");
        u32::try_from(pid).expect("a pid fits in u32")
    }

    /// The last `n` lines of the appliance's console log.
    pub fn console_tail(&self, n: usize) -> String {
        let p = self.state.join(&self.name).join("console.log");
        let text = std::fs::read_to_string(p).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

impl Drop for Launch {
    /// A launcher still running (a test that failed before it stopped it) is killed.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
