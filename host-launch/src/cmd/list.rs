//! `list`: one line per appliance.

use crate::cmd::status::{status_word, uptime};
use crate::error::Result;
use crate::state;
use std::io::Write;

/// `list`: one line per appliance.
pub fn list() -> Result<i32> {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{:<20} {:<18} {:<8} {:<6} UPTIME",
        "NAME", "STATUS", "PID", "READY"
    );
    for e in state::list(&state::base_dir()) {
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
            "{:<20} {:<18} {:<8} {:<6} {up}",
            e.name,
            status_word(&e),
            pid,
            ready
        );
    }
    Ok(0)
}
