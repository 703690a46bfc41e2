//! `check SPEC`: validates a spec against its image without touching the host, and shows the
//! launch (contract, kernel, uid, command line).

use crate::error::Result;
use std::path::Path;

/// Prints what `run` would do, or with `contract` only the merged contract.
pub fn check(spec: &Path, contract: bool) -> Result<i32> {
    let r = crate::lifecycle::check(spec)?;
    if contract {
        println!(
            "{}",
            serde_json::to_string_pretty(&r.loaded.merged.contract).unwrap_or_default()
        );
    } else {
        print!("{}", r.text);
    }
    Ok(0)
}
