//! `list` (alias `ps`; `--format json`, the objects of `status`): one line per appliance, in natural order of names (d1, d2, d10).

use crate::cmd::status::{managed_by, status_word, uptime};
use crate::error::Result;
use crate::state;
use std::io::Write;

/// `list`: one line per appliance.
pub fn list(json: bool) -> Result<i32> {
    let entries = state::list(&state::base_dir());
    if json {
        println!("{}", crate::cmd::view::appliances(&entries));
        return Ok(0);
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{:<20} {:<18} {:<8} {:<6} {:<10} {:<24} MANAGED BY",
        "NAME", "STATUS", "PID", "READY", "UPTIME", "IMAGE"
    );
    for e in &entries {
        let _ = writeln!(out, "{}", row(e));
    }
    Ok(0)
}

/// One appliance's line: an exited one's status carries its exit status.
fn row(e: &state::Entry) -> String {
    let (pid, ready, up) = match &e.state {
        Some(st) if e.running => (
            st.launcher_pid.to_string(),
            if st.ready { "yes" } else { "no" }.to_string(),
            uptime(st.started_at_ms),
        ),
        _ => ("-".into(), "-".into(), "-".into()),
    };
    let status = match e.state.as_ref().and_then(|s| s.exit_code) {
        Some(c) if !e.running => format!("{} ({c})", status_word(e)),
        _ => status_word(e).to_string(),
    };
    let image = e
        .state
        .as_ref()
        .and_then(|s| s.image.as_deref())
        .and_then(|i| std::path::Path::new(i).file_name())
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| "-".into());
    format!(
        "{:<20} {status:<18} {pid:<8} {ready:<6} {up:<10} {image:<24} {}",
        e.name,
        managed_by(e)
    )
}
