//! host-launch's command line (clap): the binary parses it, and the package's man pages and
//! shell completions are generated from it (`package-files/`).

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "host-launch",
    version,
    about = "Run one-service appliances as User-Mode Linux VMs",
    args_conflicts_with_subcommands = true,
    after_help = "`host-launch SPEC` is `host-launch run SPEC`.\n\nExit status: 0 clean stop or \
                  service exit 0; 1-119 the service's exit code; 120 invalid spec/manifest; \
                  121 already running / in use; 122 host setup failed; 123 guest fatal error; \
                  124 kernel crash; 125 killed after the stop timeout; 126 no such appliance; \
                  127 upgrade failed and was rolled back; 128+N service killed by signal N."
)]
pub struct Cli {
    /// The spec to run in the foreground (same as `run SPEC`).
    pub spec: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Cmd>,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Run an appliance in the foreground until it powers off; Ctrl-C stops it cleanly.
    Run {
        spec: PathBuf,
        /// Show the kernel's boot messages in the console log.
        #[arg(long)]
        kernel_log: bool,
        /// Do not print status events.
        #[arg(long, short)]
        quiet: bool,
        /// Boot this root image (manifest beside it) instead of the spec's; used by `upgrade`.
        #[arg(long, value_name = "IMAGE", hide = true)]
        image: Option<PathBuf>,
    },
    /// Validate a spec against its image; print the contract and the UML command line.
    Check {
        spec: PathBuf,
        /// Print only the merged contract (JSON).
        #[arg(long)]
        contract: bool,
    },
    /// Start an appliance in the background.
    Start {
        spec: PathBuf,
        /// Wait until the service is ready, at most this many seconds.
        #[arg(long, value_name = "SECONDS")]
        wait_ready: Option<u64>,
    },
    /// Replace the appliance's root image, keeping its data disks: stop it, boot the new image,
    /// wait until it is ready; if it is not, boot the old image again (exit status 127).
    Upgrade {
        spec: PathBuf,
        /// The new root image; its manifest is `IMAGE.manifest.json` beside it.
        #[arg(long, value_name = "IMAGE")]
        image: PathBuf,
        /// How long the new image may take to become ready.
        #[arg(long, value_name = "SECONDS", default_value_t = 60)]
        timeout: u64,
        /// How long the graceful stop of the running appliance may take.
        #[arg(long, value_name = "SECONDS", default_value_t = 120)]
        stop_timeout: u64,
    },
    /// Show, per running appliance, the packages of its image with a newer version in the
    /// archive (asked through the image builder), security updates marked. Exit status 3 when
    /// some are behind, 4 when the archive cannot be reached.
    Outdated {
        #[arg(long)]
        json: bool,
    },
    /// Roll a new image out across the running appliances of an old one, one at a time: each
    /// is upgraded, must stay healthy for the settle time, and is rolled back if not; the first
    /// failure stops the rollout (exit status 127; 122 when a rollback failed).
    Update {
        /// The new root image; its manifest is `IMAGE.manifest.json` beside it.
        #[arg(long, value_name = "IMAGE")]
        image: PathBuf,
        /// Move every running appliance whose image digest starts with this (`sha256:...`,
        /// at least 12 hex digits), or that runs this image file (its digest: a copy counts);
        /// `host-launch update --image NEW NAME...` names them instead.
        #[arg(
            long,
            value_name = "DIGEST|OLD_IMAGE",
            required_unless_present_any = ["names", "plan"],
            conflicts_with = "names"
        )]
        from: Option<String>,
        /// The appliances to move, in this order (the first is the canary).
        names: Vec<String>,
        /// How long each upgraded appliance must stay ready, with no restart or failed
        /// liveness check, before the next one moves.
        #[arg(long, value_name = "SECONDS", default_value_t = 10)]
        settle: u64,
        /// How long each new image may take to become ready.
        #[arg(long, value_name = "SECONDS", default_value_t = 60)]
        timeout: u64,
        /// How long each graceful stop may take.
        #[arg(long, value_name = "SECONDS", default_value_t = 120)]
        stop_timeout: u64,
        /// Change nothing: show the running appliances with their image digests and which of
        /// them the update would move.
        #[arg(long)]
        plan: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Stop a running appliance gracefully.
    Stop {
        name: String,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
    /// Show an appliance's state (all when no name is given).
    Status {
        name: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// List the appliances this host knows, in natural order of names.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Forget an appliance that is not running (its state directory: logs, last outcome);
    /// data disks are never touched.
    Forget {
        #[arg(required_unless_present = "all_exited", conflicts_with = "all_exited")]
        name: Option<String>,
        /// Forget every appliance that is not running.
        #[arg(long)]
        all_exited: bool,
    },
    /// Print the status events of an appliance's last run.
    Logs {
        name: String,
        /// Raw JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Print the guest console of an appliance's last run.
    Console { name: String },
    /// Install the systemd template unit host-launch@.service and its generator (specs in
    /// /etc/host-launch/NAME.json become host-launch@NAME.service, started at boot).
    InstallSystemd {
        /// Install under this root instead of / (no reload then).
        #[arg(long, default_value = "/")]
        root: PathBuf,
    },
    /// The systemd generator (systemd.generator(7)); run by systemd, not by people.
    #[command(hide = true)]
    SystemdGenerator {
        /// Where the specs are (default /etc/host-launch).
        #[arg(long)]
        spec_dir: Option<PathBuf>,
        /// The template unit the .wants links point to.
        #[arg(long)]
        template: PathBuf,
        /// systemd's normal, early and late generator directories.
        #[arg(required = true, num_args = 1..=3)]
        dirs: Vec<PathBuf>,
    },
    /// Print the JSON Schema of the spec or of the image manifest.
    Schema {
        #[arg(value_parser = ["spec", "manifest"])]
        which: String,
    },
}
