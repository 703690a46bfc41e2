//! `update --image NEW (--from DIGEST | NAME...)`: rolls a new image out across the running
//! appliances that use the old one, one at a time (the first is the canary). Each appliance is
//! moved by `host-launch upgrade` (its checks, graceful stop, boot, wait for ready, rollback),
//! run as a child so its output lands in the report; then it must stay healthy for the settle
//! time ([`crate::rollout::settle`]), else it is upgraded back to its old image. The first
//! failure stops the rollout: the rest stay on the old image.
//!
//! Appliances their systemd unit runs are moved the same way: `upgrade` changes the image in
//! their spec and restarts the unit ([`crate::systemd::unit_upgrade`]).
//!
//! Refused before anything stops: an image the trust policy refuses, an image of another
//! class than an appliance's, an appliance run by a unit other than `host-launch@NAME` on
//! its own spec (which spec it starts cannot be known), and a second rollout while one runs.

use crate::error::{Error, Result};
use crate::paths::absolute;
use crate::rollout::report::{self, Report, Step};
use crate::rollout::targets::{self, Image, Images, Selection, Target};
use crate::rollout::{lock, settle};
use crate::state::{self, Dir, State};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Options of `update`.
#[derive(Debug, Clone)]
pub struct Options {
    pub image: PathBuf,
    pub selection: Selection,
    /// How long an upgraded appliance must stay healthy.
    pub settle: Duration,
    pub ready_timeout: Duration,
    pub stop_timeout: Duration,
    /// Show what would move; change nothing.
    pub plan: bool,
    pub json: bool,
}

/// `host-launch update`; returns the exit status of [`Report::exit_code`].
pub fn update(o: &Options) -> Result<i32> {
    let started = Instant::now();
    let base = state::base_dir();
    let mut images = Images::default();
    let new = images.get(&absolute(&o.image))?;
    crate::trust::check(&new.path, &appliance::manifest::path_beside(&new.path))?;
    if matches!(o.selection, Selection::Running) && !o.plan {
        return Err(Error::invalid(
            "update: name the appliances to move (NAME...) or their image (--from DIGEST)",
        ));
    }
    let selection = image_as_digest(&o.selection, &mut images)?;
    let chosen = targets::select(targets::running(&base, &mut images)?, &selection)?;
    if o.plan {
        return Ok(show_plan(&chosen, &new, &selection, o.json));
    }
    let _held = lock::take(&base)?;
    let (current, targets): (Vec<_>, Vec<_>) = chosen
        .into_iter()
        .partition(|t| t.image.digest == new.digest);
    refuse(&targets, &new)?;
    if !o.json {
        println!(
            "update: {} ({}) onto {} appliance(s), one at a time, each healthy for {} s",
            new.path.display(),
            new.digest,
            targets.len(),
            o.settle.as_secs()
        );
    }
    let mut steps = Vec::new();
    for t in &targets {
        let step = if stopped(&steps) {
            not_attempted(t)
        } else {
            move_one(t, &new, o)
        };
        if !o.json {
            println!("{}", step.line());
        }
        steps.push(step);
    }
    let report = Report {
        image: new.path.display().to_string(),
        digest: new.digest.clone(),
        settle_s: o.settle.as_secs_f64(),
        appliances: steps,
        already_current: current.into_iter().map(|t| t.name).collect(),
        total_s: started.elapsed().as_secs_f64(),
    };
    print_report(&report, o.json);
    Ok(report.exit_code())
}

/// `--from OLD_IMAGE` (an image file rather than a digest) is that image's digest.
fn image_as_digest(sel: &Selection, images: &mut Images) -> Result<Selection> {
    match sel {
        Selection::From(d) if Path::new(d).is_file() => {
            Ok(Selection::From(images.get(&absolute(Path::new(d)))?.digest))
        }
        other => Ok(other.clone()),
    }
}

