//! `upgrade SPEC --image NEW`: the appliance moves to another root image on the same data
//! disks and the same contract, and comes back on the old image when the new one fails.
//!
//! 1. Everything is checked before anything is stopped: the new image's manifest (beside it,
//!    `NEW.manifest.json`) must speak the host contract version and merge with the spec, and
//!    it must expect exactly the data disks the old image expects (the same host files on the
//!    same guest devices, mount points and file system types); the launch preflight (kernel,
//!    namespace, permissions) must pass for it.
//! 2. A running appliance is stopped gracefully (as `stop`: ctrl-alt-del, the service's stop
//!    timeout, its data disks unmounted before power-off).
//! 3. The new image boots detached, as `start` would, on the same disks; the upgrade waits for
//!    its `ready` event (at most `--timeout`, default 60 s).
//! 4. Ready: the appliance keeps running on the new image; `state.json` records the image
//!    (`status` shows it), and `upgraded.json` in the state directory records that the spec's
//!    image is replaced, so a later `start`/`run` of the same spec boots the new image too
//!    (until the spec names another image) and a later `upgrade` knows what it replaces.
//! 5. Not ready in time, a guest-init fatal error, or the VM ended: the new VM is stopped, its
//!    console, events and launcher log are kept as `upgrade-failed.*` in the state directory,
//!    and the old image boots again on the same data (when the appliance ran before the
//!    upgrade); the exit status is 127 ([`crate::exit::ROLLED_BACK`]). If the old image does
//!    not come back either, the exit status is 122 and the message says so.
//!
//! An appliance its systemd unit runs (its state says so) is moved by the unit instead, after
//! the same checks: [`crate::systemd::unit_upgrade`].

use crate::error::{Error, Result};
use crate::exit;
use crate::launch::load::{self, Loaded};
use crate::pin;
use crate::state::{self, Dir, Phase, State};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Options of `upgrade`.
#[derive(Debug, Clone)]
pub struct Options {
    /// The new root image (its manifest beside it).
    pub image: PathBuf,
    /// How long the new image may take to report `ready`.
    pub ready_timeout: Duration,
    /// How long the graceful stop of the running appliance may take.
    pub stop_timeout: Duration,
}

/// One data disk as an image expects it: host file, guest device, mount point, file system.
fn disk_view(l: &Loaded) -> Vec<(String, String, String, String)> {
    let mut v: Vec<_> = l
        .merged
        .disks
        .iter()
        .zip(&l.disk_files)
        .map(|(d, f)| {
            let c = l
                .merged
                .contract
                .mounts
                .disks
                .iter()
                .find(|c| c.device == d.device);
            (
                f.display().to_string(),
                d.device.clone(),
                c.map(|c| c.mount_point.clone()).unwrap_or_default(),
                c.map(|c| c.fs_type.clone()).unwrap_or_default(),
            )
        })
        .collect();
    v.sort();
    v
}

