//! The conformance kit's command line (clap): the binary parses it, and the package's man
//! pages and shell completions are generated from it (`package-files/`).

use clap::Parser;
use std::path::PathBuf;

/// The exit statuses, the environment and the kernel search order.
pub const AFTER_HELP: &str = "Exit status: 0 every MUST passed; 1 a MUST failed; 2 the kit \
could not run (no root, no kernel, a missing tool, no such image, a usage error).

Environment:
  UML_KERNEL  the UML kernel (--kernel names another)

Kernel search order: --kernel, $UML_KERNEL, /usr/local/lib/host-launch/linux,
/usr/lib/host-launch/linux, (a development build only: its checkout's build/kernel/linux),
/usr/bin/linux.uml (Debian's user-mode-linux).";

/// Boots IMAGE with a battery of host contracts and checks, from outside, what
/// docs/contract.md requires of an image. Needs root (network namespace, the VM's jail).
#[derive(Parser, Debug)]
#[command(name = "conformance", version, after_help = AFTER_HELP)]
pub struct Args {
    /// The root image (ext4), e.g. build/dns.img (relative to the current directory or
    /// absolute).
    pub image: PathBuf,
    /// The image's manifest; default IMAGE.manifest.json.
    #[arg(long)]
    pub manifest: Option<PathBuf>,
    /// An operator spec whose `files` the image's own service needs (e.g. build-image/tests/lab/dnsmasq.json).
    #[arg(long)]
    pub spec_files: Option<PathBuf>,
    /// The UML kernel; default the one host-launch boots (see the kernel search order below).
    #[arg(long)]
    pub kernel: Option<PathBuf>,
    /// The static probe executable; default: the installed one
    /// (/usr/lib/host-launch/conformance-probe), or, run from a checkout, built with cargo.
    #[arg(long)]
    pub probe: Option<PathBuf>,
    /// Print the results as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Run the suite of the class the manifest claims (docs/classes/) instead of the host
    /// contract's battery.
    #[arg(long)]
    pub class: bool,
    /// With --class: the address families to boot the image with, one boot each (ipv4: IPv4
    /// only, ipv6: IPv6 only, dual: both); default all three.
    #[arg(long, value_delimiter = ',', value_parser = crate::class::Family::parse)]
    pub family: Vec<crate::class::Family>,
}
