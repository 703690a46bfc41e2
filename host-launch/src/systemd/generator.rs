//! The generator (systemd.generator(7)): run by systemd at boot and at every
//! `daemon-reload` as `host-launch-generator NORMAL EARLY LATE`. For each
//! `/etc/host-launch/NAME.json` it writes, into NORMAL:
//!
//! - `host-launch@NAME.service.d/50-host-launch-spec.conf`, the spec's ordering and limits
//!   ([`super::dropin`]);
//! - `multi-user.target.wants/host-launch@NAME.service`, a link to the template: every spec
//!   there starts at boot.
//!
//! A generator must not fail the boot, and must not wait: a spec that cannot be read still
//! gets its unit enabled (it then fails with the field named in `systemctl status`), and only
//! a note goes to the generator's standard error (the kernel log at boot).

use super::dropin::Settings;
use crate::error::{Error, IoContext, Result};
use std::path::{Path, PathBuf};

/// The drop-in's file name.
pub const DROPIN: &str = "50-host-launch-spec.conf";

/// What the generator did with one spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    pub name: String,
    /// Problems with the spec, if any (its unit is enabled all the same).
    pub note: Option<String>,
}

/// Writes the units for every `*.json` in `spec_dir` into `out`; the template is
/// `template` (linked from `multi-user.target.wants`).
pub fn generate(spec_dir: &Path, out: &Path, template: &Path) -> Result<Vec<Generated>> {
    let mut done = Vec::new();
    let Ok(rd) = std::fs::read_dir(spec_dir) else {
        return Ok(done); // no specs: nothing to do
    };
    let mut specs: Vec<PathBuf> = rd
        .flatten()
        .map(|e| crate::launch::load::absolute(&e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    specs.sort();
    for path in specs {
        let Some(name) = path
            .file_stem()
            .and_then(|s| s.to_str())
            .map(str::to_string)
        else {
            continue;
        };
        if appliance::spec::check_name(&name).is_err() {
            done.push(Generated {
                note: Some(format!(
                    "{}: the file name is not an appliance name; skipped",
                    path.display()
                )),
                name,
            });
            continue;
        }
        let note = write_one(&path, &name, out, template)?;
        done.push(Generated { name, note });
    }
    Ok(done)
}

fn write_one(spec_path: &Path, name: &str, out: &Path, template: &Path) -> Result<Option<String>> {
    let unit = super::unit_name(name);
    let (settings, note) = settings_for(spec_path, name);
    if let Some(s) = settings {
        let dir = out.join(format!("{unit}.d"));
        std::fs::create_dir_all(&dir).io_context(|| format!("creating {}", dir.display()))?;
        let file = dir.join(DROPIN);
        std::fs::write(&file, s.render()).io_context(|| format!("writing {}", file.display()))?;
    }
    let wants = out.join("multi-user.target.wants");
    std::fs::create_dir_all(&wants).io_context(|| format!("creating {}", wants.display()))?;
    let link = wants.join(&unit);
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(template, &link)
        .io_context(|| format!("linking {}", link.display()))?;
    Ok(note)
}

/// The spec's settings; with the merged contract's stop timeout when the image's manifest is
/// readable, else the spec's own (or the contract's default).
fn settings_for(spec_path: &Path, name: &str) -> (Option<Settings>, Option<String>) {
    let source = spec_path.display().to_string();
    let file = match crate::launch::load::SpecFile::read(spec_path) {
        Ok(f) => f,
        Err(e) => return (None, Some(first_line(&e))),
    };
    let spec = &file.spec;
    let mut note = None;
    if spec.name != name {
        note = Some(format!(
            "{source}: name: '{}' differs from the file name; host-launch@{name} runs it as '{}'",
            spec.name, spec.name
        ));
    }
    let stop_ms = match crate::launch::load::load(&file) {
        Ok(l) => l.merged.contract.service.stop_timeout_ms,
        Err(e) => {
            note.get_or_insert_with(|| first_line(&e));
            spec.stop_timeout_ms.unwrap_or(10_000)
        }
    };
    (Some(Settings::of(spec, &source, stop_ms)), note)
}

fn first_line(e: &Error) -> String {
    e.message.lines().next().unwrap_or_default().to_string()
}
