//! `list` (with `--json`): one line per appliance, in natural order of names (d1, d2, d10).

use crate::cmd::status::{managed_by, status_word, uptime};
use crate::error::Result;
use crate::state;
use std::io::Write;

/// `list`: one line per appliance.
pub fn list(json: bool) -> Result<i32> {
    let entries = state::list(&state::base_dir());
    if json {
        let v: Vec<serde_json::Value> = entries
            .iter()
            .map(|e| {
                let st = e.state.as_ref();
                serde_json::json!({
                    "name": e.name,
                    "status": status_word(e),
                    "running": e.running,
                    "pid": st.filter(|_| e.running).map(|s| s.launcher_pid),
                    "ready": st.is_some_and(|s| e.running && s.ready),
                    "started_at_ms": st.map(|s| s.started_at_ms),
                    "exit_code": st.and_then(|s| s.exit_code),
                    "systemd_unit": st.and_then(|s| s.systemd.as_ref()).map(|s| s.unit.clone()),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(0);
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{:<20} {:<18} {:<8} {:<6} {:<10} MANAGED BY",
        "NAME", "STATUS", "PID", "READY", "UPTIME"
    );
    for e in &entries {
        let (pid, ready, up) = match &e.state {
            Some(st) if e.running => (
                st.launcher_pid.to_string(),
                if st.ready { "yes" } else { "no" }.to_string(),
                uptime(st.started_at_ms),
            ),
            _ => ("-".into(), "-".into(), "-".into()),
        };
        let _ = writeln!(
            out,
            "{:<20} {:<18} {:<8} {:<6} {:<10} {}",
            e.name,
            status_word(e),
            pid,
            ready,
            up,
            managed_by(e)
        );
    }
    Ok(0)
}
