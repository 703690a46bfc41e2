//! Semantic validation of a contract: every problem at once, each with its JSON path and a
//! sentence that says what to change.

mod liveness;
mod network;
mod service;
mod size;
mod storage;

pub use liveness::{
    problems as liveness_problems, MAX_FAILURE_THRESHOLD, MAX_INTERVAL_MS, MAX_TIMEOUT_MS,
    MIN_INTERVAL_MS,
};
pub use network::check_host_address;
pub use service::NGROUPS_MAX;

use crate::types::*;
use network::check_network;
use service::{check_logging, check_service};
use size::check_size;
use std::fmt;
use storage::{check_files, check_mounts};

/// Directory under /run that guest-init keeps for itself (the contract and `extra`).
pub const RESERVED_RUN_DIR: &str = "/run/contract";

/// One thing wrong with a contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// JSON path, e.g. `network.interfaces[0].addresses[1]`.
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Paths and messages quote the contract's strings: print control characters escaped.
        write!(
            f,
            "{}: {}",
            crate::json::printable(&self.path),
            crate::json::printable(&self.message)
        )
    }
}

/// Every problem found in a contract; never empty when returned as an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

/// Collects problems while walking the contract.
#[derive(Default)]
struct Checker {
    problems: Vec<Problem>,
}

impl Checker {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }

    fn check<E: std::fmt::Display>(&mut self, path: &str, result: Result<(), E>) {
        if let Err(m) = result {
            self.push(path, m.to_string());
        }
    }
}

/// Checks everything the types cannot express.
pub fn validate(c: &Contract) -> Result<(), Problems> {
    let mut ck = Checker::default();
    if !speaks(c.version) {
        ck.push(
            "version",
            format!(
                "contract version {} is not supported; this software speaks versions \
                 {OLDEST_VERSION} to {VERSION}",
                c.version
            ),
        );
    } else if let Some(field) = c.version_3_field().filter(|_| c.version < OOM_SCORE_SINCE) {
        ck.push(
            field,
            format!(
                "needs contract version {OOM_SCORE_SINCE}, and this contract is version {} (the \
                 image's): drop it, or use an image whose manifest declares contract_version \
                 {OOM_SCORE_SINCE}",
                c.version
            ),
        );
    } else if c.version < c.least_version() {
        // Otherwise only rlimits need a newer version than 1.
        ck.push(
            "service.rlimits",
            format!(
                "resource limits need contract version {}, and this contract is version {} \
                 (the image's): drop them, or use an image whose manifest declares \
                 contract_version {}",
                c.least_version(),
                c.version,
                c.least_version()
            ),
        );
    }
    ck.check("hostname", check_hostname(&c.hostname));
    if let Some(net) = &c.network {
        check_network(&mut ck, net);
    }
    check_logging(&mut ck, &c.logging);
    check_service(&mut ck, &c.service);
    check_mounts(&mut ck, &c.mounts);
    check_files(&mut ck, &c.files);
    for (key, value) in &c.sysctl {
        let path = format!("sysctl.{key}");
        ck.check(&path, check_sysctl(key, value));
    }
    check_size(&mut ck, c);
    if ck.problems.is_empty() {
        Ok(())
    } else {
        Err(Problems(ck.problems))
    }
}

/// RFC 1123 host name: dot-separated labels of letters, digits and '-', at most 64 characters
/// in all (the kernel's limit for a node name).
pub fn check_hostname(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err(format!(
            "'{name}' must be 1 to 64 characters long (it has {})",
            name.len()
        ));
    }
    for label in name.split('.') {
        check_label(name, label)?;
    }
    Ok(())
}

fn check_label(name: &str, label: &str) -> Result<(), String> {
    if label.is_empty() || label.len() > 63 {
        return Err(format!(
            "'{name}' has a label of {} characters; each dot-separated label must have 1 to 63",
            label.len()
        ));
    }
    if let Some(ch) = label
        .chars()
        .find(|ch| !ch.is_ascii_alphanumeric() && *ch != '-')
    {
        return Err(format!(
            "'{name}' contains {ch:?}; use only letters, digits and '-' (RFC 1123)"
        ));
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(format!(
            "'{name}': a label may not start or end with '-' (RFC 1123)"
        ));
    }
    Ok(())
}

fn check_domain(name: &str) -> Result<(), String> {
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    if trimmed.is_empty() || trimmed.len() > 253 {
        return Err(format!(
            "'{name}' is not a domain name (1 to 253 characters)"
        ));
    }
    trimmed.split('.').try_for_each(|l| check_label(name, l))
}

/// An absolute, normalised path: starts with '/', no empty, '.' or '..' components, no NUL.
pub fn check_abs_path(p: &str) -> Result<(), String> {
    if !p.starts_with('/') {
        return Err(format!("'{p}' must be an absolute path starting with '/'"));
    }
    if p.contains('\0') {
        return Err(format!("'{p}' contains a NUL character"));
    }
    if p.len() > 1
        && p[1..]
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(format!(
            "'{p}' must be normalised: no '//', '.', '..' or trailing '/'"
        ));
    }
    // The kernel's limits (PATH_MAX, NAME_MAX), which would otherwise fail only at boot.
    if p.len() >= 4096 {
        return Err(format!(
            "is {} bytes long; a path must be shorter than 4096 bytes",
            p.len()
        ));
    }
    if let Some(c) = p.split('/').find(|c| c.len() > 255) {
        return Err(format!(
            "'{p}' has a component of {} bytes; each may have at most 255",
            c.len()
        ));
    }
    Ok(())
}

/// Octal permission bits such as `"0644"` or `"1777"`.
pub fn parse_mode(mode: &str) -> Result<u32, String> {
    let ok = !mode.is_empty() && mode.len() <= 4 && mode.chars().all(|c| ('0'..='7').contains(&c));
    if !ok {
        return Err(format!(
            "'{mode}' is not an octal mode; use 3 or 4 octal digits, e.g. '0644'"
        ));
    }
    u32::from_str_radix(mode, 8).map_err(|e| e.to_string())
}

fn check_sysctl(key: &str, value: &str) -> Result<(), String> {
    let key_ok = !key.is_empty()
        && key.split(['.', '/']).all(|c| !c.is_empty() && c != "..")
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c));
    if !key_ok {
        return Err(format!(
            "'{key}' is not a sysctl name; use the dotted form, e.g. 'net.ipv4.ip_forward'"
        ));
    }
    if value.is_empty() || value.contains(['\n', '\0']) {
        return Err("the value must be non-empty and on one line".into());
    }
    Ok(())
}
