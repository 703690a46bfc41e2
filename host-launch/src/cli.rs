//! host-launch's command line (clap): the binary parses it, and the package's man pages and
//! shell completions are generated from it (`package-files/`).

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// What every `--help` says about the environment and files host-launch reads (a macro so
/// that the top-level help can `concat!` it).
macro_rules! environment {
    () => {
        "Environment:
  HOST_LAUNCH_STATE_DIR  the state directories' base (default /run/host-launch)
  HOST_LAUNCH_TRUST      the image trust policy (default /etc/host-launch/trust.json)
  HOST_LAUNCH_IDS        START:COUNT, the host uids for VMs (else /etc/subuid's host-launch line)
  HOST_LAUNCH_NFT        the nft program (default nft)
  UML_KERNEL             the UML kernel to boot when the spec names none
  NOTIFY_SOCKET, WATCHDOG_USEC, INVOCATION_ID  set by systemd for host-launch@NAME

Files:
  /etc/host-launch/NAME.json   specs; the systemd generator makes host-launch@NAME of each
  /etc/host-launch/trust.json  which images may boot (signatures, digests)
  /etc/subuid                  the line host-launch:START:COUNT reserves the VMs' uids
  /run/host-launch/NAME/       state.json, events.jsonl, console.log, launcher.log

Kernel search order: the spec's `kernel`, $UML_KERNEL, /usr/local/lib/host-launch/linux,
/usr/lib/host-launch/linux, (a development build only: its checkout's build/kernel/linux),
/usr/bin/linux.uml (Debian's user-mode-linux)."
    };
}

/// The environment variables and files host-launch reads, and the kernel search order.
pub const ENVIRONMENT: &str = environment!();

/// How a command that prints state prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Words and columns, for people.
    Table,
    /// JSON (the schema in host-launch/README.md).
    Json,
}

/// What `top` sorts by (biggest first; `name` in natural order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SortKey {
    Cpu,
    Mem,
    NetIn,
    NetOut,
    Restarts,
    Uptime,
    Name,
}

impl SortKey {
    /// The key as the command line spells it.
    pub fn word(self) -> &'static str {
        match self {
            SortKey::Cpu => "cpu",
            SortKey::Mem => "mem",
            SortKey::NetIn => "net-in",
            SortKey::NetOut => "net-out",
            SortKey::Restarts => "restarts",
            SortKey::Uptime => "uptime",
            SortKey::Name => "name",
        }
    }
}

/// `--format json` (or its alias `--json`).
#[derive(Debug, Clone, Copy, Args)]
pub struct FormatArg {
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Same as `--format json`.
    #[arg(long)]
    pub json: bool,
}

impl FormatArg {
    /// Whether JSON was asked for.
    pub fn is_json(&self) -> bool {
        self.json || self.format == Format::Json
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "host-launch",
    version,
    about = "Run one-service appliances as User-Mode Linux VMs",
    args_conflicts_with_subcommands = true,
    after_help = AFTER_HELP,
)]
pub struct Cli {
    /// The spec to run in the foreground (same as `run SPEC`): an existing file or a .json name.
    pub spec: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Cmd>,
}

/// The top-level help's tail: the shorthand, the exit statuses, then [`ENVIRONMENT`].
pub const AFTER_HELP: &str = concat!(
    "`host-launch SPEC` is `host-launch run SPEC` (SPEC: an existing file or a .json name).\n\n\
     Exit status: 0 clean stop or service exit 0; 1-119 the service's exit code; 120 invalid \
     spec/manifest; 121 already running / in use; 122 host setup failed; 123 guest fatal \
     error; 124 kernel crash; 125 killed after the stop timeout; 126 no such appliance; 127 \
     upgrade failed and was rolled back; 128 usage error (unknown command or flag); 128+N \
     service killed by signal N.\n\n",
    environment!()
);

