//! Why the kit or a class suite could not run (exit 2): a problem of the host, of the kit's
//! inputs or of the kit itself, never a verdict on the image (that is a failing row).

use std::path::PathBuf;

/// The kit or a suite could not run; rendered after `conformance: `.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file the kit reads or writes.
    #[error("{}: {source}", path.display())]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An I/O operation the message names (e.g. `symlink`).
    #[error("{what}: {source}")]
    Op {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// An I/O error with no file to name (a socket, a file's length).
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The harness: a temporary directory, the namespace, a VM.
    #[error("{0}")]
    Harness(#[from] ::lab::Error),
    /// The network namespace could not be made: the kit and the suites need root.
    #[error("{source} (the {who} needs root)")]
    NeedsRoot {
        #[source]
        source: ::lab::Error,
        who: &'static str,
    },
    /// The kit could not encode a contract part (the kit's own mistake).
    #[error("{0}")]
    Encode(#[from] serde_json::Error),
    /// A host tool could not run or failed.
    #[error(transparent)]
    Tool(#[from] ToolError),
    /// A host prerequisite is missing (a tool, the probe, a client); says what to install.
    #[error("{0}")]
    Missing(String),
    /// An input file (manifest, spec) the kit cannot use.
    #[error("{}: {message}", path.display())]
    Input { path: PathBuf, message: String },
    /// The image is not one a class suite can check (no class, a class version it lacks).
    #[error("{0}")]
    Unsuited(String),
    /// A contract or spec the kit made is refused: the kit's own mistake.
    #[error("{0}")]
    Kit(String),
    /// The image never reported ready to a suite.
    #[error("the image never reported ready: {0}")]
    NotReady(#[source] ::lab::Error),
    /// A step of the battery, and why it could not run.
    #[error("{what}: {source}")]
    Step {
        what: &'static str,
        #[source]
        source: Box<Error>,
    },
}

impl Error {
    /// An I/O error on `path`.
    pub fn file(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::File { path, source }
    }
}

/// A host tool ([`crate::lab::tool`]) that could not start or failed; the command as Debug
/// shows it, then the error or everything it printed.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("{cmd}: {source}")]
    Start {
        cmd: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{cmd}: {output}")]
    Failed { cmd: String, output: String },
}
