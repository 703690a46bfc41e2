//! The service's life: restarts and their back-off, the stop timeout, the restart policies
//! `always` and `never`, notify readiness; with remote syslog in the other formats and
//! transports (TCP RFC 3164, TCP RFC 5424, UDP RFC 3164).

use super::{
    after, contract, power_off_reason, probe_lines, probe_value, ready_listening, spawn, stop, BOOT,
};
use crate::error::Error;
use crate::lab::{Lab, PROBE_PORT};
use crate::report::{one_line, Results};
use crate::syslog::{self, Received};
use serde_json::json;
use std::time::Duration;

/// Restart back-off bounds of the crash scenario.
const MIN_MS: u64 = 300;
const MAX_MS: u64 = 500;
const STOP_TIMEOUT_MS: u64 = 1500;

fn starts(console: &str) -> usize {
    console
        .lines()
        .filter(|l| l.contains("=probe= start "))
        .count()
}

/// The probe fails twice (exit 3), then ignores the stop signal.
/// A tmpfs goes on a mount point the manifest names (a tmpfs's, else a disk's).
pub fn check(lab: &Lab, r: &mut Results) -> Result<(), Error> {
    let label = "restarts";
    let m = &lab.manifest;
    let tmpfs_mp = m
        .tmpfs
        .first()
        .map(|t| t.mount_point.clone())
        .or_else(|| m.disks.first().map(|d| d.mount_point.clone()));
    let service = lab.probe_service(
        json!({"PROBE_FAIL_TIMES": "2", "PROBE_EXIT_CODE": "3", "PROBE_IGNORE_STOP": "1",
               "PROBE_MOUNTS": tmpfs_mp.clone().unwrap_or_default(),
               "PROBE_SYSCTLS": "net.ipv6.conf.vec0.disable_ipv6"}),
        json!({"restart": {"policy": "on-failure", "backoff_min_ms": MIN_MS, "backoff_max_ms": MAX_MS},
               "stop_signal": "SIGTERM", "stop_timeout_ms": STOP_TIMEOUT_MS}),
    );
    let (log, remote) = syslog::receiver(&lab.ns, "tcp", 5515, "rfc3164", "daemon")?;
    let mut more =
        json!({"service": service, "files": [lab.probe_file()], "logging": {"remote": remote}});
    if let Some(mp) = &tmpfs_mp {
        more["mounts"] = json!({"tmpfs": [{"mount_point": mp, "size_mib": 4, "mode": "1777"}]});
    }
    let c = contract(&lab.contract("conf-restart", more))?;
    let running = spawn(&lab.vm().contract_device(&c))?;
    let third = running.wait_for_console("=probe= start 3", BOOT);
    let (o, took) = stop(running, BOOT)?;
    after(r, label, &o, &[]);
    let n = starts(&o.console);
    r.check(
        "C-RST-1",
        third.is_ok() && n == 3,
        format!("{label}: exit 3 twice: {n} starts"),
    );
    backoff(r, label, &o);
    let ignored = o.console.contains("=probe= signal 15 ignored");
    let ok = ignored && o.powered_off_cleanly() && took >= Duration::from_millis(STOP_TIMEOUT_MS);
    r.check("C-STOP-2", ok, format!("{label}: SIGTERM {}, powered off {:.2} s after the request (stop_timeout_ms {STOP_TIMEOUT_MS})", if ignored { "ignored" } else { "not seen" }, took.as_secs_f64()));
    let names = o.event_names();
    let missing: Vec<_> = ["exited", "restarting"]
        .iter()
        .filter(|w| !names.contains(w))
        .collect();
    r.check(
        "C-EV-4",
        missing.is_empty(),
        format!("{label}: missing {missing:?}"),
    );
    logged(r, label, &log, (false, true), "conf-restart", 3);
    // vec0 has only IPv4 here: no IPv6 on it (a kernel without IPv6 has no such file).
    let lines = probe_lines(&o.console);
    match probe_value(&lines, "sysctl", "net.ipv6.conf.vec0.disable_ipv6=") {
        Some(v) => r.check(
            "C-NET-6",
            v == "1" || v.contains("No such file"),
            format!("{label}: an interface with only IPv4: disable_ipv6={v}"),
        ),
        None => r.skip("C-NET-6", format!("{label}: the probe reported no sysctl")),
    }
    match &tmpfs_mp {
        Some(mp) => {
            let seen = probe_value(&probe_lines(&o.console), "mount", &format!("{mp} "));
            let ok = seen
                .as_deref()
                .is_some_and(|s| s.starts_with("tmpfs ") && s.contains("size=4096k"));
            r.check(
                "C-TMPFS-1",
                ok,
                format!(
                    "{label}: {mp}: {}",
                    seen.unwrap_or_else(|| "not reported by the probe".into())
                ),
            );
        }
        None => r.skip(
            "C-TMPFS-1",
            "the manifest declares no disk or tmpfs (no mount point to use)",
        ),
    }
    Ok(())
}

