//! The harness error: what was being done, and why it failed (with a command's stderr).

use std::fmt;

/// A harness failure with its context.
#[derive(Debug)]
pub struct Error {
    /// What the harness was doing, e.g. "mkfs.ext4 -q -F ... root.img 8192k".
    pub context: String,
    /// Why it failed.
    pub detail: String,
}

/// Result with the harness [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(context: impl Into<String>, detail: impl fmt::Display) -> Error {
        Error {
            context: context.into(),
            detail: detail.to_string(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.context, self.detail)
    }
}

impl std::error::Error for Error {}

/// Adds context to any displayable error.
pub trait Context<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: fmt::Display> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::new(what(), e))
    }
}

/// Runs a command to completion; an error names the command and carries its stderr.
pub fn run_command(cmd: &mut std::process::Command) -> Result<std::process::Output> {
    let shown = format!("{cmd:?}");
    let out = cmd.output().map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::NotFound {
            format!("; {}", crate::SETUP_HINT)
        } else {
            String::new()
        };
        Error::new(format!("running {shown}"), format!("{e}{hint}"))
    })?;
    if !out.status.success() {
        return Err(Error::new(
            format!("running {shown}"),
            format!(
                "{}\n--- stderr ---\n{}--- stdout ---\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&out.stdout)
            ),
        ));
    }
    Ok(out)
}
