//! `logs NAME` (with `--json`): the status events of the last run.

use crate::error::Result;
use crate::events;
use crate::lifecycle::{known, read};
use std::io::Write;

/// `logs NAME`: the status events of the last run (raw JSON lines with `json`).
pub fn logs(name: &str, json: bool) -> Result<i32> {
    let e = known(name)?;
    let text = read(&e.dir.events())?;
    let mut out = std::io::stdout().lock();
    for line in text.lines() {
        if json {
            let _ = writeln!(out, "{line}");
        } else if let Some(ev) = events::parse_value(line) {
            let _ = writeln!(out, "{}", events::human(&ev));
        }
    }
    Ok(0)
}
