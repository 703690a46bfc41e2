//! Semantic validation of a contract: every problem at once, each with its JSON path and a
//! sentence that says what to change.

mod liveness;
mod network;
mod quiesce;
mod service;
mod size;
mod storage;

pub use liveness::{
    problems as liveness_problems, MAX_FAILURE_THRESHOLD, MAX_INTERVAL_MS, MAX_TIMEOUT_MS,
    MIN_INTERVAL_MS,
};
pub use network::check_host_address;
pub use quiesce::MAX_QUIESCE_TIMEOUT_MS;
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
    } else if c.service.quiesce.is_some() && c.version < QUIESCE_SINCE {
        ck.push(
            "service.quiesce",
            format!(
                "needs contract version {QUIESCE_SINCE}, and this contract is version {} (the \
                 image's): drop it, or use an image whose manifest declares contract_version \
                 {QUIESCE_SINCE}",
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

/// Why a name is not an RFC 1123 host or domain name ([`check_hostname`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("'{0}' must be 1 to 64 characters long (it has {len})", len = .0.len())]
    HostLength(String),
    #[error("'{name}' is not a domain name (1 to 253 characters)")]
    DomainLength { name: String },
    #[error(
        "'{name}' has a label of {len} characters; each dot-separated label must have 1 to 63"
    )]
    LabelLength { name: String, len: usize },
    #[error("'{name}' contains {ch:?}; use only letters, digits and '-' (RFC 1123)")]
    Char { name: String, ch: char },
    #[error("'{name}': a label may not start or end with '-' (RFC 1123)")]
    Hyphen { name: String },
}

/// RFC 1123 host name: dot-separated labels of letters, digits and '-', at most 64 characters
/// in all (the kernel's limit for a node name).
pub fn check_hostname(name: &str) -> Result<(), NameError> {
    if name.is_empty() || name.len() > 64 {
        return Err(NameError::HostLength(name.into()));
    }
    for label in name.split('.') {
        check_label(name, label)?;
    }
    Ok(())
}

fn check_label(name: &str, label: &str) -> Result<(), NameError> {
    if label.is_empty() || label.len() > 63 {
        return Err(NameError::LabelLength {
            name: name.into(),
            len: label.len(),
        });
    }
    if let Some(ch) = label
        .chars()
        .find(|ch| !ch.is_ascii_alphanumeric() && *ch != '-')
    {
        return Err(NameError::Char {
            name: name.into(),
            ch,
        });
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(NameError::Hyphen { name: name.into() });
    }
    Ok(())
}

fn check_domain(name: &str) -> Result<(), NameError> {
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    if trimmed.is_empty() || trimmed.len() > 253 {
        return Err(NameError::DomainLength { name: name.into() });
    }
    trimmed.split('.').try_for_each(|l| check_label(name, l))
}

/// Why a string is not an absolute, normalised path the kernel accepts ([`check_abs_path`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("'{0}' must be an absolute path starting with '/'")]
    NotAbsolute(String),
    #[error("'{0}' contains a NUL character")]
    Nul(String),
    #[error("'{0}' must be normalised: no '//', '.', '..' or trailing '/'")]
    NotNormalised(String),
    #[error("is {0} bytes long; a path must be shorter than 4096 bytes")]
    TooLong(usize),
    #[error("'{path}' has a component of {len} bytes; each may have at most 255")]
    LongComponent { path: String, len: usize },
}

/// An absolute, normalised path: starts with '/', no empty, '.' or '..' components, no NUL.
pub fn check_abs_path(p: &str) -> Result<(), PathError> {
    if !p.starts_with('/') {
        return Err(PathError::NotAbsolute(p.into()));
    }
    if p.contains('\0') {
        return Err(PathError::Nul(p.into()));
    }
    if p.len() > 1
        && p[1..]
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(PathError::NotNormalised(p.into()));
    }
    // The kernel's limits (PATH_MAX, NAME_MAX), which would otherwise fail only at boot.
    if p.len() >= 4096 {
        return Err(PathError::TooLong(p.len()));
    }
    if let Some(c) = p.split('/').find(|c| c.len() > 255) {
        return Err(PathError::LongComponent {
            path: p.into(),
            len: c.len(),
        });
    }
    Ok(())
}

/// Why a string is not octal permission bits ([`parse_mode`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModeError {
    #[error("'{0}' is not an octal mode; use 3 or 4 octal digits, e.g. '0644'")]
    NotOctal(String),
    #[error(transparent)]
    Parse(#[from] std::num::ParseIntError),
}

/// Octal permission bits such as `"0644"` or `"1777"`.
pub fn parse_mode(mode: &str) -> Result<u32, ModeError> {
    let ok = !mode.is_empty() && mode.len() <= 4 && mode.chars().all(|c| ('0'..='7').contains(&c));
    if !ok {
        return Err(ModeError::NotOctal(mode.into()));
    }
    Ok(u32::from_str_radix(mode, 8)?)
}

/// Why a sysctl entry cannot be written at boot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum SysctlError {
    #[error("'{0}' is not a sysctl name; use the dotted form, e.g. 'net.ipv4.ip_forward'")]
    Key(String),
    #[error("the value must be non-empty and on one line")]
    Value,
}

fn check_sysctl(key: &str, value: &str) -> Result<(), SysctlError> {
    let key_ok = !key.is_empty()
        && key.split(['.', '/']).all(|c| !c.is_empty() && c != "..")
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c));
    if !key_ok {
        return Err(SysctlError::Key(key.into()));
    }
    if value.is_empty() || value.contains(['\n', '\0']) {
        return Err(SysctlError::Value);
    }
    Ok(())
}
