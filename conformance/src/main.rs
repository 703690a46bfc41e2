//! `conformance IMAGE [--manifest M] [--spec-files SPEC] [--json]`: checks an appliance image
//! against the host contract (the version its manifest declares) and exits 1 when a MUST fails (2 when the kit could not run).
//! `conformance --class IMAGE [--manifest M] [--family ipv4,ipv6,dual] [--json]`: runs the
//! suite of the class the image's manifest claims (docs/classes/), once per address family,
//! and exits 1 when a check fails.

#![deny(missing_debug_implementations)]
#![deny(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_lossless,
    clippy::exit,
    clippy::tests_outside_test_module
)]

use clap::Parser;
use conformance::cli::Args;
use std::path::PathBuf;
use std::process::ExitCode;

/// A report the command prints: as a table or as JSON, failed or not.
trait Printed {
    fn table(&self) -> String;
    fn json(&self) -> serde_json::Value;
    /// Whether it makes the exit code 1.
    fn failed(&self) -> bool;
}

impl Printed for conformance::Report {
    fn table(&self) -> String {
        conformance::Report::table(self)
    }
    fn json(&self) -> serde_json::Value {
        conformance::Report::json(self)
    }
    fn failed(&self) -> bool {
        !self.must_failures().is_empty()
    }
}

impl Printed for conformance::class::ClassReport {
    fn table(&self) -> String {
        conformance::class::ClassReport::table(self)
    }
    fn json(&self) -> serde_json::Value {
        conformance::class::ClassReport::json(self)
    }
    fn failed(&self) -> bool {
        !self.failures().is_empty()
    }
}

/// Prints a report (JSON or table) and gives the exit code: 0, 1 when it failed, 2 when the
/// kit could not run.
fn finish(result: Result<impl Printed, conformance::Error>, json: bool) -> ExitCode {
    match result {
        Ok(report) => {
            if json {
                println!("{:#}", report.json());
            } else {
                print!("{}", report.table());
            }
            ExitCode::from(u8::from(report.failed()))
        }
        Err(e) => {
            eprintln!("conformance: {e}");
            ExitCode::from(2)
        }
    }
}

fn class_suite(a: Args) -> ExitCode {
    let opts = conformance::class::Options {
        image: a.image,
        manifest: a.manifest,
        kernel: a.kernel,
        families: a.family,
    };
    finish(conformance::class::run(&opts), a.json)
}

/// Every path made absolute against the current directory (the VM's jail takes absolute
/// paths only), and the kernel picked, so the kit can say which it boots.
fn resolve(mut a: Args) -> Result<Args, conformance::Error> {
    let abs = |p: &PathBuf| std::path::absolute(p).map_err(conformance::Error::file(p));
    a.image = abs(&a.image)?;
    for p in [
        &mut a.manifest,
        &mut a.spec_files,
        &mut a.kernel,
        &mut a.probe,
    ]
    .into_iter()
    .flatten()
    {
        *p = abs(p)?;
    }
    a.kernel = Some(a.kernel.take().unwrap_or_else(vmm::kernel::default_kernel));
    Ok(a)
}

/// `conformance help`, or a first word that is no image: help, or what was meant.
fn not_an_image(args: &Args) -> Option<ExitCode> {
    let word = args.image.to_str()?;
    if word == "help" {
        let _ = <Args as clap::CommandFactory>::command().print_help();
        return Some(ExitCode::SUCCESS);
    }
    if args.image.exists() {
        return None;
    }
    eprintln!(
        "conformance: unknown command '{word}', and no such image: conformance takes IMAGE \
         (an ext4 root image, e.g. build/dns.img; see conformance --help)"
    );
    Some(ExitCode::from(2))
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    if let Some(code) = not_an_image(&args) {
        return code;
    }
    let a = match resolve(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("conformance: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(k) = &a.kernel {
        eprintln!(
            "conformance: {} on the kernel {}",
            a.image.display(),
            vmm::kernel::describe(k)
        );
    }
    if a.class {
        return class_suite(a);
    }
    let opts = conformance::Options {
        image: a.image,
        manifest: a.manifest,
        spec_files: a.spec_files,
        kernel: a.kernel,
        probe: a.probe,
    };
    finish(conformance::run(&opts), a.json)
}
