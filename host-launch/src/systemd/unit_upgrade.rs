//! `upgrade` of an appliance its unit runs (`host-launch@NAME.service`): the unit starts what
//! `/etc/host-launch/NAME.json` says, so the new image goes into that file ([`spec_file`],
//! atomically, the old bytes kept) and `systemctl restart` makes the unit stop the old VM
//! gracefully and start the new one: no VM ever runs outside the unit. Then the same wait for
//! `ready` as for any upgrade; a new image that fails gets the old spec back and another
//! restart (exit 127), or, when the old image does not come back either, `ROLLBACK FAILED`.
//!
//! Which unit runs an appliance is read from its state (`state.json`'s `systemd`: the
//! launcher's `INVOCATION_ID` and cgroup at its start), never guessed: a unit other than the
//! template's own instance for that name, or a spec other than the one the template runs, is
//! refused before anything changes.

use super::spec_file;
use crate::cmd::upgrade::{keep_failed_run, say, Options};
use crate::error::{Error, Result};
use crate::exit;
use crate::state::{Dir, Phase, State, Systemd};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// The unit to restart for `name`, as recorded by the running launcher: it must be
/// `host-launch@NAME.service` running `SPEC_DIR/NAME.json`; else why not, naming the fix.
pub fn managing_unit(name: &str, s: &Systemd, spec: &Path) -> std::result::Result<String, String> {
    let unit = super::unit_name(name);
    if s.unit != unit {
        return Err(format!(
            "'{name}' is run by the systemd unit '{}', not by {unit}: host-launch cannot tell \
             how that unit finds its spec; change its image there and restart it with systemctl",
            s.unit
        ));
    }
    let expected = Path::new(super::SPEC_DIR).join(format!("{name}.json"));
    if spec != expected {
        return Err(format!(
            "'{name}' is run by {unit}, which starts {}, not {}: upgrade that spec (the unit \
             runs what it says)",
            expected.display(),
            spec.display()
        ));
    }
    Ok(unit)
}

/// Upgrades the running unit-run appliance `name` (spec `spec`, recorded as `started` by its
/// launcher) from `old_image` to `new_image`, both already checked against the spec.
pub fn upgrade(
    name: &str,
    spec: &Path,
    started: &State,
    old_image: &Path,
    new_image: &Path,
    o: &Options,
) -> Result<i32> {
    let systemd = started
        .systemd
        .as_ref()
        .ok_or_else(|| Error::host(format!("'{name}': no systemd record in its state")))?;
    let unit = managing_unit(name, systemd, spec).map_err(Error::invalid)?;
    let dir = Dir::new(&crate::state::base_dir(), name);
    say(
        name,
        &format!(
            "{} -> {} (run by {unit}: its spec {} changes, then systemctl restart)",
            old_image.display(),
            new_image.display(),
            spec.display()
        ),
    );
    let t0 = Instant::now();
    // A record of an earlier `upgrade` by hand (crate::pin) stays: it applies only while the
    // spec names the image it replaced, so again after a rollback.
    let before = spec_file::set_image(spec, new_image)?;
    let failure = match restart_and_wait(&unit, &dir, &systemd.invocation_id, o) {
        Ok(after) => {
            say(
                name,
                &format!(
                    "the new image is ready after {:.2} s; down for {:.2} s in all; {unit} now \
                     runs {} (the old spec is in {})",
                    after.as_secs_f64(),
                    t0.elapsed().as_secs_f64(),
                    new_image.display(),
                    spec_file::previous(spec).display()
                ),
            );
            return Ok(exit::CLEAN);
        }
        Err(why) => why,
    };
    say(name, &format!("FAILED: {failure}"));
    roll_back(name, &unit, spec, &before, &dir, old_image, o)
}