/// Whether `new` can take over from `old`: the same contract version (one this host-launch
/// speaks: a newer host takes older images), the same class (or none), the same data disks.
pub fn compatible(old: &Loaded, new: &Loaded) -> std::result::Result<(), Vec<String>> {
    let mut problems = Vec::new();
    if new.manifest.contract_version != old.manifest.contract_version
        || !contract::speaks(new.manifest.contract_version)
    {
        problems.push(format!(
            "contract_version: the new image's manifest speaks host contract version {}, the \
             old one's {}, this host-launch {} to {}",
            new.manifest.contract_version,
            old.manifest.contract_version,
            contract::OLDEST_VERSION,
            contract::VERSION
        ));
    }
    if let Err(e) =
        appliance::class::check_upgrade(old.manifest.class.as_ref(), new.manifest.class.as_ref())
    {
        problems.push(e.to_string());
    }
    let (o, n) = (disk_view(old), disk_view(new));
    if o != n {
        let show = |v: &[(String, String, String, String)]| {
            if v.is_empty() {
                return "no data disks".to_string();
            }
            v.iter()
                .map(|(f, d, m, t)| format!("{f} as {d} on {m} ({t})"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        problems.push(format!(
            "disks: the new image expects {}, but the old one uses {}; an upgrade keeps the \
             data disks as they are",
            show(&n),
            show(&o)
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

pub(crate) fn say(name: &str, text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "[{name}] upgrade: {text}");
    let _ = out.flush();
}

/// How a boot of one image went.
enum Boot {
    Ready { after: Duration },
    Failed(String),
}

/// Boots `image` detached (as `start`) and waits for `ready`; a VM that is not ready in time
/// is stopped again.
fn boot(l: &Loaded, image: &Path, o: &Options) -> Result<Boot> {
    let name = &l.spec.name;
    let dir = Dir::new(&state::base_dir(), name);
    let started = Instant::now();
    let mut child =
        crate::lifecycle::spawn_background(l, Some(image), crate::timeline::Clocks::now())?;
    let pid = child.id();
    let deadline = started + o.ready_timeout;
    loop {
        let st = State::load(&dir).filter(|s| s.launcher_pid == pid);
        if let Ok(Some(status)) = child.try_wait() {
            let code = status.code().unwrap_or(exit::HOST);
            let why = st
                .as_ref()
                .and_then(|s| s.outcome.clone())
                .unwrap_or_else(|| {
                    std::fs::read_to_string(dir.launcher_log())
                        .unwrap_or_default()
                        .lines()
                        .last()
                        .unwrap_or("")
                        .to_string()
                });
            return Ok(Boot::Failed(format!(
                "the VM ended before it was ready: {why} (launcher exit status {code})"
            )));
        }
        if st.as_ref().is_some_and(|s| s.phase == Phase::Ready) {
            // Reap the launcher later: it runs on, detached, in its own session.
            drop(child);
            return Ok(Boot::Ready {
                after: started.elapsed(),
            });
        }
        if Instant::now() >= deadline {
            let why = format!(
                "not ready within {} s (phase {})",
                o.ready_timeout.as_secs(),
                st.map(|s| s.phase.as_str().to_string())
                    .unwrap_or_else(|| "unknown".into())
            );
            let _ = crate::lifecycle::stop(name, o.stop_timeout);
            let _ = child.wait();
            return Ok(Boot::Failed(why));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Keeps what the failed run left (console, events, launcher log) before the rollback
/// overwrites it; returns where.
pub(crate) fn keep_failed_run(dir: &Dir) -> Vec<PathBuf> {
    let mut kept = Vec::new();
    for (from, to) in [
        (dir.console(), "upgrade-failed.console.log"),
        (dir.events(), "upgrade-failed.events.jsonl"),
        (dir.launcher_log(), "upgrade-failed.launcher.log"),
    ] {
        let to = dir.path.join(to);
        if std::fs::copy(&from, &to).is_ok() {
            kept.push(to);
        }
    }
    kept
}

/// `host-launch upgrade SPEC --image NEW`; returns the exit status (0, or
/// [`exit::ROLLED_BACK`] when the new image failed and the old one was put back).
pub fn upgrade(spec: &Path, o: &Options) -> Result<i32> {
    let file = load::SpecFile::read(spec)?;
    let (name, spec_image) = (file.spec.name.clone(), file.image());
    appliance::spec::check_name(&name).map_err(|e| Error::invalid(e.to_string()))?;
    let base = state::base_dir();
    let entry = state::entry(&base, &name);
    let dir = entry.dir.clone();
    let was_running = entry.running;
    // The image in use: the running VM's, else what a launch would boot now.
    let recorded = entry
        .state
        .as_ref()
        .filter(|_| was_running)
        .and_then(|s| s.image.clone())
        .map(PathBuf::from);
    let old_image = match recorded {
        Some(i) => i,
        None => file.pinned_image().unwrap_or_else(|| spec_image.clone()),
    };
    let new_image = load::absolute(&o.image);
    let new = checked_new(&file, &old_image, &new_image)?;
    if let Some(st) = entry.state.as_ref().filter(|s| s.systemd.is_some()) {
        return by_unit(&file.path, st, was_running, &old_image, &new_image, o);
    }
    say(
        &name,
        &format!(
            "{} -> {}{}",
            old_image.display(),
            new_image.display(),
            if was_running { "" } else { " (not running)" }
        ),
    );
    let t0 = Instant::now();
    if was_running {
        stop_old(&name, &dir, o, t0)?;
    }
    let failure = match boot(&new, &new_image, o)? {
        Boot::Ready { after } => {
            pin::write(&dir, &spec_image, &new_image, &old_image)?;
            say(
                &name,
                &format!(
                    "the new image is ready after {:.2} s; down for {:.2} s in all; now \
                     running {}",
                    after.as_secs_f64(),
                    t0.elapsed().as_secs_f64(),
                    new_image.display()
                ),
            );
            return Ok(0);
        }
        Boot::Failed(why) => why,
    };
    say(&name, &format!("FAILED: {failure}"));
    roll_back(&file, &dir, &old_image, was_running, o)
}

/// An appliance whose last run was its systemd unit's: the unit moves it when it runs;
/// a stopped one is refused (booting it here would run it outside its unit).
fn by_unit(
    spec: &Path,
    st: &State,
    was_running: bool,
    old_image: &Path,
    new_image: &Path,
    o: &Options,
) -> Result<i32> {
    let name = &st.name;
    if !was_running {
        let unit = st.systemd.as_ref().map(|s| s.unit.as_str()).unwrap_or("?");
        return Err(Error::invalid(format!(
            "'{name}' was last run by {unit} and is not running: an upgrade here would start              it outside its unit; set \"image\" in {} and `systemctl start {unit}`",
            spec.display()
        )));
    }
    crate::systemd::unit_upgrade::upgrade(name, spec, st, old_image, new_image, o)
}

/// The new image checked against the spec and the old image: class first (a spec written
/// for the old class lacks the new class's inputs, and the reason to give is the class),
/// then the merge, then what must not change.
fn checked_new(file: &load::SpecFile, old_image: &Path, new_image: &Path) -> Result<Loaded> {
    let old = load::load_with_image(file, Some(old_image))
        .map_err(|e| e.context(format!("the old image {}", old_image.display())))?;
    let (new_manifest_path, new_manifest) = load::manifest_for(file, Some(new_image))?;
    appliance::class::check_upgrade(old.manifest.class.as_ref(), new_manifest.class.as_ref())
        .map_err(|e| Error::invalid(format!("{}: {e}", new_manifest_path.display())))?;
    let new = crate::lifecycle::check_image(file, Some(new_image))?.loaded;
    if let Err(problems) = compatible(&old, &new) {
        return Err(Error::invalid(
            problems
                .iter()
                .map(|p| format!("{}: {p}", new.manifest_path.display()))
                .collect::<Vec<_>>()
                .join("\n"),
        ));
    }
    Ok(new)
}

/// Stops the running old image; an error if it did not stop.
fn stop_old(name: &str, dir: &state::Dir, o: &Options, t0: Instant) -> Result<()> {
    // The old launcher leaves its TAP device and policy to the new one (`tap_handover`):
    // deleting and making them again is host work in the downtime (~25 ms, most of it the
    // netdev's unregistering).
    let _ = std::fs::write(dir.tap_handover(), b"");
    let stopped = crate::lifecycle::stop(name, o.stop_timeout);
    if stopped.is_err() || state::is_locked(dir) {
        let _ = std::fs::remove_file(dir.tap_handover());
    }
    stopped?;
    if state::is_locked(dir) {
        return Err(Error::host(format!(
            "'{name}' did not stop; the upgrade did not start"
        )));
    }
    say(
        name,
        &format!(
            "stopped the old image in {:.2} s",
            t0.elapsed().as_secs_f64()
        ),
    );
    Ok(())
}

/// After a failed new image: keeps what it showed, pins the old image again and boots it if
/// it ran before. [`exit::ROLLED_BACK`], or an error when the old image does not come back.
fn roll_back(
    file: &load::SpecFile,
    dir: &state::Dir,
    old_image: &Path,
    was_running: bool,
    o: &Options,
) -> Result<i32> {
    let name = &file.spec.name;
    let spec_image = file.image();
    let kept = keep_failed_run(dir);
    if !kept.is_empty() {
        say(
            name,
            &format!(
                "what the new image showed: {}",
                kept.iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    }
    pin::write(dir, &spec_image, old_image, old_image)?;
    if !was_running {
        say(
            name,
            &format!(
                "rolled back: {} stays the image (the appliance was not running before)",
                old_image.display()
            ),
        );
        return Ok(exit::ROLLED_BACK);
    }
    let back = load::load_with_image(file, Some(old_image))?;
    match boot(&back, old_image, o) {
        Ok(Boot::Ready { after }) => {
            say(
                name,
                &format!(
                    "rolled back: the old image {} is running again (ready after {:.2} s)",
                    old_image.display(),
                    after.as_secs_f64()
                ),
            );
            Ok(exit::ROLLED_BACK)
        }
        Ok(Boot::Failed(why)) => Err(Error::host(format!(
            "ROLLBACK FAILED: the old image {} did not come back either: {why}; '{name}' is \
             not running",
            old_image.display()
        ))),
        Err(e) => Err(Error::host(format!(
            "ROLLBACK FAILED: starting the old image {}: {}; '{name}' is not running",
            old_image.display(),
            e.message
        ))),
    }
}
