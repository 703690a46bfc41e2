//! Building statically linked guest binaries with cargo, once per process.

use crate::elf::elf_has_interpreter;
use crate::error::{run_command, Context, Error, Result};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, OnceLock};

/// The Rust target guest binaries are built for, the workspace root and cargo's target
/// directory: the image builder's, which builds guest-init the same way.
pub use ::rootfs::{target_dir, workspace_root, MUSL_TARGET};

type Builds = Mutex<HashMap<(String, String), std::result::Result<PathBuf, String>>>;

/// Builds `--bin BIN` of package `PACKAGE` for [`MUSL_TARGET`] in release mode, once per
/// process (later calls return the first result), and checks that the executable is static
/// (no ELF interpreter). Returns the executable's path.
pub fn build_static(package: &str, bin: &str) -> Result<PathBuf> {
    static BUILDS: OnceLock<Builds> = OnceLock::new();
    let builds = BUILDS.get_or_init(Default::default);
    // A test that panicked while holding the lock does not make the map unusable.
    let mut map = builds.lock().unwrap_or_else(|e| e.into_inner());
    let key = (package.to_string(), bin.to_string());
    let result = map
        .entry(key)
        .or_insert_with(|| build_uncached(package, bin).map_err(|e| e.to_string()));
    result
        .clone()
        .map_err(|e| Error::new(format!("building {package}/{bin}"), e))
}

/// Builds `--bin BIN` of package `PACKAGE` for the host (debug), once per process, for the
/// tests of other packages (a package's own have `CARGO_BIN_EXE_<bin>`); panics when cargo
/// fails, since no test can go on without the program. Returns the executable's path.
pub fn build_host(package: &str, bin: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<(String, String), PathBuf>>> = OnceLock::new();
    let mut built = BUILT
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    built
        .entry((package.to_string(), bin.to_string()))
        .or_insert_with(|| {
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let ok = Command::new(cargo)
                .current_dir(workspace_root())
                .env("CARGO_TARGET_DIR", target_dir())
                .args(["build", "-p", package, "--bin", bin])
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "building {package}/{bin} failed");
            target_dir().join("debug").join(bin)
        })
        .clone()
}

/// The static `guest-init` executable.
pub fn guest_init() -> Result<PathBuf> {
    build_static("guest-init", "guest-init")
}

fn build_uncached(package: &str, bin: &str) -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target = target_dir();
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root())
        .env("CARGO_TARGET_DIR", &target)
        .args([
            "build",
            "--release",
            "--target",
            MUSL_TARGET,
            "-p",
            package,
            "--bin",
            bin,
        ]);
    run_command(&mut cmd).map_err(|mut e| {
        if e.detail.contains(MUSL_TARGET) && e.detail.contains("target may not be installed") {
            e.detail.push_str(&format!("\n{}", crate::SETUP_HINT));
        }
        e
    })?;
    let exe = target.join(MUSL_TARGET).join("release").join(bin);
    let bytes = std::fs::read(&exe).context(|| format!("reading {}", exe.display()))?;
    if elf_has_interpreter(&bytes).context(|| exe.display().to_string())? {
        return Err(Error::new(
            format!("checking {}", exe.display()),
            "it is dynamically linked (has an ELF interpreter); guest binaries must be static",
        ));
    }
    Ok(exe)
}
