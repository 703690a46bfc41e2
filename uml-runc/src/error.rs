//! The runtime's one error type: a message that says what failed and how to fix it.

/// An error with what went wrong and, where there is one, what to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl Error {
    pub fn new(msg: impl Into<String>) -> Error {
        Error(msg.into())
    }

    /// The same error with `what` in front.
    pub fn context(self, what: impl std::fmt::Display) -> Error {
        Error(format!("{what}: {}", self.0))
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl From<String> for Error {
    fn from(s: String) -> Error {
        Error(s)
    }
}

/// An I/O error with what was being done.
pub fn io(what: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> Error {
    move |e| Error(format!("{what}: {e}"))
}

pub type Result<T> = std::result::Result<T, Error>;
