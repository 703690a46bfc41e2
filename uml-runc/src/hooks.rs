//! The bundle's lifecycle hooks (runtime spec, "POSIX-platform Hooks"), run on the host with
//! the container's state on stdin: `prestart` and `createRuntime` at the end of `create`,
//! `poststart` before `start` returns, `poststop` after `delete` has removed the container.
//! `createContainer` and `startContainer` must run inside the container's namespaces, which
//! for a VM are its guest kernel's: a config that has them is refused, naming the hook, never
//! run without them.

use crate::bundle::{Hook, Hooks};
use crate::error::{Error, Result};
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Bytes of a hook's output kept for its error message.
const MAX_OUTPUT: usize = 4096;

/// Refuses the hooks a VM cannot run where the spec says they run.
pub fn check(hooks: &Hooks) -> Result<()> {
    for (name, list) in [
        ("createContainer", &hooks.create_container),
        ("startContainer", &hooks.start_container),
    ] {
        if !list.is_empty() {
            return Err(Error::new(format!(
                "config.json: hooks.{name}[0] ({}): a {name} hook runs inside the container's \
                 namespaces, and a VM's are its guest kernel's, out of the host's reach; use a \
                 prestart, createRuntime or poststart hook (run on the host) or drop it",
                hooks_path(list)
            )));
        }
    }
    for (name, list) in [
        ("prestart", &hooks.prestart),
        ("createRuntime", &hooks.create_runtime),
        ("poststart", &hooks.poststart),
        ("poststop", &hooks.poststop),
    ] {
        for (i, h) in list.iter().enumerate() {
            if !std::path::Path::new(&h.path).is_absolute() {
                return Err(Error::new(format!(
                    "config.json: hooks.{name}[{i}].path: {:?} is not absolute; the spec wants \
                     an absolute path",
                    h.path
                )));
            }
            if h.timeout.is_some_and(|t| t <= 0) {
                return Err(Error::new(format!(
                    "config.json: hooks.{name}[{i}].timeout: must be more than 0 seconds (or \
                     left out for none)"
                )));
            }
        }
    }
    Ok(())
}

fn hooks_path(list: &[Hook]) -> &str {
    list.first().map(|h| h.path.as_str()).unwrap_or_default()
}

/// Runs `hooks` in order, each with `state` (the OCI state JSON) on stdin; the first that
/// fails, or outlives its timeout (it is killed), ends the run with an error naming it.
pub fn run(name: &str, hooks: &[Hook], state: &str) -> Result<()> {
    for (i, h) in hooks.iter().enumerate() {
        run_one(h, state)
            .map_err(|e| Error::new(format!("hooks.{name}[{i}] ({}): {e}", h.path)))?;
    }
    Ok(())
}

/// Runs every one of `hooks` in order, whatever the others did, as the spec wants for
/// `poststart` and `poststop`: a failure is a warning (returned), and the rest still run.
pub fn run_all(name: &str, hooks: &[Hook], state: &str) -> Vec<String> {
    hooks
        .iter()
        .enumerate()
        .filter_map(|(i, h)| {
            run_one(h, state)
                .err()
                .map(|e| format!("hooks.{name}[{i}] ({}): {e}", h.path))
        })
        .collect()
}

/// Why one hook failed (the caller names the hook).
#[derive(Debug, thiserror::Error)]
enum HookError {
    #[error("memfd_create: {0}")]
    Output(std::io::Error),
    #[error("{0}")]
    Clone(std::io::Error),
    #[error("cannot run it: {0}")]
    Spawn(std::io::Error),
    #[error("waiting for it: {0}")]
    Wait(std::io::Error),
    #[error("did not finish within its timeout of {0} s; killed")]
    Timeout(i64),
    #[error("{status}; its output: {output:?}")]
    Failed {
        status: std::process::ExitStatus,
        output: String,
    },
}

