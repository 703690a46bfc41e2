//! The battery: each module boots the image with its contracts and records what it saw.
//! Every boot ends with the same checks of its end (`after`).

mod fatal;
mod files;
mod image;
mod inside;
mod lifecycle;

use crate::error::Error;
use crate::lab::{superblock, Lab};
use crate::report::{one_line, Results};
use ::lab::{RunningVm, Vm, VmOutcome};
use serde_json::Value;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How long a boot may take to reach an event the kit waits for.
pub const BOOT: Duration = Duration::from_secs(30);

/// One boot (or a few) of the battery.
type Step = fn(&Lab, &mut Results) -> Result<(), Error>;

/// Runs every check of the battery against the lab's image; an error is a boot the kit could
/// not run (a problem of the host, not of the image).
pub fn run_all(lab: &Lab, r: &mut Results) -> Result<(), Error> {
    files::check(lab, r);
    let steps: [(&str, Step); 5] = [
        ("the image's own service", image::check),
        ("the probe", inside::check),
        ("restarts and stop timeout", lifecycle::check),
        (
            "restart policies and notify readiness",
            lifecycle::check_policies,
        ),
        ("contracts to refuse", fatal::check),
    ];
    for (what, step) in steps {
        step(lab, r).map_err(|e| Error::Step {
            what,
            source: Box::new(e),
        })?;
    }
    Ok(())
}

/// The contract the kit built: its own mistake if it does not validate.
pub fn contract(v: &Value) -> Result<contract::Contract, Error> {
    contract::parse_json(v.to_string().as_bytes())
        .map_err(|e| Error::Kit(format!("the kit's contract: {e}")))
}

pub fn spawn(vm: &Vm) -> Result<RunningVm, Error> {
    Ok(vm.spawn()?)
}

/// The probe's `=probe= KEY VALUE` lines as (KEY, VALUE), in order.
pub fn probe_lines(console: &str) -> Vec<(String, String)> {
    console
        .lines()
        .filter_map(|l| l.split_once("=probe= ").map(|(_, t)| t))
        .map(|t| match t.split_once(' ') {
            Some((k, v)) => (k.to_string(), v.trim_end().to_string()),
            None => (t.to_string(), String::new()),
        })
        .collect()
}

/// The value of the first probe line with this key (and value prefix).
pub fn probe_value(lines: &[(String, String)], key: &str, prefix: &str) -> Option<String> {
    lines
        .iter()
        .find(|(k, v)| k == key && v.starts_with(prefix))
        .map(|(_, v)| v[prefix.len()..].trim().to_string())
}

/// Asks for a stop (ctrl-alt-del through mconsole) and waits for the VM to end. A VM that
/// ended before it was asked (its mconsole socket is gone) is the guest's doing, not the
/// kit's: its outcome is checked like any other.
pub fn stop(vm: RunningVm, limit: Duration) -> Result<(VmOutcome, Duration), Error> {
    let asked = Instant::now();
    let request = vm.mconsole("cad");
    let outcome = vm.wait(limit)?;
    if let Err(e) = request {
        if !outcome.events.iter().any(|e| e.name == "power_off")
            && !outcome.timed_out
            && outcome.duration < limit
        {
            eprintln!("conformance: the stop request did not reach a running VM ({e})");
        }
    }
    Ok((outcome, asked.elapsed()))
}

/// The checks every boot that should end in a clean power-off makes on its end, and those of
/// the status channel; `disks` are the data disks it had.
pub fn after(r: &mut Results, label: &str, o: &VmOutcome, disks: &[PathBuf]) {
    let tail = || {
        one_line(
            &o.console
                .lines()
                .rev()
                .take(4)
                .collect::<Vec<_>>()
                .join(" / "),
            300,
        )
    };
    r.check(
        "C-OFF-1",
        o.powered_off_cleanly(),
        format!(
            "{label}: UML {} after {:.1} s{}",
            o.status,
            o.duration.as_secs_f64(),
            if o.timed_out {
                ", killed at the timeout"
            } else {
                ""
            }
        ),
    );
    if !o.powered_off_cleanly() {
        r.check(
            "C-OFF-1",
            false,
            format!("{label}: console ends: {}", tail()),
        );
    }
    let killed = o.console.contains("Attempted to kill init");
    r.check(
        "C-PID1-1",
        !killed && !o.console.contains("Kernel panic"),
        format!(
            "{label}: {}",
            if killed { "PID 1 exited" } else { "no panic" }
        ),
    );
    let last = o.events.last().map(|e| e.name.as_str());
    let reason = power_off_reason(o);
    r.check(
        "C-EV-3",
        last == Some("power_off") && reason.is_some(),
        format!("{label}: last event {last:?}, reason {reason:?}"),
    );
    status_lines(r, label, o);
    for d in disks {
        let state = superblock(d, "Filesystem state");
        let features = superblock(d, "Filesystem features").unwrap_or_default();
        let ok = matches!(&state, Ok(s) if s == "clean") && !features.contains("needs_recovery");
        r.check(
            "C-OFF-2",
            ok,
            format!(
                "{label}: {}: state {state:?}{}",
                d.display(),
                if features.contains("needs_recovery") {
                    ", journal needs recovery"
                } else {
                    ""
                }
            ),
        );
    }
}

