//! `stop NAME`: stops a running appliance through its launcher.

use crate::error::Result;
use crate::lifecycle::{self, Stopped};
use std::time::Duration;

/// Stops `name`, waiting up to `timeout`, and says how it went.
pub fn stop(name: &str, timeout: Duration) -> Result<i32> {
    match lifecycle::stop(name, timeout)? {
        Stopped::NotRunning(notes) => {
            println!("'{name}' is not running");
            for n in notes {
                println!("  {n}");
            }
        }
        Stopped::Stopped(outcome) => println!("stopped '{name}': {outcome}"),
    }
    Ok(0)
}
