//! uml-runc's command line: runc's, as podman and conmon use it (global `--root`, `--log`,
//! `--log-format`, `--systemd-cgroup`, `--debug`; `create`, `start`, `state`, `kill`,
//! `delete`, `features`, `--version`). Errors go to stderr and, as runc does, to `--log`
//! (JSON lines with `--log-format json`, which podman reads back when a command fails).

#![deny(missing_debug_implementations)]
#![deny(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_lossless,
    clippy::exit,
    clippy::tests_outside_test_module
)]

use clap::Parser;
use std::io::Write;
use std::path::Path;
use uml_runc::cli::{Cli, Cmd};
use uml_runc::commands;

fn main() {
    let cli = Cli::parse();
    if cli.version {
        println!(
            "uml-runc version {}\nspec: 1.0.2\nvm: User-Mode Linux (guest-init, host contract v{})",
            env!("CARGO_PKG_VERSION"),
            contract::VERSION
        );
        return;
    }
    let Some(cmd) = cli.command else {
        eprintln!("uml-runc: no command; see uml-runc --help");
        std::process::exit(2);
    };
    let mut notes = Vec::new();
    let r = run(&cli.root, cmd, &mut notes);
    for n in &notes {
        log(cli.log.as_deref(), &cli.log_format, "warning", n);
    }
    if let Err(e) = r {
        log(cli.log.as_deref(), &cli.log_format, "error", &e.0);
        eprintln!("uml-runc: {e}");
        std::process::exit(1);
    }
}

fn run(root: &Path, cmd: Cmd, notes: &mut Vec<String>) -> uml_runc::Result<()> {
    match cmd {
        Cmd::Create {
            bundle,
            pid_file,
            console_socket,
            id,
            ..
        } => commands::create(
            &commands::CreateArgs {
                root,
                id: &id,
                bundle: &bundle,
                pid_file: pid_file.as_deref(),
                console_socket: console_socket.as_deref(),
            },
            notes,
        ),
        Cmd::Start { id } => commands::start(root, &id, notes),
        Cmd::State { id } => {
            println!("{}", commands::state_json(root, &id)?);
            Ok(())
        }
        Cmd::Kill { id, signal, .. } => commands::kill(root, &id, &signal),
        Cmd::Delete { id, force } => commands::delete(root, &id, force, notes),
        Cmd::Ps { format, id } => {
            let pids = uml_runc::ps::pids(root, &id)?;
            println!("{}", uml_runc::ps::render(&pids, &format)?);
            Ok(())
        }
        Cmd::Pause { id } => uml_runc::freeze::pause(root, &id),
        Cmd::Resume { id } => uml_runc::freeze::resume(root, &id),
        Cmd::Features => {
            println!("{:#}", commands::features());
            Ok(())
        }
        Cmd::Other(args) => Err(uml_runc::Error::new(format!(
            "{}: not supported by uml-runc: a container is a VM with one service, and there is \
             no process of it on the host to exec into or update (`ps` lists the VM's processes, `pause` freezes them)",
            args.first().map(String::as_str).unwrap_or("?")
        ))),
    }
}

/// Appends one message to the `--log` file, as runc writes it.
fn log(path: Option<&Path>, format: &str, level: &str, msg: &str) {
    let Some(path) = path else {
        if level != "error" {
            eprintln!("uml-runc: {msg}");
        }
        return;
    };
    let time = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let line = if format == "json" {
        serde_json::json!({"level": level, "msg": msg, "time": time}).to_string()
    } else {
        format!("time=\"{time}\" level={level} msg={msg:?}")
    };
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(f, "{line}");
    }
}