/// C-EV-1: every line of the status channel is an event object with its clocks.
pub fn status_lines(r: &mut Results, label: &str, o: &VmOutcome) {
    let bad: Vec<&str> = o
        .status_text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter(|l| {
            let v = contract::json::parse_value(l.as_bytes()).ok();
            let has = |k: &str| {
                v.as_ref()
                    .and_then(|v| v.get(k))
                    .is_some_and(|x| x.is_u64())
            };
            !(v.as_ref()
                .and_then(|v| v.get("event"))
                .is_some_and(|e| e.is_string())
                && has("ts_us")
                && has("boot_us")
                && has("init_us"))
        })
        .collect();
    let n = o.status_text.lines().count();
    r.check(
        "C-EV-1",
        bad.is_empty() && n > 0,
        match bad.first() {
            Some(l) => format!("{label}: not an event line: {}", one_line(l, 120)),
            None => format!("{label}: {n} event lines"),
        },
    );
}

/// One ping from the namespace (busybox's, from busybox-static), from `from` if given.
pub fn ping(lab: &Lab, from: Option<&str>, to: &str) -> (bool, String) {
    let applet = if to.contains(':') { "ping6" } else { "ping" };
    let mut args = vec![applet, "-c", "1", "-W", "3"];
    if let Some(f) = from {
        args.extend(["-I", f]);
    }
    args.push(to);
    match lab.ns.output("/bin/busybox", &args) {
        Ok(o) => {
            let text = String::from_utf8_lossy(&o.stdout);
            let line = text
                .lines()
                .find(|l| l.contains("packets transmitted"))
                .unwrap_or("no summary")
                .to_string();
            (
                o.status.success(),
                format!(
                    "ping {to}{}: {line}",
                    from.map(|f| format!(" from {f}")).unwrap_or_default()
                ),
            )
        }
        Err(e) => (false, format!("ping {to}: {e}")),
    }
}

/// Whether the guest's `port` accepts a connection now (when `ready` came), with the evidence.
pub fn listening_at_ready(lab: &Lab, label: &str, port: u16, note: &str) -> (bool, String) {
    let addr = std::net::SocketAddr::from((
        crate::lab::GUEST_V4
            .parse::<std::net::Ipv4Addr>()
            .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED),
        port,
    ));
    let ok = connects(lab, addr);
    (
        ok,
        format!(
            "{label}: at ready, {addr} {}{note}",
            if ok { "accepts" } else { "refuses" }
        ),
    )
}

/// Waits for `ready` (C-EV-2) and checks requirement `id`: the probe's port accepts then.
/// Whether `ready` came.
pub fn ready_listening(
    lab: &Lab,
    r: &mut Results,
    vm: &RunningVm,
    id: &'static str,
    label: &str,
    note: &str,
) -> bool {
    match vm.wait_for_event("ready", BOOT) {
        Ok(_) => {
            let (ok, ev) = listening_at_ready(lab, label, crate::lab::PROBE_PORT, note);
            r.check(id, ok, ev);
            r.check("C-EV-2", true, format!("{label}: ready"));
            true
        }
        Err(e) => {
            r.check(id, false, format!("{label}: {e}"));
            r.check("C-EV-2", false, format!("{label}: {e}"));
            false
        }
    }
}

/// The `reason` of the last `power_off` event.
pub fn power_off_reason(o: &VmOutcome) -> Option<String> {
    o.events
        .iter()
        .rev()
        .find(|e| e.name == "power_off")
        .and_then(|e| e.str("reason").map(str::to_string))
}

/// Whether a TCP connection from the namespace to `addr` succeeds now.
pub fn connects(lab: &Lab, addr: std::net::SocketAddr) -> bool {
    lab.ns
        .enter(move || std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok())
        .unwrap_or(false)
}
