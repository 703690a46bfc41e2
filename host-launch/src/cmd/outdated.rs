//! `outdated [--json]`: per running appliance, the packages of its image that Debian's archive
//! has a newer version of, security updates marked. The archive is asked once per distinct
//! image by the image builder (`build-image IMAGE --outdated --json`: its private apt state
//! and the image's SBOM; host-launch itself reads no package index). Exit status 0 nothing
//! behind, 3 something behind, 4 the archive cannot be reached (then nothing is claimed).

use crate::error::{Error, Result};
use crate::rollout::targets::{self, Images, Target};
use crate::state;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Exit status: some package is behind.
pub const BEHIND: i32 = 3;
/// Exit status: the archive could not be reached.
pub const UNREACHABLE: i32 = 4;

/// What the builder said of one image.
enum Verdict {
    Behind(Value),
    Unreachable(String),
}

/// `host-launch outdated`.
pub fn outdated(json: bool) -> Result<i32> {
    let mut images = Images::default();
    let running = targets::running(&state::base_dir(), &mut images)?;
    let mut verdicts: BTreeMap<PathBuf, Verdict> = BTreeMap::new();
    for t in &running {
        if !verdicts.contains_key(&t.image.path) {
            verdicts.insert(t.image.path.clone(), ask_builder(&t.image.path)?);
        }
    }
    let rows: Vec<Value> = running.iter().map(|t| row(t, &verdicts)).collect();
    if json {
        println!("{}", Value::Array(rows.clone()));
    } else {
        print_rows(&rows);
    }
    let unreachable = verdicts
        .values()
        .any(|v| matches!(v, Verdict::Unreachable(_)));
    let behind = rows
        .iter()
        .any(|r| r["behind"].as_array().is_some_and(|b| !b.is_empty()));
    Ok(if unreachable {
        UNREACHABLE
    } else if behind {
        BEHIND
    } else {
        0
    })
}

fn row(t: &Target, verdicts: &BTreeMap<PathBuf, Verdict>) -> Value {
    let mut r = json!({"name": t.name, "image": t.image.path, "digest": t.image.digest});
    match verdicts.get(&t.image.path) {
        Some(Verdict::Behind(b)) => r["behind"] = b.clone(),
        Some(Verdict::Unreachable(why)) => r["unknown"] = why.as_str().into(),
        None => {}
    }
    r
}

fn print_rows(rows: &[Value]) {
    for r in rows {
        let name = r["name"].as_str().unwrap_or("");
        if let Some(why) = r["unknown"].as_str() {
            println!("{name}: UNKNOWN, {why}");
            continue;
        }
        let behind = r["behind"].as_array().cloned().unwrap_or_default();
        let security = behind.iter().filter(|b| b["security"] == true).count();
        println!(
            "{name}: {} package(s) behind, {security} security ({})",
            behind.len(),
            r["image"].as_str().unwrap_or("")
        );
        for b in behind {
            println!(
                "  {:<24} {:<24} -> {:<24} {}",
                b["package"].as_str().unwrap_or(""),
                b["locked"].as_str().unwrap_or(""),
                b["candidate"].as_str().unwrap_or(""),
                if b["security"] == true {
                    "SECURITY"
                } else {
                    ""
                }
            );
        }
    }
}

/// `build-image IMAGE --outdated --json`.
fn ask_builder(image: &Path) -> Result<Verdict> {
    let exe = builder();
    let o = std::process::Command::new(&exe)
        .arg(image)
        .args(["--outdated", "--json"])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| {
            Error::host(format!(
                "running {}: {e} (the image builder answers for the archive; install it)",
                exe.display()
            ))
        })?;
    let err = String::from_utf8_lossy(&o.stderr).trim().to_string();
    match o.status.code() {
        Some(0 | 3) => {
            let v: Value = serde_json::from_slice(&o.stdout)
                .map_err(|e| Error::host(format!("{}: unreadable answer ({e})", exe.display())))?;
            Ok(Verdict::Behind(v["behind"].clone()))
        }
        Some(4) => Ok(Verdict::Unreachable(err)),
        _ => Err(Error::host(format!(
            "{} {}: {err}",
            exe.display(),
            image.display()
        ))),
    }
}

/// `build-image` beside this program (the package's /usr/bin, a checkout's target dir), else
/// from PATH.
fn builder() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("build-image")))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("build-image"))
}
