//! The static guest-init that is `/sbin/init` of every image: where the workspace and its
//! cargo target directory are, building guest-init for musl, and which one an image gets
//! when none is named (the checkout's for a development build, else the installed one).

use crate::installed::{self, LIB_DIR, LOCAL_LIB_DIR};
use crate::Error;
use std::path::{Path, PathBuf};

/// guest-init's file name in the installed directories.
pub const GUEST_INIT_FILE: &str = "guest-init";

/// The guest-init for an image when none is named: a development build builds its
/// checkout's with cargo; an installed program takes the installed one.
pub fn default_guest_init() -> Result<PathBuf, Error> {
    if installed::dev_checkout().is_some() {
        return build_guest_init();
    }
    installed::lib_file(GUEST_INIT_FILE).ok_or_else(|| {
        Error::one(format!(
            "no static guest-init in {LOCAL_LIB_DIR} or {LIB_DIR}: install the package \
             host-launch, or name one with --init PATH"
        ))
    })
}

/// The Rust target guest-init is built for (static with musl).
pub const MUSL_TARGET: &str = "x86_64-unknown-linux-musl";

/// The workspace this crate belongs to.
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The cargo target directory: `$CARGO_TARGET_DIR` (relative to the workspace root if
/// relative) or `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    let root = workspace_root();
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if !d.is_empty() => root.join(d),
        _ => root.join("target"),
    }
}

/// Builds the static guest-init with cargo (release, musl) and returns its path.
pub fn build_guest_init() -> Result<PathBuf, Error> {
    let root = workspace_root();
    let target = target_dir();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = std::process::Command::new(cargo)
        .current_dir(&root)
        .env("CARGO_TARGET_DIR", &target)
        .args(["build", "--release", "--target", MUSL_TARGET])
        .args(["-p", "guest-init", "--bin", "guest-init"])
        .status()
        .map_err(|e| Error::one(format!("running cargo to build guest-init: {e}")))?;
    if !status.success() {
        return Err(Error::one(format!(
            "building guest-init failed ({status}); is the {MUSL_TARGET} target installed \
             (scripts/setup)? Or pass --init PATH"
        )));
    }
    Ok(target.join(MUSL_TARGET).join("release").join("guest-init"))
}