/// Puts the old spec back and restarts the unit on it: [`exit::ROLLED_BACK`], or an error
/// when the old image does not come back.
fn roll_back(
    name: &str,
    unit: &str,
    spec: &Path,
    before: &[u8],
    dir: &Dir,
    old_image: &Path,
    o: &Options,
) -> Result<i32> {
    let kept = keep_failed_run(dir);
    if !kept.is_empty() {
        let shown: Vec<String> = kept.iter().map(|p| p.display().to_string()).collect();
        say(
            name,
            &format!("what the new image showed: {}", shown.join(", ")),
        );
    }
    spec_file::replace(spec, before).map_err(|e| {
        e.context(format!(
            "ROLLBACK FAILED: putting the old spec back ({} holds it)",
            spec_file::previous(spec).display()
        ))
    })?;
    let failed = State::load(dir)
        .and_then(|s| s.systemd)
        .map(|s| s.invocation_id)
        .unwrap_or_default();
    match restart_and_wait(unit, dir, &failed, o) {
        Ok(after) => {
            say(
                name,
                &format!(
                    "rolled back: {unit} runs the old image {} again from the old spec (ready \
                     after {:.2} s)",
                    old_image.display(),
                    after.as_secs_f64()
                ),
            );
            Ok(exit::ROLLED_BACK)
        }
        Err(why) => Err(Error::host(format!(
            "ROLLBACK FAILED: {unit} with the old spec (image {}) did not come back: {why}; \
             '{name}' is not running (`systemctl status {unit}`)",
            old_image.display()
        ))),
    }
}

/// `systemctl daemon-reload` (the generator reads the changed spec: its drop-in, and systemd
/// stops warning that the unit's source changed), `systemctl restart --no-block UNIT`, then
/// waits for a launcher of another invocation than `old` to report ready.
fn restart_and_wait(
    unit: &str,
    dir: &Dir,
    old: &str,
    o: &Options,
) -> std::result::Result<Duration, String> {
    systemctl(&["daemon-reload"])?;
    systemctl(&["restart", "--no-block", unit])?;
    let restarted = Instant::now();
    // The old VM's graceful stop comes first; then the new launcher has the ready timeout.
    let mut deadline = restarted + o.stop_timeout + Duration::from_secs(10);
    let mut new_since: Option<Instant> = None;
    let mut last_unit_check = Instant::now();
    loop {
        let st =
            State::load(dir).filter(|s| s.systemd.as_ref().is_some_and(|d| d.invocation_id != old));
        if let Some(s) = &st {
            if new_since.is_none() {
                new_since = Some(Instant::now());
                deadline = Instant::now() + o.ready_timeout;
            }
            match s.phase {
                Phase::Ready => return Ok(restarted.elapsed()),
                Phase::Exited | Phase::Stopping => {
                    return Err(format!(
                        "the VM ended before it was ready: {}",
                        s.outcome
                            .clone()
                            .unwrap_or_else(|| "no outcome recorded".into())
                    ))
                }
                Phase::Starting | Phase::Booting => {}
            }
        }
        if last_unit_check.elapsed() >= Duration::from_millis(500) {
            last_unit_check = Instant::now();
            if active_state(unit).as_deref() == Some("failed") {
                return Err(format!(
                    "{unit} failed (`systemctl status {unit}` says why)"
                ));
            }
        }
        if Instant::now() >= deadline {
            let phase = st.map(|s| s.phase.as_str()).unwrap_or("not started");
            return Err(match new_since {
                Some(_) => format!(
                    "not ready within {} s (phase {phase})",
                    o.ready_timeout.as_secs()
                ),
                None => format!("{unit} did not start a new launcher in time"),
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn systemctl(args: &[&str]) -> std::result::Result<(), String> {
    let out = Command::new("systemctl")
        .args(args)
        .output()
        .map_err(|e| format!("running systemctl: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "systemctl {}: {} {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    ))
}

/// The unit's `ActiveState` (`active`, `activating`, `failed`, ...), if systemctl answers.
fn active_state(unit: &str) -> Option<String> {
    let out = Command::new("systemctl")
        .args(["show", "-p", "ActiveState", "--value", unit])
        .output()
        .ok()?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn systemd(unit: &str) -> Systemd {
        Systemd {
            unit: unit.into(),
            invocation_id: "abc".into(),
        }
    }

    #[test]
    fn only_the_templates_own_instance_on_its_own_spec() {
        let spec = Path::new("/etc/host-launch/dns1.json");
        assert_eq!(
            managing_unit("dns1", &systemd("host-launch@dns1.service"), spec).as_deref(),
            Ok("host-launch@dns1.service")
        );
        // The cgroup could not be read at start ("?"), or someone else's unit: not guessed.
        for other in ["?", "my-dns.service", "host-launch@dns2.service"] {
            let e = managing_unit("dns1", &systemd(other), spec).unwrap_err();
            assert!(e.contains(&format!("unit '{other}'")), "{e}");
        }
        let e = managing_unit(
            "dns1",
            &systemd("host-launch@dns1.service"),
            Path::new("/root/dns1.json"),
        )
        .unwrap_err();
        assert!(
            e.contains("starts /etc/host-launch/dns1.json, not /root/dns1.json"),
            "{e}"
        );
    }
}
