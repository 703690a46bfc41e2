//! `console NAME`: the guest console of the last run.

use crate::error::Result;
use crate::lifecycle::{known, read};
use std::io::Write;

/// `console NAME`: the guest console of the last run.
pub fn console(name: &str) -> Result<i32> {
    let e = known(name)?;
    let text = read(&e.dir.console())?;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    Ok(0)
}
