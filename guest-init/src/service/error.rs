//! Why the service could not be started.

use nix::errno::Errno;
use std::fmt;

/// Why the service could not be started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpawnError {
    /// The contract asks for something that cannot be done (normally caught by validation).
    Config { field: String, message: String },
    /// A preparation step in guest-init itself failed (pipe, /dev/null, fork, ...).
    Setup { step: &'static str, errno: Errno },
    /// A step in the child, between fork and exec (or the exec itself), failed.
    Exec {
        step: &'static str,
        errno: Errno,
        /// What the step was about, e.g. "service.argv[0] '/usr/bin/nope'".
        context: String,
    },
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpawnError::Config { field, message } => write!(f, "{field}: {message}"),
            SpawnError::Setup { step, errno } => write!(
                f,
                "cannot start the service: {step} failed in guest-init: {}",
                crate::errno::text(*errno)
            ),
            SpawnError::Exec { errno, context, .. } => {
                write!(f, "{context}: {}", crate::errno::text(*errno))
            }
        }
    }
}

impl std::error::Error for SpawnError {}

impl SpawnError {
    /// The contract field at fault as a JSON path (e.g. `service.argv[0]`), when the error
    /// concerns one.
    pub fn field(&self) -> Option<String> {
        match self {
            SpawnError::Config { field, .. } => Some(field.clone()),
            SpawnError::Setup { .. } => None,
            // The context starts with the path: "service.argv[0] '/usr/bin/nope'".
            SpawnError::Exec { context, .. } => context
                .split([' ', ':'])
                .next()
                .filter(|f| f.starts_with("service."))
                .map(str::to_string),
        }
    }
}

pub(super) fn config_err(field: impl Into<String>, message: impl Into<String>) -> SpawnError {
    SpawnError::Config {
        field: field.into(),
        message: message.into(),
    }
}
