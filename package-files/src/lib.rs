//! packaging: the files of the Debian package that are generated rather than written: a man
//! page for every program and subcommand ([`man`], clap_mangen), bash, zsh and fish
//! completions ([`completions`], clap_complete), both from the programs' own clap definitions,
//! and the systemd template unit and generator for `/usr/bin/host-launch` ([`units`]).
//! `package-files DIR` writes them under DIR as they lie in the package (`debian/rules`); the
//! package's install test is `tests/install.rs`.

#![deny(missing_debug_implementations)]
#![deny(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_lossless,
    clippy::exit,
    clippy::tests_outside_test_module
)]

pub mod completions;
pub mod man;
pub mod units;

use clap::CommandFactory;

/// Where the package puts the programs.
pub const BIN_DIR: &str = "/usr/bin";

/// One generated file: its path relative to the package's root, its bytes and mode.
#[derive(Debug)]
pub struct File {
    pub path: String,
    pub bytes: Vec<u8>,
    pub mode: u32,
}

/// The four programs' command lines, exactly as their binaries parse them.
pub fn programs() -> Vec<clap::Command> {
    vec![
        host_launch::cli::Cli::command(),
        uml_runc::cli::Cli::command(),
        build_image::cli::Args::command(),
        conformance::cli::Args::command(),
    ]
}

/// Every generated file of the package.
pub fn files() -> Result<Vec<File>, std::io::Error> {
    let mut all = Vec::new();
    for program in programs() {
        all.extend(man::pages(program.clone())?);
        all.extend(completions::scripts(program));
    }
    all.extend(units::files());
    Ok(all)
}