/// The appliances a command acts on.
#[derive(Debug, Clone, Args)]
pub struct Names {
    /// Appliance names (`--all`: every running one).
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub names: Vec<String>,
    /// Every running appliance.
    #[arg(long, short)]
    pub all: bool,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Run an appliance in the foreground until it powers off; Ctrl-C stops it cleanly.
    #[command(after_help = ENVIRONMENT)]
    Run {
        spec: PathBuf,
        /// Show the kernel's boot messages, each with its time since boot, in the console log.
        #[arg(long)]
        kernel_log: bool,
        /// Do not print status events.
        #[arg(long, short)]
        quiet: bool,
        /// Boot this root image (manifest beside it) instead of the spec's; used by `upgrade`.
        #[arg(long, value_name = "IMAGE", hide = true)]
        image: Option<PathBuf>,
        /// Leave the caller's session first (setsid): `start` and `upgrade` run the launcher
        /// so, which lets them start it without a fork (posix_spawn).
        #[arg(long, hide = true)]
        new_session: bool,
    },
    /// Validate a spec against its image; print the contract and the UML command line.
    #[command(after_help = ENVIRONMENT)]
    Check {
        spec: PathBuf,
        /// Print only the merged contract (JSON).
        #[arg(long)]
        contract: bool,
    },
    /// Start an appliance in the background: SPEC (a file), or the NAME of one this host
    /// knows, from the spec it last ran.
    #[command(after_help = ENVIRONMENT)]
    Start {
        #[arg(value_name = "SPEC|NAME")]
        target: String,
        /// Wait until the service is ready, at most this many seconds.
        #[arg(long, value_name = "SECONDS")]
        wait_ready: Option<u64>,
    },
    /// Stop the appliances and start them again from the specs they last ran.
    #[command(after_help = ENVIRONMENT)]
    Restart {
        #[command(flatten)]
        which: Names,
        /// Wait for the stop this many seconds (default: the service's stop timeout + the
        /// launcher's margin).
        #[arg(long, short = 't', value_name = "SECONDS")]
        time: Option<u64>,
        /// Wait until the service is ready again, at most this many seconds.
        #[arg(long, value_name = "SECONDS")]
        wait_ready: Option<u64>,
    },
    /// Replace the appliance's root image, keeping its data disks: stop it, boot the new image,
    /// wait until it is ready; if it is not, boot the old image again (exit status 127). One
    /// that its unit host-launch@NAME runs gets the new image in /etc/host-launch/NAME.json
    /// (the old spec kept as NAME.json.previous) and `systemctl restart`.
    #[command(after_help = ENVIRONMENT)]
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
    #[command(after_help = ENVIRONMENT)]
    Outdated {
        #[command(flatten)]
        format: FormatArg,
    },
    /// Roll a new image out across the running appliances of an old one, one at a time: each
    /// is upgraded, must stay healthy for the settle time, and is rolled back if not; the first
    /// failure stops the rollout (exit status 127; 122 when a rollback failed).
    #[command(after_help = ENVIRONMENT)]
    Update(UpdateArgs),
    /// Stop running appliances gracefully (ctrl-alt-del, then halt after the stop timeout).
    #[command(after_help = ENVIRONMENT)]
    Stop {
        #[command(flatten)]
        which: Names,
        /// Give up waiting after this many seconds (default: the service's stop timeout +
        /// the launcher's margin).
        #[arg(long, short = 't', visible_alias = "timeout", value_name = "SECONDS")]
        time: Option<u64>,
    },
    /// Show an appliance's state (all when no name is given); only reads.
    #[command(visible_alias = "inspect", after_help = ENVIRONMENT)]
    Status {
        name: Option<String>,
        #[command(flatten)]
        format: FormatArg,
    },
    /// List the appliances this host knows, in natural order of names.
    #[command(visible_alias = "ps", after_help = ENVIRONMENT)]
    List {
        #[command(flatten)]
        format: FormatArg,
    },
    /// Forget an appliance that is not running (its state directory: logs, last outcome);
    /// data disks are never touched.
    #[command(visible_alias = "rm", after_help = ENVIRONMENT)]
    Forget {
        #[arg(required_unless_present = "all_exited", conflicts_with = "all_exited")]
        name: Option<String>,
        /// Forget every appliance that is not running.
        #[arg(long)]
        all_exited: bool,
    },
    /// Print an appliance's console: the service's output and the guest's messages.
    #[command(visible_alias = "console", after_help = ENVIRONMENT)]
    Logs {
        name: String,
        /// Keep printing what comes, across restarts, until interrupted.
        #[arg(long, short)]
        follow: bool,
        /// Start with the last N lines.
        #[arg(long, short = 'n', value_name = "N")]
        tail: Option<usize>,
        /// Only lines that arrived since this time (RFC 3339) or this long ago (10m, 2h).
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// Show each line after the host time it arrived (RFC 3339).
        #[arg(long, short = 't')]
        timestamps: bool,
    },
    /// Print an appliance's status events (boot, ready, exits, power-off).
    #[command(after_help = ENVIRONMENT)]
    Events {
        name: String,
        /// Keep printing what comes, across restarts, until interrupted.
        #[arg(long, short)]
        follow: bool,
        #[command(flatten)]
        format: FormatArg,
    },
    /// Copy each data disk of a running appliance at one point in time: the guest freezes
    /// its file systems for the copy (reflink where the file system has it, else a sparse
    /// copy) and thaws after it, or by itself after the bound; a guest that does not answer
    /// gets a crash-consistent copy, said so.
    #[command(after_help = ENVIRONMENT)]
    Snapshot {
        name: String,
        /// Where the copies go, as DIR/NAME-MILLISECONDS/diskN.img (default: the current
        /// directory).
        #[arg(long, value_name = "DIR")]
        to: Option<PathBuf>,
        /// The longest the guest stays frozen if this command dies (1 to 60).
        #[arg(long, value_name = "SECONDS", default_value_t = 10,
              value_parser = clap::value_parser!(u64).range(1..=60))]
        bound: u64,
    },
    /// Back up a running appliance: a snapshot (the same freeze, copy and thaw) packed as one
    /// archive DIR/NAME-MILLISECONDS.tar.gz (its disks, sparse; its spec; its image digest)
    /// with a SHA-256 checksum file beside it; only the newest N backups of NAME are kept.
    #[command(after_help = ENVIRONMENT)]
    Backup {
        name: String,
        /// The directory that holds the backups (with --to-command: where the snapshot's
        /// copies are made meanwhile, default the current directory).
        #[arg(long, value_name = "DIR", required_unless_present = "to_command")]
        to: Option<PathBuf>,
        /// How many backups of NAME to keep in DIR (the oldest are removed).
        #[arg(long, value_name = "N", default_value_t = 7, conflicts_with = "to_command",
              value_parser = clap::value_parser!(u64).range(1..))]
        keep: u64,
        /// Stream the archive to this shell command's stdin instead of a file (e.g.
        /// 'restic backup --stdin --stdin-filename web.tar.gz'); $HOST_LAUNCH_BACKUP is the
        /// archive's file name. The command keeps what it keeps: --keep does not apply.
        #[arg(long, value_name = "COMMAND")]
        to_command: Option<String>,
        /// The longest the guest stays frozen if this command dies (1 to 60).
        #[arg(long, value_name = "SECONDS", default_value_t = 10,
              value_parser = clap::value_parser!(u64).range(1..=60))]
        bound: u64,
    },
    /// Write one disk of a backup archive to a file or block device, after checking the
    /// archive's checksum; a disk a running appliance uses is refused.
    #[command(after_help = ENVIRONMENT)]
    Restore {
        /// The backup archive (NAME-MILLISECONDS.tar.gz, its .sha256 beside it).
        archive: PathBuf,
        /// The file (made if missing) or block device to write the disk to.
        #[arg(long, value_name = "FILE|DEVICE")]
        disk: PathBuf,
        /// Which disk of the archive (disk0, disk1, ...); needed when it holds several.
        #[arg(long, value_name = "DISKNAME")]
        name: Option<String>,
    },
    /// Every appliance's metrics in the Prometheus text format: printed, written for
    /// node_exporter's textfile collector (one file per appliance), or served at /metrics.
    #[command(after_help = ENVIRONMENT)]
    Metrics {
        /// Serve GET /metrics on this address (e.g. 127.0.0.1:9847) until interrupted.
        #[arg(long, value_name = "ADDR", conflicts_with = "textfile")]
        listen: Option<std::net::SocketAddr>,
        /// Write host-launch-NAME.prom into this directory, atomically (without DIR: Debian's
        /// node_exporter's, /var/lib/prometheus/node-exporter).
        #[arg(long, value_name = "DIR", num_args = 0..=1,
              default_missing_value = crate::metrics::textfile::DEFAULT_DIR)]
        textfile: Option<PathBuf>,
        /// With --textfile: write them again every SECONDS until interrupted (0: once).
        #[arg(
            long,
            value_name = "SECONDS",
            default_value = "0",
            requires = "textfile"
        )]
        every: u64,
    },
    /// One snapshot of what each appliance uses (all when no name is given): CPU, memory,
    /// network, disk, restarts.
    #[command(after_help = ENVIRONMENT)]
    Stats {
        name: Option<String>,
        #[command(flatten)]
        format: FormatArg,
    },
    /// A live table of every appliance (state, ready, CPU %, memory, network rates, restarts,
    /// uptime), refreshed; keys c m i o r u a change the order, q quits.
    #[command(after_help = ENVIRONMENT)]
    Top {
        /// The order, biggest first.
        #[arg(long, short, value_enum, default_value = "cpu")]
        sort: SortKey,
        /// Seconds between refreshes.
        #[arg(long, short = 'd', value_name = "SECONDS", default_value = "2",
              value_parser = clap::value_parser!(u64).range(1..=3600))]
        interval: u64,
        /// End after N refreshes (default: until q).
        #[arg(long, short = 'n', value_name = "N")]
        iterations: Option<u64>,
    },
    /// Install the systemd template unit host-launch@.service and its generator (specs in
    /// /etc/host-launch/NAME.json become host-launch@NAME.service, started at boot).
    #[command(after_help = ENVIRONMENT)]
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
    #[command(after_help = ENVIRONMENT)]
    Schema {
        #[arg(value_parser = ["spec", "manifest"])]
        which: String,
    },
}

