//! `host-launch install-systemd [--root DIR]`: puts the template unit and the generator in
//! place, makes `/etc/host-launch` and `/var/lib/host-launch`, and reloads systemd when it
//! runs (so the generator runs at once). Idempotent: run it again after moving the binary.

use super::{template_unit, SPEC_DIR, TEMPLATE_NAME};
use crate::error::{Error, IoContext, Result};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Where the template goes (under the root).
pub const UNIT_DIR: &str = "etc/systemd/system";
/// Where the generator goes.
pub const GENERATOR_DIR: &str = "etc/systemd/system-generators";
pub const GENERATOR_NAME: &str = "host-launch-generator";

/// What was installed, for the operator.
#[derive(Debug)]
pub struct Installed {
    pub files: Vec<PathBuf>,
    pub reloaded: bool,
}

/// Installs under `root` (`/` for the host) for the launcher at `host_launch`.
pub fn install(root: &Path, host_launch: &Path) -> Result<Installed> {
    let exe = host_launch.to_str().ok_or_else(|| {
        Error::host(format!(
            "{}: the launcher's path is not UTF-8",
            host_launch.display()
        ))
    })?;
    if exe.contains(char::is_whitespace) {
        return Err(Error::host(format!(
            "{exe}: the launcher's path has white space; install it where systemd can name it"
        )));
    }
    let unit = root.join(UNIT_DIR).join(TEMPLATE_NAME);
    let generator = root.join(GENERATOR_DIR).join(GENERATOR_NAME);
    write(&unit, &template_unit(exe), 0o644)?;
    let template = format!("/{UNIT_DIR}/{TEMPLATE_NAME}");
    write(&generator, &generator_script(exe, &template), 0o755)?;
    for d in [SPEC_DIR, "/var/lib/host-launch"] {
        let d = root.join(d.trim_start_matches('/'));
        std::fs::create_dir_all(&d).io_context(|| format!("creating {}", d.display()))?;
    }
    let reloaded = root == Path::new("/") && Path::new("/run/systemd/system").is_dir() && {
        let st = std::process::Command::new("systemctl")
            .arg("daemon-reload")
            .status()
            .io_context(|| "running systemctl daemon-reload".to_string())?;
        if !st.success() {
            return Err(Error::host(format!("systemctl daemon-reload: {st}")));
        }
        true
    };
    Ok(Installed {
        files: vec![unit, generator],
        reloaded,
    })
}

/// The generator for the launcher `exe` and the template unit at `template`. A script, not a
/// link: the generator is the launcher's `systemd-generator` subcommand, and the unit's
/// template path (for the .wants links) is fixed here. The Debian package ships one for
/// /usr/bin/host-launch and /usr/lib/systemd/system (`package-files/`).
pub fn generator_script(exe: &str, template: &str) -> String {
    format!(
        "#!/bin/sh\n# host-launch's systemd generator: the specs in {SPEC_DIR} as units.\n\
         exec {exe} systemd-generator --template {template} \"$@\"\n"
    )
}

fn write(path: &Path, text: &str, mode: u32) -> Result<()> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).io_context(|| format!("creating {}", d.display()))?;
    }
    std::fs::write(path, text).io_context(|| format!("writing {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .io_context(|| format!("setting the mode of {}", path.display()))
}
