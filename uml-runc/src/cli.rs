//! uml-runc's command line (clap, runc's): the binary parses it, and the package's man pages
//! and shell completions are generated from it (`package-files/`).

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// An OCI runtime with runc's command line that runs each container as a one-service
/// User-Mode Linux appliance (for podman, and containerd's runc shim).
#[derive(Debug, Parser)]
#[command(
    name = "uml-runc",
    disable_version_flag = true,
    args_override_self = true
)]
pub struct Cli {
    /// Where containers' state directories are.
    #[arg(long, global = true, default_value = crate::state::DEFAULT_ROOT)]
    pub root: PathBuf,
    /// A file the runtime's messages are appended to.
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    /// `text` or `json`.
    #[arg(long, global = true, default_value = "text")]
    pub log_format: String,
    /// Accepted for runc's command line; the VM is not in a cgroup of the runtime's.
    #[arg(long, global = true)]
    pub systemd_cgroup: bool,
    #[arg(long, global = true)]
    pub debug: bool,
    /// Accepted for runc's command line (`true`, `false`, `auto`).
    #[arg(long, global = true)]
    pub rootless: Option<String>,
    /// Print the version.
    #[arg(short = 'v', long)]
    pub version: bool,
    #[command(subcommand)]
    pub command: Option<Cmd>,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Prepare the container's VM and leave its monitor waiting for `start`.
    Create {
        #[arg(short = 'b', long, default_value = ".")]
        bundle: PathBuf,
        #[arg(long)]
        pid_file: Option<PathBuf>,
        #[arg(long)]
        console_socket: Option<PathBuf>,
        #[arg(long)]
        no_pivot: bool,
        #[arg(long)]
        no_new_keyring: bool,
        #[arg(long)]
        preserve_fds: Option<u32>,
        id: String,
    },
    /// Boot the created container's VM.
    Start { id: String },
    /// Print the container's OCI state.
    State { id: String },
    /// SIGTERM (and SIGINT, SIGHUP, SIGQUIT): graceful stop; SIGKILL: kill the VM.
    Kill {
        #[arg(short = 'a', long)]
        all: bool,
        id: String,
        #[arg(default_value = "SIGTERM")]
        signal: String,
    },
    /// Remove the container (`--force`: also a running one).
    Delete {
        #[arg(short = 'f', long)]
        force: bool,
        id: String,
    },
    /// The container's processes on the host: the monitor and the VM's (containerd's `Pids`).
    Ps {
        /// `table` or `json` (a JSON array of pids).
        #[arg(short = 'f', long, default_value = "table")]
        format: String,
        id: String,
    },
    /// Freeze the container's VM (its cgroup's freezer).
    Pause { id: String },
    /// Thaw a paused container's VM.
    Resume { id: String },
    /// The runtime's features (JSON).
    Features,
    /// `exec`, `update`, `checkpoint`... are refused with a reason.
    #[command(external_subcommand)]
    Other(Vec<String>),
}
