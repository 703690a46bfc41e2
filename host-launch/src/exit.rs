//! How a run ended, and the launcher's exit status for it.
//!
//! | status  | meaning                                                                   |
//! |--------:|---------------------------------------------------------------------------|
//! |       0 | clean: a requested stop, or the service exited with 0                     |
//! |  1–119  | the service exited with this code (codes of 119 and above read 119)       |
//! |     120 | invalid spec or manifest, or they do not fit together, or the image fails the trust policy; nothing was done |
//! |     121 | refused: the appliance (or its TAP device, or a disk) is in use           |
//! |     122 | a host step failed: disks, TAP device, state directory, starting UML     |
//! |     123 | guest-init reported a fatal error (bad contract, mount, network, ...)     |
//! |     124 | the kernel crashed: UML ended without powering off, or the console shows a panic |
//! |     125 | killed: the VM did not stop in time and was halted, or UML was killed     |
//! |     126 | no such appliance (`stop`, `status`, `logs`, `console`)                   |
//! |     127 | `upgrade`: the new image did not become ready; rolled back to the old one |
//! |     128 | usage error: an unknown command or flag, a missing argument (as podman's 125) |
//! |  128+N  | the service was killed by signal N                                        |
//!
//! A usage error has a status of its own, outside the service's range, so that a script
//! never mistakes a typo for the service's exit code (no signal is 0: 128 is free).

use crate::error::Kind;
use serde_json::Value;

pub const CLEAN: i32 = 0;
pub const SERVICE_MAX: i32 = 119;
pub const INVALID: i32 = 120;
pub const BUSY: i32 = 121;
pub const HOST: i32 = 122;
pub const GUEST_FATAL: i32 = 123;
pub const CRASH: i32 = 124;
pub const KILLED: i32 = 125;
pub const NOT_FOUND: i32 = 126;
/// `upgrade` only: the new image failed (fatal, ended, or not ready in time) and the old one
/// was put back (running again if it ran before). A failed rollback is [`HOST`].
pub const ROLLED_BACK: i32 = 127;
/// A command-line usage error.
pub const USAGE: i32 = 128;

/// The exit status for a launcher error.
pub fn for_error(kind: Kind) -> i32 {
    match kind {
        Kind::Invalid => INVALID,
        Kind::Busy => BUSY,
        Kind::Host => HOST,
        Kind::NotFound => NOT_FOUND,
        Kind::Usage => USAGE,
    }
}

/// How the VM ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Powered off cleanly: a requested stop, or the service exited 0.
    Clean(String),
    /// The service exited with a non-zero code and was not restarted.
    ServiceExit(i32),
    /// The service was killed by a signal and was not restarted.
    ServiceSignal(i32),
    /// guest-init stopped the boot with a fatal error.
    GuestFatal(String),
    /// UML ended without a power-off, or the kernel panicked.
    Crash(String),
    /// The launcher had to halt or kill the VM, or something else killed UML.
    Killed(String),
}

impl Outcome {
    pub fn code(&self) -> i32 {
        match self {
            Outcome::Clean(_) => CLEAN,
            Outcome::ServiceExit(c) => (*c).clamp(1, SERVICE_MAX),
            Outcome::ServiceSignal(s) => 128 + s,
            Outcome::GuestFatal(_) => GUEST_FATAL,
            Outcome::Crash(_) => CRASH,
            Outcome::Killed(_) => KILLED,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Outcome::Clean(why) => format!("clean power-off ({why})"),
            Outcome::ServiceExit(c) => format!("the service exited with code {c}"),
            Outcome::ServiceSignal(s) => format!("the service was killed by signal {s}"),
            Outcome::GuestFatal(why) => format!("guest-init fatal error: {why}"),
            Outcome::Crash(why) => format!("kernel crash: {why}"),
            Outcome::Killed(why) => format!("killed: {why}"),
        }
    }
}