fn run_one(h: &Hook, state: &str) -> std::result::Result<(), HookError> {
    let mut cmd = Command::new(&h.path);
    if let Some((argv0, rest)) = h.args.split_first() {
        use std::os::unix::process::CommandExt;
        cmd.arg0(argv0).args(rest);
    }
    cmd.env_clear();
    for kv in &h.env {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    let out = tempfile_output()?;
    cmd.stdin(Stdio::piped())
        .stdout(out.try_clone().map_err(HookError::Clone)?)
        .stderr(out.try_clone().map_err(HookError::Clone)?);
    let mut child = cmd.spawn().map_err(HookError::Spawn)?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its state is not an error (EPIPE).
        let _ = stdin.write_all(state.as_bytes());
    }
    let deadline = h
        .timeout
        .map(|t| Instant::now() + Duration::from_secs(t.unsigned_abs()));
    let status = loop {
        match child.try_wait().map_err(HookError::Wait)? {
            Some(s) => break s,
            None if deadline.is_some_and(|d| Instant::now() >= d) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(HookError::Timeout(h.timeout.unwrap_or_default()));
            }
            None => std::thread::sleep(Duration::from_millis(5)),
        }
    };
    if status.success() {
        return Ok(());
    }
    Err(HookError::Failed {
        status,
        output: read_back(out),
    })
}

/// An unnamed file for the hook's stdout and stderr: a pipe could fill and hang it.
fn tempfile_output() -> std::result::Result<std::fs::File, HookError> {
    use std::os::fd::FromRawFd;
    // SAFETY: memfd_create with a NUL-terminated name; the descriptor is new and ours.
    let fd = unsafe { libc::memfd_create(c"uml-runc-hook".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(HookError::Output(std::io::Error::last_os_error()));
    }
    // SAFETY: fd is a valid descriptor nothing else owns.
    Ok(unsafe { std::fs::File::from_raw_fd(fd) })
}

fn read_back(mut f: std::fs::File) -> String {
    use std::io::Seek;
    let mut buf = Vec::new();
    let _ = f.rewind();
    let _ = f.take(MAX_OUTPUT as u64).read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(script: &str, timeout: Option<i64>) -> Hook {
        Hook {
            path: "/bin/sh".into(),
            args: vec!["sh".into(), "-c".into(), script.into()],
            env: vec!["GREETING=hello".into()],
            timeout,
        }
    }

    #[test]
    fn hooks_get_the_state_on_stdin_in_order() {
        let dir = std::env::temp_dir().join(format!("uml-runc-hooks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("out");
        let o = out.display();
        let hooks = [
            hook(&format!("echo first $GREETING >> {o}; cat >> {o}"), None),
            hook(&format!("echo second >> {o}"), Some(5)),
        ];
        run("prestart", &hooks, "{\"id\":\"x\"}").unwrap();
        let text = std::fs::read_to_string(&out).unwrap();
        assert_eq!(text, "first hello\n{\"id\":\"x\"}second\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failing_or_hung_hook_is_named() {
        let e = run("poststart", &[hook("echo broken >&2; exit 3", None)], "{}").unwrap_err();
        assert!(
            e.0.contains("hooks.poststart[0] (/bin/sh)") && e.0.contains("broken"),
            "{e}"
        );
        let started = Instant::now();
        let e = run("prestart", &[hook("sleep 30", Some(1))], "{}").unwrap_err();
        assert!(e.0.contains("timeout of 1 s"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn after_start_a_failing_hook_is_a_warning_and_the_rest_run() {
        let dir = std::env::temp_dir().join(format!("uml-runc-hooks-all-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("out");
        let hooks = [
            hook("exit 1", None),
            hook(&format!("echo second >> {}", out.display()), None),
        ];
        let warnings = run_all("poststop", &hooks, "{}");
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("hooks.poststop[0]"), "{warnings:?}");
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "second\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn hooks_inside_the_container_are_refused() {
        let hooks = Hooks {
            create_container: vec![hook("true", None)],
            ..Hooks::default()
        };
        let e = check(&hooks).unwrap_err();
        assert!(e.0.contains("hooks.createContainer[0]"), "{e}");
        let hooks = Hooks {
            poststop: vec![hook("true", Some(0))],
            ..Hooks::default()
        };
        assert!(check(&hooks)
            .unwrap_err()
            .0
            .contains("hooks.poststop[0].timeout"));
    }
}