/// Words a podman, docker or systemctl user types, and host-launch's command for each.
const HABITS: &[(&str, &str)] = &[
    ("ls", "list"),
    ("show", "status"),
    ("kill", "stop"),
    ("remove", "forget"),
    ("rmi", "forget"),
    ("log", "logs"),
    ("journal", "logs"),
    ("attach", "logs"),
    ("create", "start"),
    ("up", "start"),
    ("down", "stop"),
    ("validate", "check"),
];

/// Whether `word` names a subcommand (or an alias of one, or `help`).
pub fn is_command(word: &str) -> bool {
    use clap::CommandFactory;
    word == "help" || Cli::command().find_subcommand(word).is_some()
}

/// The message for a word that is neither a command nor a spec file:
/// "unknown command 'ls'; did you mean 'list'?", the suggestion from [`HABITS`] or the
/// closest command name.
pub fn unknown_command(word: &str) -> String {
    use clap::CommandFactory;
    let cmd = Cli::command();
    let names: Vec<String> = cmd
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .flat_map(|c| std::iter::once(c.get_name()).chain(c.get_visible_aliases()))
        .map(str::to_string)
        .collect();
    let habit = HABITS.iter().find(|(h, _)| *h == word).map(|(_, c)| *c);
    let near = names
        .iter()
        .map(|n| (strsim::levenshtein(word, n), n.as_str()))
        .filter(|(d, _)| *d <= 2)
        .min();
    match habit.or(near.map(|(_, n)| n)) {
        Some(c) => format!(
            "unknown command '{word}'; did you mean '{c}'? (a spec file to run must exist or \
             end in .json; see `host-launch --help`)"
        ),
        None => format!(
            "unknown command '{word}', and no such spec file; see `host-launch --help` for \
             the commands"
        ),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_help_lists_the_environment_files_and_kernel_order() {
        use clap::CommandFactory;
        let mut cmd = super::Cli::command();
        cmd.build();
        let top = cmd.render_long_help().to_string();
        assert!(top.contains("Kernel search order") && top.contains("128 usage error"));
        for sub in cmd
            .get_subcommands()
            .filter(|c| !c.is_hide_set() && c.get_name() != "help")
        {
            let text = sub.clone().render_long_help().to_string();
            for want in [
                "HOST_LAUNCH_STATE_DIR",
                "UML_KERNEL",
                "/etc/host-launch",
                "Kernel search order",
            ] {
                assert!(
                    text.contains(want),
                    "`{}` --help lacks {want}",
                    sub.get_name()
                );
            }
        }
    }

    #[test]
    fn unknown_words_get_the_command_meant() {
        let m = super::unknown_command("ls");
        assert!(
            m.starts_with("unknown command 'ls'; did you mean 'list'?"),
            "{m}"
        );
        let m = super::unknown_command("stpo");
        assert!(m.contains("did you mean 'stop'?"), "{m}");
        assert!(super::is_command("ps") && super::is_command("help"));
        assert!(!super::is_command("stpo"));
        let m = super::unknown_command("frobnicate");
        assert!(m.contains("no such spec file"), "{m}");
    }
}

/// `update`'s arguments.
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// The new root image; its manifest is `IMAGE.manifest.json` beside it.
    #[arg(long, value_name = "IMAGE")]
    pub image: PathBuf,
    /// Move every running appliance whose image digest starts with this (`sha256:...`,
    /// at least 12 hex digits), or that runs this image file (its digest: a copy counts);
    /// `host-launch update --image NEW NAME...` names them instead.
    #[arg(
        long,
        value_name = "DIGEST|OLD_IMAGE",
        required_unless_present_any = ["names", "plan"],
        conflicts_with = "names"
    )]
    pub from: Option<String>,
    /// The appliances to move, in this order (the first is the canary).
    pub names: Vec<String>,
    /// How long each upgraded appliance must stay ready, with no restart or failed
    /// liveness check, before the next one moves.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub settle: u64,
    /// How long each new image may take to become ready.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub timeout: u64,
    /// How long each graceful stop may take.
    #[arg(long, value_name = "SECONDS", default_value_t = 120)]
    pub stop_timeout: u64,
    /// Change nothing: show the running appliances with their image digests and which of
    /// them the update would move.
    #[arg(long)]
    pub plan: bool,
    #[command(flatten)]
    pub format: FormatArg,
}