/// `--plan`: every chosen appliance, its image and digest, and whether it would move.
fn show_plan(chosen: &[Target], new: &Image, sel: &Selection, json: bool) -> i32 {
    let moves = |t: &Target| t.image.digest != new.digest && !matches!(sel, Selection::Running);
    if json {
        let rows: Vec<_> = chosen
            .iter()
            .map(|t| {
                serde_json::json!({
                    "name": t.name, "image": t.image.path, "digest": t.image.digest,
                    "would_move": moves(t),
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(rows));
        return crate::exit::CLEAN;
    }
    println!("new image: {} {}", new.path.display(), new.digest);
    for t in chosen {
        let mark = if moves(t) { "would move" } else { "stays" };
        println!(
            "{:<16} {:<10} {} {}",
            t.name,
            mark,
            t.image.digest,
            t.image.path.display()
        );
    }
    crate::exit::CLEAN
}

/// Everything that refuses the rollout before any appliance stops.
fn refuse(targets: &[Target], new: &Image) -> Result<()> {
    let mut problems = Vec::new();
    for t in targets {
        if let Err(e) = appliance::class::check_upgrade(t.image.class.as_ref(), new.class.as_ref())
        {
            problems.push(format!("'{}': {e}", t.name));
        }
        // A unit-run appliance is moved by its unit (upgrade rewrites its spec and restarts
        // it): only the template's own instance, on the spec that template runs.
        if let Some(s) = &t.systemd {
            if let Err(why) = crate::systemd::unit_upgrade::managing_unit(&t.name, s, &t.spec) {
                problems.push(why);
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "{}: nothing was changed:\n{}",
            new.path.display(),
            problems.join("\n")
        )))
    }
}

fn stopped(steps: &[Step]) -> bool {
    steps.iter().any(|s| s.result != report::Result::Updated)
}

fn not_attempted(t: &Target) -> Step {
    step(
        t,
        report::Result::NotAttempted,
        None,
        "the rollout stopped before it".into(),
    )
}

fn step(t: &Target, result: report::Result, downtime_s: Option<f64>, detail: String) -> Step {
    Step {
        name: t.name.clone(),
        from_image: t.image.path.display().to_string(),
        from_digest: t.image.digest.clone(),
        result,
        downtime_s,
        detail,
    }
}

/// Upgrades one appliance, lets it settle, and rolls it back when either fails.
fn move_one(t: &Target, new: &Image, o: &Options) -> Step {
    let dir = Dir::new(&state::base_dir(), &t.name);
    let t0 = state::now_ms();
    let up = upgrade(&t.spec, &new.path, o);
    let why = match up {
        Upgraded::Ready => match settle::watch(&dir, o.settle) {
            Ok(()) => {
                let detail = format!("now {} {}", new.path.display(), new.digest);
                return step(t, report::Result::Updated, downtime(&dir, t0), detail);
            }
            Err(why) => why,
        },
        // upgrade put the old image back itself.
        Upgraded::RolledBack(why) => {
            let detail = format!("the new image failed: {why}; the old image runs again");
            return step(t, report::Result::RolledBack, downtime(&dir, t0), detail);
        }
        Upgraded::Failed(why) => {
            return step(t, report::Result::RollbackFailed, None, why);
        }
    };
    // Down on the new image until it was judged, then again on the way back.
    let first = downtime(&dir, t0);
    let back_from = state::now_ms();
    match upgrade(&t.spec, &t.image.path, o) {
        Upgraded::Ready => {
            let down = first.zip(downtime(&dir, back_from)).map(|(a, b)| a + b);
            let detail = format!("not healthy on the new image: {why}; the old image runs again");
            step(t, report::Result::RolledBack, down, detail)
        }
        Upgraded::RolledBack(w) | Upgraded::Failed(w) => step(
            t,
            report::Result::RollbackFailed,
            None,
            format!("not healthy on the new image: {why}; putting the old image back failed: {w}"),
        ),
    }
}

/// How `host-launch upgrade` went.
enum Upgraded {
    Ready,
    RolledBack(String),
    Failed(String),
}

/// Runs `host-launch upgrade SPEC --image IMAGE` (this program) and reads its exit status.
fn upgrade(spec: &Path, image: &Path, o: &Options) -> Upgraded {
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("host-launch"));
    let out = std::process::Command::new(exe)
        .arg("upgrade")
        .arg(spec)
        .arg("--image")
        .arg(image)
        .arg("--timeout")
        .arg(o.ready_timeout.as_secs().to_string())
        .arg("--stop-timeout")
        .arg(o.stop_timeout.as_secs().to_string())
        .stdin(std::process::Stdio::null())
        .output();
    let out = match out {
        Ok(out) => out,
        Err(e) => return Upgraded::Failed(format!("running host-launch upgrade: {e}")),
    };
    let last = last_line(&out.stdout, &out.stderr);
    match out.status.code() {
        Some(0) => Upgraded::Ready,
        Some(crate::exit::ROLLED_BACK) => Upgraded::RolledBack(last),
        code => Upgraded::Failed(format!("upgrade exit status {code:?}: {last}")),
    }
}

/// The upgrade's last FAILED line, else the last line of stderr, else of stdout.
fn last_line(stdout: &[u8], stderr: &[u8]) -> String {
    let (out, err) = (
        String::from_utf8_lossy(stdout),
        String::from_utf8_lossy(stderr),
    );
    out.lines()
        .rev()
        .find_map(|l| l.split_once("FAILED: ").map(|(_, w)| w.to_string()))
        .or_else(|| err.lines().last().map(str::to_string))
        .or_else(|| out.lines().last().map(str::to_string))
        .unwrap_or_default()
}

/// From `since_ms` until the image that runs now reported ready.
fn downtime(dir: &Dir, since_ms: u64) -> Option<f64> {
    let st = State::load(dir)?;
    let ready_at = st.started_at_ms.checked_add(st.ready_after_ms?)?;
    let ms = ready_at.checked_sub(since_ms)?;
    // Milliseconds of one rollout step fit f64's 52 bits exactly.
    Some(Duration::from_millis(ms).as_secs_f64())
}

fn print_report(r: &Report, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(r).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
        );
    } else {
        println!("{}", r.summary());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use appliance::class::{Class, ClassName};

    fn image(class: Option<ClassName>) -> Image {
        Image {
            path: PathBuf::from("/i.img"),
            digest: "sha256:00".into(),
            class: class.map(|name| Class { name, version: 1 }),
        }
    }

    fn target(name: &str, class: Option<ClassName>, unit: Option<&str>) -> Target {
        Target {
            name: name.into(),
            spec: PathBuf::from(format!("/etc/host-launch/{name}.json")),
            image: image(class),
            systemd: unit.map(|u| crate::state::Systemd {
                unit: u.into(),
                invocation_id: "0123".into(),
            }),
        }
    }

    #[test]
    fn refuses_another_class_and_unknown_units_naming_each() {
        let new = image(Some(ClassName::Web));
        let ok = [
            target("w1", Some(ClassName::Web), None),
            target("w3", Some(ClassName::Web), Some("host-launch@w3.service")),
        ];
        assert!(refuse(&ok, &new).is_ok());
        let bad = [
            target("d1", Some(ClassName::Dns), None),
            target("w2", Some(ClassName::Web), Some("?")),
        ];
        let e = refuse(&bad, &new).unwrap_err();
        assert_eq!(e.kind, crate::error::Kind::Invalid);
        assert!(e.message.contains("'d1': class:"), "{}", e.message);
        assert!(
            e.message.contains("'w2' is run by the systemd unit '?'"),
            "{}",
            e.message
        );
        assert!(e.message.contains("nothing was changed"), "{}", e.message);
    }
}
