//! image-builder: builds read-only ext4 root images for one-service appliances.
//!
//! A [`recipe`] names the service's programs and the Debian packages they come from, plugins
//! loaded with `dlopen`, config files, accounts and the image [manifest](appliance::manifest).
//! [`build`] fetches the packages from Debian's archive as its [`lock`] says ([`archive`]),
//! unpacks them into a staging root ([`stage`]), checks it all, copies each program with its
//! shared-library [`closure`] (found from the [`elf`] dynamic sections) from that root, adds
//! guest-init as `/sbin/init`, the [`sbom`] and dpkg status entries, and writes a
//! reproducible image with `mkfs.ext4 -d` plus `<image>.manifest.json` and
//! `<image>.spdx.json` beside it, and with a key its [signature](sign).

pub mod archive;
pub mod build;
pub mod closure;
pub mod elf;
pub mod error;
pub mod ext4;
pub mod lock;
pub mod recipe;
pub mod sbom;
pub mod sign;
pub mod stage;

pub use build::{build, plan, Built, Error, Options};
pub use recipe::{parse, Recipe};

/// The Rust target guest-init is built for (static with musl).
pub const MUSL_TARGET: &str = "x86_64-unknown-linux-musl";

/// The workspace this builder belongs to.
pub fn workspace_root() -> std::path::PathBuf {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The cargo target directory: `$CARGO_TARGET_DIR` (relative to the workspace root if
/// relative) or `<workspace>/target`.
pub fn target_dir() -> std::path::PathBuf {
    let root = workspace_root();
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if !d.is_empty() => root.join(d),
        _ => root.join("target"),
    }
}

/// Builds the static guest-init with cargo (release, musl) and returns its path.
pub fn build_guest_init() -> Result<std::path::PathBuf, Error> {
    let root = workspace_root();
    let target = target_dir();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = std::process::Command::new(cargo)
        .current_dir(&root)
        .env("CARGO_TARGET_DIR", &target)
        .args(["build", "--release", "--target", MUSL_TARGET])
        .args(["-p", "guest-init", "--bin", "guest-init"])
        .status()
        .map_err(|e| Error(vec![format!("running cargo to build guest-init: {e}")]))?;
    if !status.success() {
        return Err(Error(vec![format!(
            "building guest-init failed ({status}); is the {MUSL_TARGET} target installed \
             (scripts/setup)? Or pass --init PATH"
        )]));
    }
    Ok(target.join(MUSL_TARGET).join("release").join("guest-init"))
}