/// C-RST-2 from the guest's own clock: each restart no sooner than its delay after the exit.
fn backoff(r: &mut Results, label: &str, o: &::lab::VmOutcome) {
    let ev = o.events();
    let exits: Vec<u64> = ev
        .iter()
        .filter(|e| e.name == "exited")
        .map(|e| e.boot_us)
        .collect();
    let starts: Vec<u64> = ev
        .iter()
        .filter(|e| e.name == "service_started")
        .map(|e| e.boot_us)
        .collect();
    if exits.len() < 2 || starts.len() < 3 {
        r.check(
            "C-RST-2",
            false,
            format!(
                "{label}: {} exited and {} service_started events, wanted 2 and 3",
                exits.len(),
                starts.len()
            ),
        );
        return;
    }
    let waited: Vec<u64> = (0..2)
        .map(|i| starts[i + 1].saturating_sub(exits[i]) / 1000)
        .collect();
    let want = [MIN_MS, (2 * MIN_MS).min(MAX_MS)];
    let ok = waited.iter().zip(want).all(|(w, d)| w + 1 >= d);
    r.check(
        "C-RST-2",
        ok,
        format!("{label}: restarts {waited:?} ms after the exits, at least {want:?} wanted"),
    );
}

/// The `always` policy with notify readiness, then the `never` policy.
pub fn check_policies(lab: &Lab, r: &mut Results) -> Result<(), Error> {
    always(lab, r)?;
    never(lab, r)
}

fn always(lab: &Lab, r: &mut Results) -> Result<(), Error> {
    let label = "always, notify";
    let service = lab.probe_service(
        json!({"PROBE_FAIL_TIMES": "1", "PROBE_EXIT_CODE": "0", "PROBE_PORT": PROBE_PORT.to_string(),
               "PROBE_LISTEN_DELAY_MS": "1000", "PROBE_NOTIFY_FD": "3"}),
        json!({"restart": {"policy": "always", "backoff_min_ms": 100, "backoff_max_ms": 200},
               "readiness": {"type": "notify", "fd": 3}}),
    );
    let (log, remote) = syslog::receiver(&lab.ns, "tcp", 5517, "rfc5424", "local0")?;
    let c = contract(&lab.contract(
        "conf-always",
        json!({"service": service, "files": [lab.probe_file()], "logging": {"remote": remote}}),
    ))?;
    let running = spawn(&lab.vm().contract_device(&c))?;
    ready_listening(
        lab,
        r,
        &running,
        "C-RDY-2",
        label,
        " (the probe notifies once it listens, 1 s after its start)",
    );
    let (o, _) = stop(running, BOOT)?;
    after(r, label, &o, &[]);
    let n = starts(&o.console);
    r.check(
        "C-RST-3",
        n >= 2,
        format!("{label}: exit 0, then {n} starts"),
    );
    logged(r, label, &log, (true, true), "conf-always", 16);
    Ok(())
}

fn never(lab: &Lab, r: &mut Results) -> Result<(), Error> {
    let label = "never";
    let service = lab.probe_service(
        json!({"PROBE_EXIT_AT_ONCE": "1"}),
        json!({"restart": {"policy": "never"}}),
    );
    let (log, remote) = syslog::receiver(&lab.ns, "udp", 5518, "rfc3164", "local7")?;
    let c = contract(&lab.contract(
        "conf-never",
        json!({"service": service, "files": [lab.probe_file()], "logging": {"remote": remote}}),
    ))?;
    let running = spawn(&lab.vm().contract_device(&c))?;
    let o = running.wait(BOOT)?;
    after(r, label, &o, &[]);
    let reason = power_off_reason(&o);
    let n = starts(&o.console);
    let ok = o.powered_off_cleanly() && n == 1;
    r.check(
        "C-RST-4",
        ok,
        format!("{label}: {n} start(s), the VM powered off by itself ({reason:?})"),
    );
    logged(r, label, &log, (false, false), "conf-never", 23);
    Ok(())
}

/// The service's lines at a receiver: RFC 5424 or 3164, with the contract's facility and
/// hostname and the service's name.
fn logged(
    r: &mut Results,
    label: &str,
    log: &Received,
    (rfc5424, tcp): (bool, bool),
    host: &str,
    facility: u32,
) {
    let msgs = log.messages();
    let (fmt, transport) = (
        if rfc5424 { "C-LOG-2" } else { "C-LOG-3" },
        if tcp { "C-LOG-5" } else { "C-LOG-4" },
    );
    let ours: Vec<&String> = msgs
        .iter()
        .filter(|m| m.contains("=probe= start"))
        .collect();
    let Some(m) = ours.first() else {
        let ev = format!(
            "{label}: none of the service's lines arrived ({} messages{})",
            msgs.len(),
            msgs.first()
                .map(|m| format!(", e.g. {}", one_line(m, 120)))
                .unwrap_or_default()
        );
        r.check(fmt, false, &ev);
        r.check(transport, false, ev);
        return;
    };
    let parsed = if rfc5424 {
        syslog::parse_5424(m)
    } else {
        syslog::parse_3164(m)
    };
    r.check(
        fmt,
        parsed.is_some(),
        format!("{label}: {}", one_line(m, 200)),
    );
    let framing = !msgs.iter().any(|m| m.starts_with("ERROR:"));
    r.check(
        transport,
        framing,
        format!(
            "{label}: {} messages{}",
            msgs.len(),
            if framing { "" } else { ", bad framing" }
        ),
    );
    let ok = parsed
        .as_ref()
        .is_some_and(|p| p.facility == facility && p.hostname == host && p.app == "probe");
    r.check(
        "C-LOG-6",
        ok,
        format!("{label}: {parsed:?}, wanted facility {facility}, host {host}, app probe"),
    );
}
