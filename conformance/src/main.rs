//! `conformance IMAGE [--manifest M] [--spec-files SPEC] [--json]`: checks an appliance image
//! against the host contract (the version its manifest declares) and exits 1 when a MUST fails (2 when the kit could not run).
//! `conformance --class IMAGE [--manifest M] [--family ipv4,ipv6,dual] [--json]`: runs the
//! suite of the class the image's manifest claims (docs/classes/), once per address family,
//! and exits 1 when a check fails.

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

/// Boots IMAGE with a battery of host contracts and checks, from outside, what
/// docs/contract.md requires of an image. Needs root (network namespace, the VM's jail).
#[derive(Parser, Debug)]
#[command(name = "conformance", version)]
struct Args {
    /// The root image (ext4), e.g. build/dns.img (relative to the current directory or
    /// absolute).
    image: PathBuf,
    /// The image's manifest; default IMAGE.manifest.json.
    #[arg(long)]
    manifest: Option<PathBuf>,
    /// An operator spec whose `files` the image's own service needs (e.g. images/tests/lab/dnsmasq.json).
    #[arg(long)]
    spec_files: Option<PathBuf>,
    /// The UML kernel; default $UML_KERNEL, else the project's (installed or built in this
    /// checkout), else Debian's /usr/bin/linux.uml.
    #[arg(long)]
    kernel: Option<PathBuf>,
    /// The static probe executable; default: built with cargo.
    #[arg(long)]
    probe: Option<PathBuf>,
    /// Print the results as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Run the suite of the class the manifest claims (docs/classes/) instead of the host
    /// contract's battery.
    #[arg(long)]
    class: bool,
    /// With --class: the address families to boot the image with, one boot each (ipv4: IPv4
    /// only, ipv6: IPv6 only, dual: both); default all three.
    #[arg(long, value_delimiter = ',', value_parser = conformance::class::Family::parse)]
    family: Vec<conformance::class::Family>,
}

/// Prints a report (JSON or table) and gives the exit code: 0, 1 when `failed`, 2 when the
/// kit could not run.
fn finish<R>(
    result: Result<R, String>,
    json: bool,
    show: impl Fn(&R, bool) -> String,
    failed: impl Fn(&R) -> bool,
) -> ExitCode {
    match result {
        Ok(report) => {
            print!("{}", show(&report, json));
            ExitCode::from(u8::from(failed(&report)))
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
    finish(
        conformance::class::run(&opts),
        a.json,
        |r, json| {
            if json {
                format!("{:#}\n", r.json())
            } else {
                r.table()
            }
        },
        |r| !r.failures().is_empty(),
    )
}

/// Every path made absolute against the current directory (the VM's jail takes absolute
/// paths only), and the kernel picked, so the kit can say which it boots.
fn resolve(mut a: Args) -> Result<Args, String> {
    let abs = |p: &PathBuf| std::path::absolute(p).map_err(|e| format!("{}: {e}", p.display()));
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

fn main() -> ExitCode {
    let a = match resolve(Args::parse()) {
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
    finish(
        conformance::run(&opts),
        a.json,
        |r, json| {
            if json {
                format!("{:#}\n", r.json())
            } else {
                r.table()
            }
        },
        |r| !r.must_failures().is_empty(),
    )
}