/// What the launcher saw of a run.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// The fields of the `power_off` event, if one came.
    pub power_off: Option<Value>,
    /// The reason of a `fatal` event, if one came.
    pub fatal: Option<String>,
    /// UML's exit code, or the signal that killed it.
    pub uml_code: Option<i32>,
    pub uml_signal: Option<i32>,
    /// The console log shows a kernel panic: why (`vmm::boot::kernel_panic`).
    pub panic: Option<String>,
    /// The launcher halted or killed the VM after the stop timeout.
    pub forced: Option<String>,
}

/// Decides the outcome from what was seen.
pub fn decide(s: &Seen) -> Outcome {
    if let Some(why) = &s.panic {
        return Outcome::Crash(format!("the console shows a kernel panic: {why}"));
    }
    if let Some(why) = &s.forced {
        return Outcome::Killed(why.clone());
    }
    // Once the guest has powered off, how the UML process then ended (Debian's kernel now and
    // then aborts or hangs after "System halted", and is killed) is not the guest's outcome.
    if let (Some(sig), None) = (s.uml_signal, &s.power_off) {
        return Outcome::Killed(format!("UML was killed by signal {sig}"));
    }
    if let Some(p) = &s.power_off {
        let reason = p["reason"].as_str().unwrap_or("");
        return match reason {
            "requested" => Outcome::Clean(format!(
                "stop requested by {}",
                p["signal"].as_str().unwrap_or("the host")
            )),
            "service ended" => match (p["code"].as_i64(), p["signal"].as_i64()) {
                (Some(0), _) => Outcome::Clean("the service exited with code 0".into()),
                (Some(c), _) => Outcome::ServiceExit(i32::try_from(c).unwrap_or(SERVICE_MAX)),
                (None, Some(sig)) => Outcome::ServiceSignal(i32::try_from(sig).unwrap_or(0)),
                (None, None) => Outcome::ServiceExit(SERVICE_MAX),
            },
            _ => Outcome::GuestFatal(
                s.fatal
                    .clone()
                    .or_else(|| p["error"].as_str().map(str::to_string))
                    .unwrap_or_else(|| format!("power-off reason '{reason}'")),
            ),
        };
    }
    if let Some(f) = &s.fatal {
        return Outcome::GuestFatal(f.clone());
    }
    Outcome::Crash(format!(
        "UML exited (code {}) without a power_off event; see the console log",
        s.uml_code
            .map(|c| c.to_string())
            .unwrap_or_else(|| "?".into())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn with(p: Value) -> Seen {
        Seen {
            power_off: Some(p),
            uml_code: Some(0),
            ..Seen::default()
        }
    }

    #[test]
    fn outcomes_and_codes() {
        let o = decide(&with(
            json!({"reason":"requested","signal":"SIGINT (ctrl-alt-del)"}),
        ));
        assert_eq!(o.code(), 0, "{o:?}");
        let o = decide(&with(json!({"reason":"service ended","code":0})));
        assert_eq!(o.code(), 0);
        assert_eq!(
            decide(&with(json!({"reason":"service ended","code":3}))).code(),
            3
        );
        assert_eq!(
            decide(&with(json!({"reason":"service ended","code":200}))).code(),
            119
        );
        assert_eq!(
            decide(&with(
                json!({"reason":"service ended","code":null,"signal":9})
            ))
            .code(),
            137
        );
        let mut s = with(json!({"reason":"fatal","field":"contract"}));
        s.fatal = Some("bad".into());
        assert_eq!(decide(&s), Outcome::GuestFatal("bad".into()));
        assert_eq!(decide(&s).code(), GUEST_FATAL);
        let crash = decide(&Seen {
            uml_code: Some(1),
            ..Seen::default()
        });
        assert_eq!(crash.code(), CRASH);
        let mut s = with(json!({"reason":"requested"}));
        s.panic = Some("Kernel panic - not syncing: Attempted to kill init!".into());
        assert_eq!(decide(&s).code(), CRASH);
        let killed = decide(&Seen {
            forced: Some("stop timeout".into()),
            ..Seen::default()
        });
        assert_eq!(killed.code(), KILLED);
        let sig = decide(&Seen {
            uml_signal: Some(9),
            ..Seen::default()
        });
        assert_eq!(sig.code(), KILLED);
    }
}
