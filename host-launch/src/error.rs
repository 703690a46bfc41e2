//! The launcher's error: a kind (which decides the exit status) and a message that names the
//! field or file at fault and says what to change.

use std::fmt;

/// What went wrong, broadly; each kind has its own exit status (see [`crate::exit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The spec, the manifest or their combination is wrong; nothing was started or created.
    Invalid,
    /// The appliance (or its TAP device) is already in use by a running launcher.
    Busy,
    /// A host step failed: disks, TAP device, state directory, starting UML.
    Host,
    /// Asked about an appliance that is not known (no state directory).
    NotFound,
    /// The command line is wrong (a value clap cannot check, e.g. `--since`).
    Usage,
}

/// A launcher error with its message (possibly several lines, one problem per line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub kind: Kind,
    pub message: String,
}

/// Result with the launcher's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn invalid(message: impl Into<String>) -> Error {
        Error {
            kind: Kind::Invalid,
            message: message.into(),
        }
    }

    pub fn busy(message: impl Into<String>) -> Error {
        Error {
            kind: Kind::Busy,
            message: message.into(),
        }
    }

    pub fn host(message: impl Into<String>) -> Error {
        Error {
            kind: Kind::Host,
            message: message.into(),
        }
    }

    pub fn usage(message: impl Into<String>) -> Error {
        Error {
            kind: Kind::Usage,
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Error {
        Error {
            kind: Kind::NotFound,
            message: message.into(),
        }
    }

    /// Prefixes the message with what was being done.
    pub fn context(mut self, what: impl fmt::Display) -> Error {
        self.message = format!("{what}: {}", self.message);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// Turns an I/O error into a host error that says what was being done.
pub trait IoContext<T> {
    fn io_context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn io_context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::host(format!("{}: {e}", what())))
    }
}
