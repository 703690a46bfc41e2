//! `host-launch`: the operator's command line. See `host-launch --help` and the crate docs;
//! exit statuses are listed in `host_launch::exit`.

#![deny(missing_debug_implementations)]
#![deny(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_lossless,
    clippy::exit,
    clippy::tests_outside_test_module
)]

use clap::Parser;
use host_launch::cli::{Cli, Cmd};
use host_launch::launch::run;
use host_launch::{cmd, exit};
use std::path::PathBuf;
use std::time::Duration;

fn main() {
    // A first word that is neither a command nor a spec file is a mistyped command (clap
    // would take it for the SPEC, or stumble over the words after it).
    if let Some(word) = std::env::args().nth(1) {
        if !word.starts_with('-')
            && !host_launch::cli::is_command(&word)
            && !host_launch::lifecycle::is_spec_path(&word)
        {
            eprintln!("host-launch: {}", host_launch::cli::unknown_command(&word));
            std::process::exit(exit::USAGE);
        }
    }
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            std::process::exit(if e.use_stderr() { exit::USAGE } else { 0 });
        }
    };
    let result = match (cli.command, cli.spec) {
        (Some(cmd), _) => dispatch(cmd),
        (None, Some(spec)) => run_fg(&spec, false, false, None),
        (None, None) => {
            eprintln!("host-launch: give a SPEC to run, or a subcommand; see --help");
            Ok(exit::USAGE)
        }
    };
    let code = match result {
        Ok(c) => c,
        Err(e) => {
            for line in e.message.lines() {
                eprintln!("host-launch: {line}");
            }
            exit::for_error(e.kind)
        }
    };
    std::process::exit(code);
}

fn run_fg(
    spec: &std::path::Path,
    kernel_log: bool,
    quiet: bool,
    image: Option<PathBuf>,
) -> host_launch::Result<i32> {
    let opts = run::Options {
        kernel_log,
        quiet,
        image,
    };
    run::run(spec, &opts).map(|o| o.code())
}

fn dispatch(cmd: Cmd) -> host_launch::Result<i32> {
    match cmd {
        Cmd::Run {
            spec,
            kernel_log,
            quiet,
            image,
            new_session,
        } => {
            if new_session {
                // `start` spawned this launcher without a fork (no pre-exec hook), so the new
                // session is made here, before anything else: the operator's terminal's
                // signals and hangup must not reach it.
                nix::unistd::setsid().map_err(|e| {
                    host_launch::Error::host(format!("leaving the caller's session: {e}"))
                })?;
            }
            run_fg(&spec, kernel_log, quiet, image)
        }
        Cmd::Check { spec, contract } => cmd::check::check(&spec, contract),
        Cmd::Start { target, wait_ready } => {
            cmd::start::start_target(&target, wait_ready.map(Duration::from_secs))
        }
        Cmd::Restart {
            which,
            time,
            wait_ready,
        } => cmd::restart::restart(
            &cmd::stop::chosen(which.names, which.all)?,
            time.map(Duration::from_secs),
            wait_ready.map(Duration::from_secs),
        ),
        Cmd::Upgrade {
            spec,
            image,
            timeout,
            stop_timeout,
        } => host_launch::cmd::upgrade::upgrade(
            &spec,
            &host_launch::cmd::upgrade::Options {
                image,
                ready_timeout: Duration::from_secs(timeout),
                stop_timeout: Duration::from_secs(stop_timeout),
            },
        ),
        Cmd::Outdated { format } => cmd::outdated::outdated(format.is_json()),
        Cmd::Update(a) => cmd::update::update(&update_options(a)),
        Cmd::Stop { which, time } => cmd::stop::stop_all(
            &cmd::stop::chosen(which.names, which.all)?,
            time.map(Duration::from_secs),
        ),
        Cmd::Status { name, format } => cmd::status::status(name.as_deref(), format.is_json()),
        Cmd::List { format } => cmd::list::list(format.is_json()),
        Cmd::Forget { name, all_exited } => match name {
            Some(n) if !all_exited => cmd::forget::forget(&n),
            _ => cmd::forget::forget_all_exited(),
        },
        Cmd::Logs {
            name,
            follow,
            tail,
            since,
            timestamps,
        } => logs(&name, follow, tail, since.as_deref(), timestamps),
        Cmd::Events {
            name,
            follow,
            format,
        } => cmd::events::events(&name, follow, format.is_json()),
        Cmd::Snapshot { name, to, bound } => {
            cmd::snapshot::snapshot(&name, to, Duration::from_secs(bound))
        }
        Cmd::Backup {
            name,
            to,
            keep,
            to_command,
            bound,
        } => cmd::backup::backup(
            &name,
            &cmd::backup::Target::new(to, keep, to_command),
            Duration::from_secs(bound),
        ),
        Cmd::Restore {
            archive,
            disk,
            name,
        } => cmd::restore::restore(&archive, &disk, name.as_deref()),
        Cmd::Metrics {
            listen,
            textfile,
            every,
        } => cmd::metrics::metrics(&cmd::metrics::Options {
            listen,
            textfile,
            every: Duration::from_secs(every),
        }),
        Cmd::Stats { name, format } => cmd::stats::stats(name.as_deref(), format.is_json()),
        Cmd::Top {
            sort,
            interval,
            iterations,
        } => cmd::top::top(&cmd::top::Options {
            sort,
            interval: Duration::from_secs(interval),
            iterations,
        }),
        Cmd::InstallSystemd { root } => cmd::systemd::install(&root),
        Cmd::SystemdGenerator {
            spec_dir,
            template,
            dirs,
        } => cmd::systemd::generate(spec_dir.as_deref(), &template, &dirs[0]),
        Cmd::Schema { which } => {
            if which == "spec" {
                print!("{}", appliance::schema::spec_v1_text());
            } else {
                print!("{}", appliance::schema::manifest_v1_text());
            }
            Ok(0)
        }
    }
}

/// `update`'s options from its command line.
fn update_options(a: host_launch::cli::UpdateArgs) -> cmd::update::Options {
    use host_launch::rollout::targets::Selection;
    cmd::update::Options {
        image: a.image,
        selection: match a.from {
            Some(d) => Selection::From(d),
            None if a.names.is_empty() => Selection::Running,
            None => Selection::Names(a.names),
        },
        plan: a.plan,
        settle: Duration::from_secs(a.settle),
        ready_timeout: Duration::from_secs(a.timeout),
        stop_timeout: Duration::from_secs(a.stop_timeout),
        json: a.format.is_json(),
    }
}

/// `logs NAME`: `--since` read as a time before the console is.
fn logs(
    name: &str,
    follow: bool,
    tail: Option<usize>,
    since: Option<&str>,
    timestamps: bool,
) -> host_launch::Result<i32> {
    let since = since
        .map(host_launch::stamped::since)
        .transpose()
        .map_err(host_launch::Error::usage)?;
    let opts = cmd::logs::Options {
        follow,
        tail,
        since,
        timestamps,
    };
    cmd::logs::logs(name, opts)
}
