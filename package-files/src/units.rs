//! The systemd template unit and generator for the packaged launcher, at Debian's policy
//! paths under /usr/lib/systemd; `host-launch install-systemd` writes the same two under /etc
//! for a launcher elsewhere (a checkout). Beside them the unattended update's service and
//! timer templates, and the scheduled backup's (all off by default: the package enables no
//! instance; the update's script is installed by debian/rules in /usr/lib/host-launch).

use crate::{File, BIN_DIR};
use host_launch::systemd::{install::generator_script, install::GENERATOR_NAME, template_unit};
use host_launch::systemd::{
    AUTO_UPDATE_SERVICE, AUTO_UPDATE_SERVICE_NAME, AUTO_UPDATE_TIMER, AUTO_UPDATE_TIMER_NAME,
    BACKUP_SERVICE, BACKUP_SERVICE_NAME, BACKUP_TIMER, BACKUP_TIMER_NAME, TEMPLATE_NAME,
};

/// systemd's directory for a package's units.
pub const UNIT_DIR: &str = "usr/lib/systemd/system";
/// systemd's directory for a package's generators.
pub const GENERATOR_DIR: &str = "usr/lib/systemd/system-generators";

/// The package's man pages, named in the unit (`install-systemd` cannot: a checkout has none,
/// and `systemd-analyze verify` fails on a page that is not there).
pub const DOCUMENTATION: &str = "Documentation=man:host-launch(1) man:host-launch-run(1)";

/// The template unit for the packaged launcher, naming the package's man pages first.
pub fn unit(exe: &str) -> String {
    template_unit(exe).replacen(
        "\nDocumentation=",
        &format!("\n{DOCUMENTATION}\nDocumentation="),
        1,
    )
}

/// The man pages of the unattended update's units: the rollout and the rebuild it runs.
pub const AUTO_UPDATE_DOCUMENTATION: &str =
    "Documentation=man:host-launch-update(1) man:build-image(1)";

/// The man pages of the scheduled backup's units.
pub const BACKUP_DOCUMENTATION: &str =
    "Documentation=man:host-launch-backup(1) man:host-launch-restore(1)";

/// `unit` with `doc` on the line after its `Description=` (the checkout's units name no man
/// page: `systemd-analyze verify` fails on one that is not installed).
fn documented(unit: &str, doc: &str) -> String {
    let mut out = String::with_capacity(unit.len() + doc.len() + 1);
    for line in unit.lines() {
        out.push_str(line);
        out.push('\n');
        if line.starts_with("Description=") {
            out.push_str(doc);
            out.push('\n');
        }
    }
    out
}

/// Unit `name` (`text`, its man pages `doc` added) in the package's unit directory.
fn unit_file(name: &str, text: &str, doc: &str) -> File {
    File {
        path: format!("{UNIT_DIR}/{name}"),
        bytes: documented(text, doc).into_bytes(),
        mode: 0o644,
    }
}

/// The template unit, the generator, the unattended update's service and timer, and the
/// scheduled backup's.
pub fn files() -> Vec<File> {
    let exe = format!("{BIN_DIR}/host-launch");
    vec![
        File {
            path: format!("{UNIT_DIR}/{TEMPLATE_NAME}"),
            bytes: unit(&exe).into_bytes(),
            mode: 0o644,
        },
        File {
            path: format!("{GENERATOR_DIR}/{GENERATOR_NAME}"),
            bytes: generator_script(&exe, &format!("/{UNIT_DIR}/{TEMPLATE_NAME}")).into_bytes(),
            mode: 0o755,
        },
        unit_file(
            AUTO_UPDATE_SERVICE_NAME,
            AUTO_UPDATE_SERVICE,
            AUTO_UPDATE_DOCUMENTATION,
        ),
        unit_file(
            AUTO_UPDATE_TIMER_NAME,
            AUTO_UPDATE_TIMER,
            AUTO_UPDATE_DOCUMENTATION,
        ),
        unit_file(BACKUP_SERVICE_NAME, BACKUP_SERVICE, BACKUP_DOCUMENTATION),
        unit_file(BACKUP_TIMER_NAME, BACKUP_TIMER, BACKUP_DOCUMENTATION),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unit_and_generator_name_the_packaged_paths() {
        let f = files();
        let unit = String::from_utf8_lossy(&f[0].bytes);
        assert!(
            unit.contains("ExecStart=/usr/bin/host-launch run -q /etc/host-launch/%i.json"),
            "{unit}"
        );
        assert!(!unit.contains("@HOST_LAUNCH@"), "{unit}");
        assert!(
            unit.contains(&format!(
                "\n{DOCUMENTATION}\nDocumentation=man:systemd.service(5)\n"
            )),
            "{unit}"
        );
        let generator = String::from_utf8_lossy(&f[1].bytes);
        assert!(
            generator.contains(
                "exec /usr/bin/host-launch systemd-generator --template \
                 /usr/lib/systemd/system/host-launch@.service \"$@\""
            ),
            "{generator}"
        );
        assert_eq!(f[1].mode, 0o755);
        let service = String::from_utf8_lossy(&f[2].bytes);
        assert_eq!(
            f[2].path,
            "usr/lib/systemd/system/host-launch-auto-update@.service"
        );
        assert!(
            service.contains(&format!(
                "(check, rebuild, roll out)\n{AUTO_UPDATE_DOCUMENTATION}\n"
            )),
            "{service}"
        );
        assert!(
            service.contains("ExecStart=/usr/lib/host-launch/host-launch-auto-update "),
            "{service}"
        );
        let timer = String::from_utf8_lossy(&f[3].bytes);
        assert!(timer.contains(AUTO_UPDATE_DOCUMENTATION) && timer.contains("OnCalendar=daily"));
        assert_eq!(
            f[4].path,
            "usr/lib/systemd/system/host-launch-backup@.service"
        );
        let backup = String::from_utf8_lossy(&f[4].bytes);
        assert!(
            backup.contains(BACKUP_DOCUMENTATION)
                && backup.contains(
                    "ExecStart=/usr/bin/host-launch backup %i --to /var/lib/host-launch/backups/%i"
                ),
            "{backup}"
        );
        let timer = String::from_utf8_lossy(&f[5].bytes);
        assert!(timer.contains(BACKUP_DOCUMENTATION) && timer.contains("OnCalendar=daily"));
    }
}
