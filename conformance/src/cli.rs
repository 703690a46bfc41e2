//! The conformance kit's command line (clap): the binary parses it, and the package's man
//! pages and shell completions are generated from it (`package-files/`).

use clap::Parser;
use std::path::PathBuf;

/// Boots IMAGE with a battery of host contracts and checks, from outside, what
/// docs/contract.md requires of an image. Needs root (network namespace, the VM's jail).
#[derive(Parser, Debug)]
#[command(name = "conformance", version)]
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
    /// The UML kernel; default $UML_KERNEL, else the project's (/usr/lib/host-launch/linux),
    /// else Debian's /usr/bin/linux.uml.
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
