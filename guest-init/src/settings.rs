//! Kernel settings from the contract: the hostname and sysctls.

use std::collections::BTreeMap;
use std::fmt;

/// A setting the kernel refused, with the contract path at fault.
#[derive(Debug)]
pub struct SettingError {
    pub at: String,
    pub message: String,
}

impl fmt::Display for SettingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

impl std::error::Error for SettingError {}

pub fn set_hostname(name: &str) -> Result<(), SettingError> {
    nix::unistd::sethostname(name).map_err(|e| SettingError {
        at: "hostname".into(),
        message: format!("the kernel refused '{name}': {e}"),
    })
}

/// `net.ipv4.ip_forward` → `/proc/sys/net/ipv4/ip_forward` (a '/' form is taken as is).
pub fn sysctl_path(key: &str) -> String {
    if key.contains('/') {
        format!("/proc/sys/{key}")
    } else {
        format!("/proc/sys/{}", key.replace('.', "/"))
    }
}

/// Writes each sysctl, in key order.
pub fn apply_sysctls(settings: &BTreeMap<String, String>) -> Result<(), SettingError> {
    for (key, value) in settings {
        let path = sysctl_path(key);
        std::fs::write(&path, value.as_bytes()).map_err(|e| SettingError {
            at: format!("sysctl.{key}"),
            message: match e.kind() {
                std::io::ErrorKind::NotFound => format!("{path} does not exist in this kernel; check the name or load the module that provides it"),
                _ => format!("the kernel refused '{value}' for {path}: {e}"),
            },
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysctl_names_map_to_proc_paths() {
        assert_eq!(
            sysctl_path("net.ipv4.ip_forward"),
            "/proc/sys/net/ipv4/ip_forward"
        );
        assert_eq!(
            sysctl_path("net/ipv4/conf/vec0.1/forwarding"),
            "/proc/sys/net/ipv4/conf/vec0.1/forwarding"
        );
    }
}
