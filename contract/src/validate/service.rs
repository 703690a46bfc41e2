//! The logging and service sections: the syslog target, argv, environment, accounts,
//! capabilities, stop signal, restart and readiness.

use super::{check_abs_path, Checker};
use crate::addr::parse_ip;
use crate::names::{capability_number, facility_number, signal_number, RLIMITS};
use crate::types::*;
use std::collections::BTreeSet;

/// Most supplementary groups a Linux process can hold (`NGROUPS_MAX`, setgroups(2)).
pub const NGROUPS_MAX: usize = 65536;

pub(super) fn check_logging(ck: &mut Checker, l: &Logging) {
    let Some(r) = &l.remote else { return };
    ck.check(
        "logging.remote.host",
        parse_ip(&r.host)
            .map(|_| ())
            .map_err(|m| format!("{m}; the syslog host must be an IP address")),
    );
    if r.port == 0 {
        ck.push(
            "logging.remote.port",
            "port 0 is not a valid destination; syslog normally uses 514",
        );
    }
    if facility_number(&r.facility).is_none() {
        ck.push(
            "logging.remote.facility",
            format!(
                "'{}' is not a syslog facility; use e.g. 'daemon', 'user' or 'local0' to 'local7'",
                r.facility
            ),
        );
    }
}

pub(super) fn check_service(ck: &mut Checker, s: &Service) {
    check_program(ck, s);
    check_capabilities(ck, s);
    check_restart_and_stop(ck, s);
    check_readiness(ck, &s.readiness);
    check_rlimits(ck, s);
    if let Some(adj) = s.oom_score_adj.filter(|a| !(-1000..=1000).contains(a)) {
        ck.push(
            "service.oom_score_adj",
            format!("{adj} is outside -1000 to 1000 (the kernel's range)"),
        );
    }
    if let Some(l) = &s.liveness {
        for (path, message) in super::liveness::problems(l, "service.liveness") {
            ck.push(path, message);
        }
    }
    if let Some(q) = &s.quiesce {
        for (path, message) in super::quiesce::problems(q, "service.quiesce") {
            ck.push(path, message);
        }
    }
}

/// The program: its name in the log, argv, environment and working directory.
fn check_program(ck: &mut Checker, s: &Service) {
    if let Some(name) = &s.name {
        let ok = !name.is_empty() && name.len() <= 48 && name.chars().all(|c| c.is_ascii_graphic());
        if !ok {
            ck.push("service.name", format!("'{name}' must be 1 to 48 printable ASCII characters without spaces (syslog APP-NAME)"));
        }
    }
    match s.argv.first() {
        None => ck.push(
            "service.argv",
            "is empty; give at least the program's absolute path",
        ),
        Some(a0) if !a0.starts_with('/') => ck.push(
            "service.argv[0]",
            format!("'{a0}' must be an absolute path in the image (no PATH lookup is done)"),
        ),
        _ => {}
    }
    for (i, a) in s.argv.iter().enumerate() {
        if a.contains('\0') {
            ck.push(
                format!("service.argv[{i}]"),
                "contains a NUL character, which a program argument cannot hold",
            );
        }
    }
    for (k, v) in &s.env {
        ck.check(&format!("service.env.{k}"), check_env(k, v));
    }
    if let Some(w) = &s.workdir {
        ck.check("service.workdir", check_abs_path(w));
    }
}

/// Each capability known and listed once.
fn check_capabilities(ck: &mut Checker, s: &Service) {
    let mut seen = BTreeSet::new();
    for (i, cap) in s.capabilities.iter().enumerate() {
        match capability_number(cap) {
            Some(n) if !seen.insert(n) => ck.push(
                format!("service.capabilities[{i}]"),
                format!("'{cap}' is listed twice"),
            ),
            Some(_) => {}
            None => ck.push(
                format!("service.capabilities[{i}]"),
                format!(
                    "'{cap}' is not a Linux capability; use a name such as 'CAP_NET_BIND_SERVICE'"
                ),
            ),
        }
    }
}

/// The restart back-off, the stop signal and timeout, and the groups a process can hold.
fn check_restart_and_stop(ck: &mut Checker, s: &Service) {
    let r = &s.restart;
    if r.backoff_min_ms == 0 {
        ck.push(
            "service.restart.backoff_min_ms",
            "must be at least 1 so that a crashing service cannot spin",
        );
    }
    if r.backoff_min_ms > r.backoff_max_ms {
        ck.push(
            "service.restart.backoff_max_ms",
            format!(
                "{} is below backoff_min_ms ({}); raise it or lower the minimum",
                r.backoff_max_ms, r.backoff_min_ms
            ),
        );
    }
    if signal_number(&s.stop_signal).is_none() {
        ck.push("service.stop_signal", format!("'{}' is not a signal a service can be stopped with; use e.g. 'SIGTERM', 'SIGINT' or 'SIGQUIT'", s.stop_signal));
    }
    if s.groups.len() > NGROUPS_MAX {
        ck.push(
            "service.groups",
            format!(
                "has {} groups, more than the kernel's NGROUPS_MAX of {NGROUPS_MAX} supplementary \
                 groups a process can hold; list at most {NGROUPS_MAX} (only those the service needs)",
                s.groups.len()
            ),
        );
    }
    if s.stop_timeout_ms == 0 {
        ck.push(
            "service.stop_timeout_ms",
            "0 would kill the service the moment it is asked to stop, before it can act on \
             stop_signal; give it at least 1 ms (the default is 10000), or set stop_signal to \
             'SIGKILL' to end it at once",
        );
    }
    if s.stop_timeout_ms > 3_600_000 {
        ck.push(
            "service.stop_timeout_ms",
            "must be at most 3600000 (one hour)",
        );
    }
}

fn check_rlimits(ck: &mut Checker, s: &Service) {
    for (name, r) in &s.rlimits {
        let path = format!("service.rlimits.{name}");
        if !RLIMITS.contains(&name.as_str()) {
            ck.push(
                path,
                format!(
                    "'{name}' is not a resource limit; use one of {}",
                    RLIMITS.join(", ")
                ),
            );
        } else if r.soft > r.hard {
            ck.push(
                format!("{path}.soft"),
                format!(
                    "{} is above the hard limit {}; lower soft or raise hard",
                    r.soft, r.hard
                ),
            );
        }
    }
}

/// Why an environment entry cannot be passed to the service.
#[derive(Debug, thiserror::Error)]
enum EnvError {
    #[error(
        "'{0}' is not a valid variable name (letters, digits and '_', not starting with a digit)"
    )]
    Name(String),
    #[error("the value contains a NUL character")]
    Nul,
}

fn check_env(key: &str, value: &str) -> Result<(), EnvError> {
    let mut chars = key.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(EnvError::Name(key.into()));
    }
    if value.contains('\0') {
        return Err(EnvError::Nul);
    }
    Ok(())
}

fn check_readiness(ck: &mut Checker, r: &Readiness) {
    match r {
        Readiness::None => {}
        Readiness::Notify { fd } => {
            if !(3..=1023).contains(fd) {
                ck.push("service.readiness.fd", format!("{fd} is not usable; use a descriptor from 3 to 1023 (0 to 2 are stdin, stdout and stderr)"));
            }
        }
        Readiness::Tcp { port, address } => {
            if *port == 0 {
                ck.push("service.readiness.port", "must be 1 to 65535");
            }
            if let Some(a) = address {
                ck.check("service.readiness.address", parse_ip(a).map(|_| ()));
            }
        }
    }
}
