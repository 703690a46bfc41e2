//! `stop NAME... | --all [-t SECONDS]`: stops running appliances through their launchers.

use crate::error::Result;
use crate::lifecycle::{self, Stopped};
use crate::state;
use std::time::Duration;

/// The names `--all` means: every running appliance, in natural order.
pub fn running_names() -> Vec<String> {
    state::list(&state::base_dir())
        .into_iter()
        .filter(|e| e.running)
        .map(|e| e.name)
        .collect()
}

/// Stops each of `names` in turn, waiting up to `time` each (default: its stop timeout and
/// the launcher's margin), and says how each went. One that fails does not keep the others
/// running (as podman's stop); the first failure's status is the command's.
pub fn stop_all(names: &[String], time: Option<Duration>) -> Result<i32> {
    let mut first = None;
    for name in names {
        if let Err(e) = stop(name, time) {
            let e = e.context(format!("stopping '{name}'"));
            if names.len() > 1 {
                eprintln!("host-launch: {e}");
            }
            first.get_or_insert(e);
        }
    }
    match first {
        Some(e) if names.len() > 1 => Ok(crate::exit::for_error(e.kind)),
        Some(e) => Err(e),
        None => Ok(0),
    }
}

/// Stops `name` and says how it went.
pub fn stop(name: &str, time: Option<Duration>) -> Result<()> {
    let timeout = match time {
        Some(t) => t,
        None => lifecycle::default_stop_wait(lifecycle::known(name)?.state.as_ref()),
    };
    match lifecycle::stop(name, timeout)? {
        Stopped::NotRunning(notes) => {
            println!("'{name}' is not running");
            for n in notes {
                println!("  {n}");
            }
        }
        Stopped::Stopped(outcome) => println!("stopped '{name}': {outcome}"),
    }
    Ok(())
}

/// `names`, or with `all` every running appliance (saying so when that is none).
pub fn chosen(names: Vec<String>, all: bool) -> Result<Vec<String>> {
    if !all {
        return Ok(names);
    }
    let running = running_names();
    if running.is_empty() {
        println!("no appliance is running");
    }
    Ok(running)
}
