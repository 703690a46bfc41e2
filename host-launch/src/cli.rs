//! The subcommands other than `run`: check, start, stop, status, list, logs, console, schema.

use crate::error::{Error, IoContext, Result};
use crate::load::{self, Loaded};
use crate::state::{self, Dir, Phase, State};
use crate::{events, run, vm};
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What `check` found: the merged contract and the command line `run` would use.
pub struct CheckReport {
    pub loaded: Loaded,
    pub text: String,
}

/// Validates a spec against its image without touching the host, and describes the launch.
pub fn check(spec: &Path) -> Result<CheckReport> {
    check_image(spec, None)
}

/// [`check`] with `image` in place of the spec's (see [`load::load_for_launch`]).
pub fn check_image(spec: &Path, image: Option<&Path>) -> Result<CheckReport> {
    let l = load::load_for_launch(spec, image)?;
    let planned = run::preflight(&l)?;
    let dir = Dir::new(&state::base_dir(), &l.spec.name);
    let machine = vm::machine(&l, &dir, format!("{}-XXXXXX", l.spec.name), false);
    let args = vmm::cmdline::command_line(&machine).map_err(Error::invalid)?;
    let recorded = State::load(&dir).and_then(|s| s.uid);
    let uid = vm::assign_uid(&state::base_dir(), &l.spec.name, recorded)
        .map(|u| u.to_string())
        .unwrap_or_else(|e| format!("none: {e}"));
    let mut t = String::new();
    let mut line = |s: String| {
        t.push_str(&s);
        t.push('\n');
    };
    line(format!("spec:     {}", l.spec_path.display()));
    line(format!("image:    {}", l.image.display()));
    line(format!("manifest: {}", l.manifest_path.display()));
    line(format!("state:    {}", dir.path.display()));
    line(format!("kernel:   {}", run::describe_kernel(&l.kernel)));
    line(format!(
        "run as:   uid {uid} (the VM's own, in a jail: {} MiB /tmp, no capabilities)",
        l.spec.memory_mib + 4
    ));
    for (d, p) in l.merged.disks.iter().zip(&planned) {
        let what = match p.action {
            crate::disks::Action::Use => "exists, used as it is".to_string(),
            crate::disks::Action::Create(n) => format!("will be created sparse, {} MiB", n >> 20),
        };
        let mp = l
            .merged
            .contract
            .mounts
            .disks
            .iter()
            .find(|c| c.device == d.device)
            .map(|c| c.mount_point.clone())
            .unwrap_or_default();
        line(format!(
            "disk:     {} -> {} at {mp} ({what})",
            p.path.display(),
            d.device
        ));
    }
    if let Some(n) = &l.spec.network {
        line(format!(
            "network:  TAP {}{}{}",
            n.tap,
            n.netns
                .as_ref()
                .map(|s| format!(" in netns {s}"))
                .unwrap_or_default(),
            n.host_address
                .as_ref()
                .map(|a| format!(", host side {a}"))
                .or_else(|| n.bridge.as_ref().map(|b| format!(", bridge {b}")))
                .unwrap_or_default()
        ));
    }
    for p in &l.manifest.ports {
        line(format!(
            "port:     {}/{:?}{}",
            p.port,
            p.protocol,
            p.description
                .as_ref()
                .map(|d| format!(" ({d})"))
                .unwrap_or_default()
        ));
    }
    line("contract:".into());
    line(serde_json::to_string_pretty(&l.merged.contract).unwrap_or_default());
    line("UML command line:".into());
    line(vmm::cmdline::shown(&l.kernel, &args));
    Ok(CheckReport { loaded: l, text: t })
}

/// Starts the appliance in the background: re-runs this program as `run SPEC` in a new
/// session with its output in the state directory's `launcher.log`, and waits until UML runs
/// (or, with `wait_ready`, until the service is ready).
pub fn start(spec: &Path, wait_ready: Option<Duration>) -> Result<i32> {
    let report = check(spec)?;
    let l = &report.loaded;
    let dir = Dir::new(&state::base_dir(), &l.spec.name);
    let mut child = spawn_background(l, None)?;
    let pid = child.id();
    let limit = Instant::now() + wait_ready.unwrap_or(Duration::from_secs(30));
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(dir.launcher_log()).unwrap_or_default();
            eprint!("{log}");
            return Ok(status.code().unwrap_or(crate::exit::HOST));
        }
        if let Some(st) = State::load(&dir).filter(|s| s.launcher_pid == pid) {
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
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts `host-launch run SPEC [--image IMAGE]` in a new session, its output in the state
/// directory's `launcher.log`. Refused (121) while a launcher runs the appliance.
pub fn spawn_background(l: &Loaded, image: Option<&Path>) -> Result<std::process::Child> {
    let base = state::base_dir();
    let dir = Dir::new(&base, &l.spec.name);
    if state::is_locked(&dir) {
        return Err(Error::busy(format!(
            "appliance '{}' is already running; stop it first with `host-launch stop {}`",
            l.spec.name, l.spec.name
        )));
    }
    std::fs::create_dir_all(&dir.path).io_context(|| format!("creating {}", dir.path.display()))?;
    let log = std::fs::File::create(dir.launcher_log())
        .io_context(|| format!("creating {}", dir.launcher_log().display()))?;
    let log2 = log
        .try_clone()
        .io_context(|| "duplicating a descriptor".to_string())?;
    let exe = std::env::current_exe().io_context(|| "finding this program".to_string())?;
    let mut cmd = Command::new(exe);
    cmd.arg("run").arg(&l.spec_path);
    if let Some(i) = image {
        cmd.arg("--image").arg(i);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log2));
    // SAFETY: setsid between fork and exec is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn()
        .io_context(|| "starting the background launcher".to_string())
}

