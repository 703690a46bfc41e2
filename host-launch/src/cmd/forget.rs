//! `forget NAME` / `forget --all-exited`: removes the state directory of appliances that are
//! not running (their logs, last outcome and `upgrade`'s pin record), so `list` shows only
//! what matters. Data disks are the spec's files, elsewhere: never touched.

use crate::error::{Error, Result};
use crate::lifecycle::{clean_if_stale, known};
use crate::state;

/// Forgets one appliance; refused (121) while it runs.
pub fn forget(name: &str) -> Result<i32> {
    let e = known(name)?;
    forget_entry(&e)?;
    println!("forgot '{name}' (removed {})", e.dir.path.display());
    Ok(0)
}

/// Forgets every appliance that is not running.
pub fn forget_all_exited() -> Result<i32> {
    let mut n = 0;
    for e in state::list(&state::base_dir()) {
        if e.running {
            continue;
        }
        match forget_entry(&e) {
            Ok(()) => {
                println!("forgot '{}'", e.name);
                n += 1;
            }
            // Started meanwhile: it is no longer exited.
            Err(err) if err.kind == crate::Kind::Busy => {}
            Err(err) => return Err(err),
        }
    }
    println!("{n} exited appliance(s) forgotten");
    Ok(0)
}

/// Removes the directory while holding the appliance's lock, so no launch starts meanwhile;
/// what a dead launcher left (UML processes, TAP device) is cleaned first.
fn forget_entry(e: &state::Entry) -> Result<()> {
    let busy = || {
        Error::busy(format!(
            "appliance '{}' is running; stop it first (`host-launch stop {}`{})",
            e.name,
            e.name,
            e.state
                .as_ref()
                .and_then(|s| s.systemd.as_ref())
                .map(|s| format!(" or `systemctl stop {}`", s.unit))
                .unwrap_or_default()
        ))
    };
    if e.running {
        return Err(busy());
    }
    let _ = clean_if_stale(e);
    let Some(_lock) = state::try_lock(&e.dir)? else {
        return Err(busy());
    };
    std::fs::remove_dir_all(&e.dir.path)
        .map_err(|err| Error::host(format!("removing {}: {err}", e.dir.path.display())))
}
