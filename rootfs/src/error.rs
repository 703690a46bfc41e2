//! The error of building a root image: every problem found, one line each.

use std::fmt;

/// A build that could not be done: every problem, one line each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub Vec<String>);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("\n"))
    }
}

impl std::error::Error for Error {}

impl Error {
    /// An error of one line.
    pub fn one(line: impl Into<String>) -> Error {
        Error(vec![line.into()])
    }
}
