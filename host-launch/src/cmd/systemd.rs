//! `install-systemd` and `systemd-generator`: see [`crate::systemd`].

use crate::error::{IoContext, Result};
use crate::systemd::{generator, install, SPEC_DIR};
use std::path::Path;

/// `install-systemd [--root DIR]`.
pub fn install(root: &Path) -> Result<i32> {
    let exe = std::env::current_exe().io_context(|| "finding the launcher's path".to_string())?;
    let done = install::install(root, &exe)?;
    for f in &done.files {
        println!("installed {}", f.display());
    }
    if done.reloaded {
        println!("systemd reloaded: every {SPEC_DIR}/NAME.json is now host-launch@NAME.service");
    }
    println!(
        "put a spec in {SPEC_DIR}/NAME.json, then `systemctl start host-launch@NAME` \
         (specs there also start at boot)"
    );
    Ok(0)
}

/// `systemd-generator [--spec-dir DIR] --template UNIT NORMAL [EARLY LATE]`: never fails
/// the boot over a spec; only an unwritable output directory is an error.
pub fn generate(spec_dir: Option<&Path>, template: &Path, normal: &Path) -> Result<i32> {
    let spec_dir = spec_dir.unwrap_or(Path::new(SPEC_DIR));
    for g in generator::generate(spec_dir, normal, template)? {
        if let Some(n) = g.note {
            eprintln!("host-launch-generator: {}: {n}", g.name);
        }
    }
    Ok(0)
}
