//! `conformance IMAGE [--manifest M] [--spec-files SPEC] [--json]`: checks an appliance image
//! against host contract v1 and exits 1 when a MUST fails (2 when the kit could not run).

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

/// Boots IMAGE with a battery of host contracts and checks, from outside, what
/// docs/contract-v1.md requires of an image. Needs root (network namespace, the VM's jail).
#[derive(Parser, Debug)]
#[command(name = "conformance", version)]
struct Args {
    /// The root image (ext4), e.g. build/dns.img.
    image: PathBuf,
    /// The image's manifest; default IMAGE.manifest.json.
    #[arg(long)]
    manifest: Option<PathBuf>,
    /// An operator spec whose `files` the image's own service needs (e.g. examples/dns.json).
    #[arg(long)]
    spec_files: Option<PathBuf>,
    /// The UML kernel; default $UML_KERNEL or /usr/bin/linux.uml.
    #[arg(long)]
    kernel: Option<PathBuf>,
    /// The static probe executable; default: built with cargo.
    #[arg(long)]
    probe: Option<PathBuf>,
    /// Print the results as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Run the class suite of the manifest's class (docs/classes/) instead of the contract
    /// battery.
    #[arg(long)]
    class: bool,
}

fn main() -> ExitCode {
    let a = Args::parse();
    let opts = conformance::Options {
        image: a.image,
        manifest: a.manifest,
        spec_files: a.spec_files,
        kernel: a.kernel,
        probe: a.probe,
    };
    if a.class {
        return class_suite(&opts, a.json);
    }
    match conformance::run(&opts) {
        Ok(report) => {
            if a.json {
                println!("{:#}", report.json());
            } else {
                print!("{}", report.table());
            }
            if report.must_failures().is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("conformance: {e}");
            ExitCode::from(2)
        }
    }
}

fn class_suite(opts: &conformance::Options, json: bool) -> ExitCode {
    match conformance::run_class(opts) {
        Ok(report) => {
            if json {
                println!("{:#}", report.json());
            } else {
                print!("{}", report.table());
            }
            if report.failures().is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("conformance: {e}");
            ExitCode::from(2)
        }
    }
}
