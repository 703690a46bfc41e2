//! `events NAME [-f] [--format json]`: the status events the guest sent (boot, ready, the
//! service's exits, power-off), in words or as the JSON lines the launcher recorded.

use crate::error::Result;
use crate::events;
use crate::lifecycle::{known, read};
use crate::tail::Follower;
use std::io::Write;

/// `events NAME`: the recorded events, then (with `follow`) the ones that come.
pub fn events(name: &str, follow: bool, json: bool) -> Result<i32> {
    let e = known(name)?;
    let path = e.dir.events();
    let mut text = read(&vmm::channel::rotated(&path))?;
    let follower = follow.then(|| Follower::from_end(&path));
    text.push_str(&read(&path)?);
    let mut out = std::io::stdout().lock();
    for line in text.lines() {
        if let Some(s) = shown(line.as_bytes(), json) {
            if out.write_all(s.as_bytes()).is_err() {
                return Ok(0);
            }
        }
    }
    let _ = out.flush();
    drop(out);
    if let Some(f) = follower {
        crate::cmd::logs::follow(f, |l| shown(l, json).unwrap_or_default());
    }
    Ok(0)
}

/// One recorded event as printed: the JSON object again (only when it is one), or in words.
fn shown(line: &[u8], json: bool) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(line).ok()?;
    if !v.is_object() {
        return None;
    }
    Some(if json {
        format!("{v}\n")
    } else {
        format!("{}\n", events::human(&v))
    })
}
