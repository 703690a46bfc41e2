//! The host contract: everything that makes one appliance VM different from another, as
//! versioned types, their validation and their wire encodings.
//!
//! This crate does no I/O and makes no OS calls, so the host (`host-launch`), the guest
//! (`guest-init`) and third-party image builders can all use it.
//!
//! Data flows one way: JSON text → [`parse_json`] (one reading of the text by [`json`]: no
//! duplicate keys, no BOM; then shape, unknown fields, version) → [`validate`] (meaning) → a
//! [`Contract`] that the encodings carry to the guest. [`budget::check`] says whether it fits
//! a VM of a given memory; [`checked::check`] gives the guest its values typed (addresses,
//! signals, capabilities, modes), parsed once.

#![deny(missing_debug_implementations)]
#![deny(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_lossless,
    clippy::exit,
    clippy::tests_outside_test_module
)]

pub mod addr;
pub mod blockdev;
pub mod budget;
pub mod checked;
pub mod cmdline;
pub mod ipconfig;
pub mod json;
pub mod liveness;
pub mod names;
pub mod schema;
pub mod status;
pub mod types;
pub mod uml;
pub mod validate;

pub use liveness::{Liveness, LivenessCheck};
pub use types::*;
pub use validate::{validate, Problem, Problems};

use base64::Engine;
use json::printable;
use std::fmt;

/// Why a contract could not be accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContractError {
    /// Not JSON at all, or not an object.
    Syntax(String),
    /// The `version` field is missing or names a version this crate does not speak.
    Version(String),
    /// Valid JSON of the wrong shape (unknown field, wrong type, missing field), at a JSON path.
    Shape { path: String, message: String },
    /// Well-formed but wrong in meaning; every problem is listed.
    Invalid(Problems),
}

impl fmt::Display for ContractError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContractError::Syntax(m) => write!(f, "contract is not valid JSON: {}", printable(m)),
            ContractError::Version(m) => write!(f, "version: {}", printable(m)),
            ContractError::Shape { path, message } => {
                write!(f, "{}: {}", printable(path), printable(message))
            }
            ContractError::Invalid(p) => write!(f, "{p}"),
        }
    }
}

impl std::error::Error for ContractError {}

/// `WHERE was rejected: PROBLEM`, or with several problems one per indented line; shared by
/// the encodings' decode errors.
pub(crate) fn write_rejected(
    f: &mut fmt::Formatter<'_>,
    whence: &str,
    e: &ContractError,
) -> fmt::Result {
    write!(f, "{whence} was rejected: ")?;
    let lines = e.lines();
    if lines.len() == 1 {
        return write!(f, "{e}");
    }
    for line in lines {
        write!(f, "\n  {line}")?;
    }
    Ok(())
}

impl ContractError {
    /// Each problem as its own `path: message` line, for consoles and status events.
    pub fn lines(&self) -> Vec<String> {
        match self {
            ContractError::Invalid(p) => p.0.iter().map(|p| p.to_string()).collect(),
            other => vec![other.to_string()],
        }
    }
}

/// Parses and validates a contract from JSON text.
pub fn parse_json(text: &[u8]) -> Result<Contract, ContractError> {
    let value = json::parse_value(text).map_err(|e| match e.path() {
        Some(path) => ContractError::Shape {
            path: path.to_string(),
            message: e.detail(),
        },
        // Syntax errors say "not valid JSON" themselves; the BOM message says what it is.
        None => ContractError::Syntax(match e {
            json::JsonError::Syntax(m) => m,
            other => other.detail(),
        }),
    })?;
    check_version(&value)?;
    let contract: Contract = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        ContractError::Shape {
            path: if path == "." {
                "(top level)".into()
            } else {
                path
            },
            message: e.into_inner().to_string(),
        }
    })?;
    validate(&contract).map_err(ContractError::Invalid)?;
    Ok(contract)
}

/// Checks the version before the shape, so that a newer contract is reported as a version
/// mismatch rather than as a list of unknown fields.
fn check_version(value: &serde_json::Value) -> Result<(), ContractError> {
    let obj = value
        .as_object()
        .ok_or_else(|| ContractError::Syntax("the top level must be a JSON object".into()))?;
    match obj.get("version") {
        None => Err(ContractError::Version(format!(
            "missing; add \"version\": {VERSION}"
        ))),
        Some(v)
            if v.as_u64()
                .is_some_and(|n| u32::try_from(n).is_ok_and(speaks)) =>
        {
            Ok(())
        }
        Some(v) => Err(ContractError::Version(format!(
            "{v} is not supported; this software speaks contract versions {OLDEST_VERSION} to \
             {VERSION}"
        ))),
    }
}

/// The contract as compact JSON (the form both encodings carry).
pub fn to_json(c: &Contract) -> String {
    // Serialising plain data structs with string keys cannot fail.
    serde_json::to_string(c).unwrap_or_default()
}

/// The bytes a [`File`] entry stands for, decoding base64 content.
pub fn file_content(f: &File) -> Result<Vec<u8>, base64::DecodeError> {
    match f.encoding {
        FileEncoding::Utf8 => Ok(f.content.clone().into_bytes()),
        FileEncoding::Base64 => {
            base64::engine::general_purpose::STANDARD.decode(f.content.as_bytes())
        }
    }
}