fn known(name: &str) -> Result<state::Entry> {
    crate::spec::check_name(name).map_err(Error::invalid)?;
    let base = state::base_dir();
    let e = state::entry(&base, name);
    if !e.dir.path.is_dir() {
        return Err(Error::not_found(format!(
            "no appliance '{name}' (nothing in {}); `host-launch list` shows the known ones",
            base.display()
        )));
    }
    Ok(e)
}

/// Stops a running appliance through its launcher (which sends ctrl-alt-del to the guest
/// and halts it after the stop timeout), waiting up to `timeout`.
pub fn stop(name: &str, timeout: Duration) -> Result<i32> {
    let e = known(name)?;
    if !e.running {
        match &e.state {
            Some(st) if st.phase != Phase::Exited => {
                let notes = run::clean_stale(&e.dir, st);
                println!("'{name}' was not running (its launcher died); cleaned up");
                for n in notes {
                    println!("  {n}");
                }
            }
            Some(st) => println!(
                "'{name}' is not running (last run: {})",
                st.outcome.as_deref().unwrap_or("unknown")
            ),
            None => println!("'{name}' is not running"),
        }
        return Ok(0);
    }
    let Some(st) = e.state.clone() else {
        return Err(Error::host(format!(
            "'{name}' is locked by a launcher but has no state file; wait for it to start"
        )));
    };
    // SAFETY: kill(2) on the launcher pid recorded by the launcher that holds the lock.
    unsafe {
        libc::kill(st.launcher_pid as libc::pid_t, libc::SIGTERM);
    }
    let limit = Instant::now() + timeout;
    while state::is_locked(&e.dir) {
        if Instant::now() >= limit {
            // Last resort: halt the VM directly.
            if let (Some(pid), Some(uid)) = (st.uml_pid, st.uid) {
                let netns = st
                    .tap
                    .as_ref()
                    .and_then(|t| t.netns.as_ref())
                    .map(|ns| Path::new("/run/netns").join(ns));
                let target = vmm::mconsole::Target::jailed(pid, &st.umid, netns, uid);
                let _ = vmm::mconsole::send(&target, "halt", Duration::from_secs(2));
            }
            return Err(Error::host(format!(
                "'{name}' did not stop within {} s; sent halt to the VM; check `host-launch \
                 status {name}`",
                timeout.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let after = State::load(&e.dir);
    println!(
        "stopped '{name}': {}",
        after
            .as_ref()
            .and_then(|s| s.outcome.clone())
            .unwrap_or_else(|| "ended".into())
    );
    Ok(0)
}

/// Cleans what a dead launcher left, holding the appliance's lock meanwhile (so a launch
/// that starts now is not disturbed); `None` when there was nothing to clean.
fn clean_if_stale(e: &state::Entry) -> Option<Vec<String>> {
    let st = e.state.as_ref().filter(|s| s.phase != Phase::Exited)?;
    if e.running {
        return None;
    }
    let _lock = state::try_lock(&e.dir).ok().flatten()?;
    Some(run::clean_stale(&e.dir, st))
}

fn uptime(ms: u64) -> String {
    let s = state::now_ms().saturating_sub(ms) / 1000;
    format!("{}h{:02}m{:02}s", s / 3600, (s / 60) % 60, s % 60)
}

fn status_word(e: &state::Entry) -> &'static str {
    match (&e.state, e.running) {
        (_, true) => "running",
        (Some(st), false) if st.phase != Phase::Exited => "dead (stale state)",
        (Some(_), false) => "exited",
        (None, false) => "unknown",
    }
}

/// `status [NAME]`: details of one appliance, or of all.
///
/// An appliance whose launcher died (SIGKILL, a crash) is cleaned up on the way, as `stop` and
/// the next launch would: leftover UML processes of its umid, its TAP device, UML's runtime
/// directory (mconsole socket); the VM itself died with its launcher (PR_SET_PDEATHSIG).
pub fn status(name: Option<&str>, json: bool) -> Result<i32> {
    let entries = match name {
        Some(n) => vec![known(n)?],
        None => state::list(&state::base_dir()),
    };
    let mut cleaned = Vec::new();
    for e in &entries {
        if let Some(notes) = clean_if_stale(e) {
            cleaned.push((e.name.clone(), notes));
        }
    }
    let entries: Vec<state::Entry> = if cleaned.is_empty() {
        entries
    } else {
        let base = state::base_dir();
        entries
            .iter()
            .map(|e| state::entry(&base, &e.name))
            .collect()
    };
    if !json {
        for (n, notes) in &cleaned {
            println!("'{n}': its launcher died; cleaned up");
            for note in notes {
                println!("  {note}");
            }
        }
    }
    if json {
        let v: Vec<serde_json::Value> = entries
            .iter()
            .map(|e| {
                serde_json::json!({"name": e.name, "running": e.running, "status": status_word(e), "state": e.state})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(0);
    }
    let mut out = std::io::stdout().lock();
    for e in &entries {
        let _ = writeln!(out, "{}: {}", e.name, status_word(e));
        let Some(st) = &e.state else { continue };
        let _ = writeln!(out, "  phase:    {:?}", st.phase);
        let _ = writeln!(
            out,
            "  pids:     launcher {}, UML {}",
            st.launcher_pid,
            st.uml_pid
                .map(|p| p.to_string())
                .unwrap_or_else(|| "-".into())
        );
        let _ = writeln!(out, "  umid:     {}", st.umid);
        if let Some(i) = &st.image {
            let _ = writeln!(out, "  image:    {i}");
        }
        if let Some(k) = &st.kernel {
            let _ = writeln!(out, "  kernel:   {k}");
        }
        if let Some(u) = st.uid {
            let _ = writeln!(out, "  VM uid:   {u} (jailed, no capabilities)");
        }
        let d = &st.dropped;
        let _ = writeln!(
            out,
            "  dropped:  {} status lines over the length bound, {} console bytes and {} event \
             bytes rotated out, {} events not printed",
            d.status_lines, d.console_bytes, d.events_bytes, d.unprinted_events
        );
        if e.running {
            let _ = writeln!(out, "  uptime:   {}", uptime(st.started_at_ms));
        }
        let _ = writeln!(
            out,
            "  ready:    {}{}",
            if st.ready { "yes" } else { "no" },
            st.ready_after_ms
                .map(|ms| format!(" (after {ms} ms)"))
                .unwrap_or_default()
        );
        if let Some(t) = &st.tap {
            let _ = writeln!(
                out,
                "  tap:      {}{}",
                t.name,
                t.netns
                    .as_ref()
                    .map(|n| format!(" (netns {n})"))
                    .unwrap_or_default()
            );
        }
        if let Some(o) = &st.outcome {
            let _ = writeln!(
                out,
                "  outcome:  {o} (exit status {})",
                st.exit_code
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "-".into())
            );
        }
        if name.is_some() {
            let _ = writeln!(out, "  last events:");
            for ev in &st.last_events {
                let _ = writeln!(out, "    {}", events::human(ev));
            }
        }
    }
    Ok(0)
}

/// `list`: one line per appliance.
pub fn list() -> Result<i32> {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{:<20} {:<18} {:<8} {:<6} UPTIME",
        "NAME", "STATUS", "PID", "READY"
    );
    for e in state::list(&state::base_dir()) {
        let (pid, ready, up) = match &e.state {
            Some(st) if e.running => (
                st.launcher_pid.to_string(),
                if st.ready { "yes" } else { "no" }.to_string(),
                uptime(st.started_at_ms),
            ),
            _ => ("-".into(), "-".into(), "-".into()),
        };
        let _ = writeln!(
            out,
            "{:<20} {:<18} {:<8} {:<6} {up}",
            e.name,
            status_word(&e),
            pid,
            ready
        );
    }
    Ok(0)
}

/// `logs NAME`: the status events of the last run (raw JSON lines with `json`).
pub fn logs(name: &str, json: bool) -> Result<i32> {
    let e = known(name)?;
    let text = read(&e.dir.events())?;
    let mut out = std::io::stdout().lock();
    for line in text.lines() {
        if json {
            let _ = writeln!(out, "{line}");
        } else if let Some(ev) = events::parse(line) {
            let _ = writeln!(out, "{}", events::human(&ev));
        }
    }
    Ok(0)
}

/// `console NAME`: the guest console of the last run.
pub fn console(name: &str) -> Result<i32> {
    let e = known(name)?;
    let text = read(&e.dir.console())?;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    Ok(0)
}

fn read(p: &PathBuf) -> Result<String> {
    match std::fs::read(p) {
        Ok(b) => Ok(String::from_utf8_lossy(&b).into_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(Error::host(format!("reading {}: {e}", p.display()))),
    }
}
