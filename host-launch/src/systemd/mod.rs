//! Appliances as systemd services: the template unit `host-launch@.service` (shipped in
//! `host-launch/systemd/`), its installation ([`install`]) and the generator
//! ([`generator`], systemd.generator(7)) that turns each `/etc/host-launch/NAME.json` into a
//! drop-in of `host-launch@NAME.service` ([`dropin`]: `needs` → `Wants=`/`After=`, memory
//! and CPU → `MemoryMax=`/`TasksMax=`/`CPUWeight=`) and enables it at boot; the upgrade of a
//! unit-run appliance ([`unit_upgrade`]: its spec rewritten atomically by [`spec_file`], then
//! `systemctl restart`). The notification protocol itself is [`crate::notify`].

pub mod dropin;
pub mod generator;
pub mod install;
pub mod spec_file;
pub mod unit_upgrade;

/// Where the operator's specs are: `host-launch@NAME` runs `SPEC_DIR/NAME.json`.
pub const SPEC_DIR: &str = "/etc/host-launch";
/// The template unit, with `@HOST_LAUNCH@` for the launcher's path.
pub const TEMPLATE: &str = include_str!("../../systemd/host-launch@.service");
/// The template's file name.
pub const TEMPLATE_NAME: &str = "host-launch@.service";

/// The unattended security update (README, "Fleet updates"): the service template that runs
/// the script with `/etc/host-launch/auto-update/NAME.conf`, and its daily timer (enabled by
/// no one: off until an operator enables one).
pub const AUTO_UPDATE_SERVICE: &str =
    include_str!("../../systemd/host-launch-auto-update@.service");
pub const AUTO_UPDATE_TIMER: &str = include_str!("../../systemd/host-launch-auto-update@.timer");
/// Their file names.
pub const AUTO_UPDATE_SERVICE_NAME: &str = "host-launch-auto-update@.service";
pub const AUTO_UPDATE_TIMER_NAME: &str = "host-launch-auto-update@.timer";

/// Scheduled backups (host-launch/README.md, "Backup and restore"): the service template that
/// runs `host-launch backup NAME` into /var/lib/host-launch/backups/NAME, and its daily timer
/// (off until an operator enables one).
pub const BACKUP_SERVICE: &str = include_str!("../../systemd/host-launch-backup@.service");
pub const BACKUP_TIMER: &str = include_str!("../../systemd/host-launch-backup@.timer");
/// Their file names.
pub const BACKUP_SERVICE_NAME: &str = "host-launch-backup@.service";
pub const BACKUP_TIMER_NAME: &str = "host-launch-backup@.timer";

/// `host-launch@NAME.service`.
pub fn unit_name(name: &str) -> String {
    format!("host-launch@{name}.service")
}

/// The template with the launcher's path in `ExecStart=`.
pub fn template_unit(host_launch: &str) -> String {
    TEMPLATE.replace("@HOST_LAUNCH@", host_launch)
}
