//! build-image's command line (clap): the binary parses it, and the package's man pages and
//! shell completions are generated from it (`package-files/`).

use clap::Parser;
use std::path::PathBuf;

/// The exit statuses, and the environment and files build-image reads.
pub const AFTER_HELP: &str = "Exit status: 0 built (or checked); 1 the build failed (a \
package the archive lacks, a tool, the file system); 2 bad input (the recipe, its lock, the \
command line); 4 the archive cannot be reached (its indexes or a package could not be \
fetched: run again later); with --outdated, 3 packages are behind.

Environment:
  IMAGE_SIGN_PASSWORD  the password of --sign-key's secret key (none: an unencrypted key)
  IMAGE_BUILDER_CACHE  the package cache (default /var/cache/image-builder)
  IMAGE_BUILDER_SIGN_KEY  the secret key to sign with when --sign-key names none
  IMAGE_BUILDER_APT_SOURCES  a sources.list to use instead of the host's
  UML_MODULES          the UML kernel's modules (default: newest under /usr/lib/uml/modules)
  SOURCE_DATE_EPOCH    every inode's time (default 2024-01-01)

Files:
  RECIPE.lock.json     the lock beside the recipe (read when it exists, written when not)
  /usr/lib/host-launch/guest-init  the installed guest-init (--init names another)";

/// Builds a read-only ext4 root image for a one-service appliance from a recipe, and writes
/// its manifest beside it as IMAGE.manifest.json.
#[derive(Parser, Debug)]
#[command(name = "build-image", version, after_help = AFTER_HELP)]
pub struct Args {
    /// The recipe (JSON; schema in build-image/schema/recipe-v1.schema.json).
    pub recipe: Option<PathBuf>,
    /// The image to write.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// The static guest-init to install as /sbin/init; default: the installed one
    /// (/usr/lib/host-launch/guest-init), or, run from a checkout, built with cargo.
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// The UML kernel's modules of one release; default $UML_MODULES or the newest under
    /// /usr/lib/uml/modules.
    #[arg(long)]
    pub modules_dir: Option<PathBuf>,
    /// The lock file; default RECIPE.lock.json beside the recipe (read when it exists,
    /// written when it does not).
    #[arg(long)]
    pub lock: Option<PathBuf>,
    /// Resolve the packages in the archive as it is now and rewrite the lock.
    #[arg(long)]
    pub update_lock: bool,
    /// The package cache; default $IMAGE_BUILDER_CACHE or /var/cache/image-builder.
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Sign image and manifest with this minisign secret key (writes IMAGE.minisig); default
    /// $IMAGE_BUILDER_SIGN_KEY when set.
    #[arg(long)]
    pub sign_key: Option<PathBuf>,
    /// Write a new minisign key pair PREFIX.key (secret) and PREFIX.pub, and exit.
    #[arg(long, value_name = "PREFIX")]
    pub new_key: Option<PathBuf>,
    /// The time of every inode (seconds since 1970); default $SOURCE_DATE_EPOCH or 2024-01-01.
    #[arg(long)]
    pub epoch: Option<u64>,
    /// The file system UUID; default one derived from the recipe's name.
    #[arg(long)]
    pub uuid: Option<String>,
    /// Check the recipe, packages, programs and libraries, print the plan, write nothing.
    #[arg(long)]
    pub check: bool,
    /// Also write the image as an OCI image layout directory (see build-image/README.md, OCI images).
    #[arg(long, value_name = "DIR")]
    pub oci_layout: Option<PathBuf>,
    /// Also write the image as an oci-archive (a tar of the layout; `podman load -i FILE`).
    #[arg(long, value_name = "FILE")]
    pub oci_archive: Option<PathBuf>,
    /// Compress the OCI layer with gzip.
    #[arg(long)]
    pub oci_gzip: bool,
    /// After the build, list the package changes from this older image (its SBOM,
    /// IMAGE.spdx.json, against the new one's): with --update-lock, the rebuild of a recipe
    /// on the archive as it is now.
    #[arg(long, value_name = "OLD_IMAGE")]
    pub changes_from: Option<PathBuf>,
    /// Change nothing: list the packages of the recipe's lock (or, given an image instead of
    /// a recipe, of the image's SBOM) that the archive (its indexes
    /// fetched now, with the builder's private apt state) has a newer version of, marking those
    /// from a security suite. Exit status 0 none, 3 some, 4 the archive cannot be reached.
    #[arg(long)]
    pub outdated: bool,
    /// With --outdated: print the list as JSON.
    #[arg(long, requires = "outdated")]
    pub json: bool,
    /// Print the recipe's JSON Schema and exit.
    #[arg(long)]
    pub schema: bool,
}
