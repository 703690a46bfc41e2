//! `restart NAME... | --all`: stop each appliance, then start it again from the spec it last
//! ran (so an edited spec takes effect, as `systemctl restart` would).

use crate::cmd::{start, stop};
use crate::error::{Error, Result};
use crate::lifecycle;
use std::time::Duration;

/// Restarts each of `names` in turn; the first failure ends it, with its status. One that
/// systemd runs is refused with the systemctl command: a restart here would leave it running
/// outside its unit.
pub fn restart(
    names: &[String],
    time: Option<Duration>,
    wait_ready: Option<Duration>,
) -> Result<i32> {
    for name in names {
        let e = lifecycle::known(name)?;
        let unit = e.state.as_ref().and_then(|s| s.systemd.as_ref());
        if let Some(s) = unit.filter(|_| e.running) {
            return Err(Error::busy(format!(
                "'{name}' is run by systemd; restart it with `systemctl restart {}`",
                s.unit
            )));
        }
        let spec = lifecycle::last_spec(name)?;
        stop::stop(name, time).map_err(|e| e.context(format!("restarting '{name}'")))?;
        let code = start::start(&spec, wait_ready)?;
        if code != 0 {
            return Ok(code);
        }
    }
    Ok(0)
}
