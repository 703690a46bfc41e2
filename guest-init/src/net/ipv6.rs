//! What IPv6 does on an interface by itself. The contract is an interface's whole
//! configuration, so the kernel's own additions are turned off before the link goes up:
//!
//! - An interface with no IPv6 address and no IPv6 route that could use it gets IPv6
//!   disabled: no link-local address, so no duplicate address detection, router
//!   solicitations or MLD reports. On a bridge every such multicast reaches every other
//!   appliance and wakes it; 500 booting appliances sent about 3 500 of them, each delivered to
//!   all 500.
//! - An interface with IPv6 keeps its link-local address (neighbour discovery needs it) but
//!   accepts no router advertisements, which would add addresses and routes the contract
//!   did not give (and, with them off, sends no router solicitations).
//!
//! The contract's `sysctl` section is applied after the network and can set either back.

use super::NetError;
use contract::addr::Cidr;
use contract::checked::{Interface, Route};
use std::path::Path;

/// The per-interface IPv6 sysctls live here; absent when the kernel has no IPv6.
const CONF: &str = "/proc/sys/net/ipv6/conf";

/// What the kernel's IPv6 may do on one interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// No IPv6 on the interface at all (`disable_ipv6`).
    Off,
    /// Static IPv6 only: no router advertisements (`accept_ra`).
    Static,
}

/// The policy for `iface`: off unless the contract gives it an IPv6 address, or an IPv6 route
/// names it or names no interface (and so may leave through it).
pub fn policy(iface: &Interface, routes: &[Route]) -> Policy {
    let has_address = iface.addresses.iter().any(Cidr::is_ipv6);
    let routed = routes.iter().any(|r| {
        let v6 = r.destination.is_ipv6() || r.gateway.is_some_and(|g| g.is_ipv6());
        v6 && r.interface.as_deref().is_none_or(|n| n == iface.name)
    });
    if has_address || routed {
        Policy::Static
    } else {
        Policy::Off
    }
}

/// The sysctl files and values of a policy.
pub fn settings(policy: Policy) -> &'static [(&'static str, &'static str)] {
    match policy {
        Policy::Off => &[("disable_ipv6", "1")],
        Policy::Static => &[("accept_ra", "0")],
    }
}

/// Writes the policy's settings for interface `name`; `Ok(false)` when the kernel has no IPv6
/// on it (none built in, or an MTU below IPv6's 1280: nothing to turn off, and an IPv6 address
/// on it is then the kernel's refusal). `at` is the interface's contract path, for errors.
pub fn apply(at: &str, name: &str, policy: Policy) -> Result<bool, NetError> {
    apply_under(Path::new(CONF), at, name, policy)
}

fn apply_under(conf: &Path, at: &str, name: &str, policy: Policy) -> Result<bool, NetError> {
    if !conf.join(name).is_dir() {
        return Ok(false);
    }
    for (key, value) in settings(policy) {
        let file = conf.join(name).join(key);
        std::fs::write(&file, value).map_err(|e| NetError::Setting {
            path: at.to_string(),
            file: file.display().to_string(),
            error: e.to_string(),
        })?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use contract::addr::parse_cidr;

    fn iface(addresses: &[&str]) -> Interface {
        Interface {
            name: "vec0".into(),
            mac: None,
            addresses: addresses.iter().map(|a| parse_cidr(a).unwrap()).collect(),
            mtu: None,
        }
    }

    fn route(dest: &str, gateway: Option<&str>, interface: Option<&str>) -> Route {
        Route {
            destination: parse_cidr(dest).unwrap(),
            gateway: gateway.map(|g| g.parse().unwrap()),
            interface: interface.map(str::to_string),
            metric: None,
        }
    }

    #[test]
    fn ipv4_only_interfaces_have_ipv6_off() {
        let v4 = iface(&["192.0.2.10/24"]);
        assert_eq!(policy(&v4, &[]), Policy::Off);
        let routes = [route("0.0.0.0/0", Some("192.0.2.1"), None)];
        assert_eq!(policy(&v4, &routes), Policy::Off);
        assert_eq!(policy(&iface(&[]), &[]), Policy::Off);
    }

    #[test]
    fn an_ipv6_address_or_route_keeps_ipv6_without_router_advertisements() {
        assert_eq!(policy(&iface(&["2001:db8::10/64"]), &[]), Policy::Static);
        let v4 = iface(&["192.0.2.10/24"]);
        // A route over the link-local gateway of this interface, or of any interface.
        let on_it = [route("::/0", Some("fe80::1"), Some("vec0"))];
        assert_eq!(policy(&v4, &on_it), Policy::Static);
        let anywhere = [route("2001:db8:1::/48", None, None)];
        assert_eq!(policy(&v4, &anywhere), Policy::Static);
        // One that names another interface does not.
        let elsewhere = [route("::/0", Some("fe80::1"), Some("vec1"))];
        assert_eq!(policy(&v4, &elsewhere), Policy::Off);
        assert_eq!(settings(Policy::Static), &[("accept_ra", "0")]);
        assert_eq!(settings(Policy::Off), &[("disable_ipv6", "1")]);
    }

    #[test]
    fn a_kernel_without_ipv6_has_nothing_to_turn_off() {
        let dir = std::env::temp_dir().join(format!("ipv6-none-{}", std::process::id()));
        assert!(!apply_under(&dir, "network.interfaces[0]", "vec0", Policy::Off).unwrap());
    }

    #[test]
    fn a_setting_that_cannot_be_written_names_the_interface() {
        let dir = std::env::temp_dir().join(format!("ipv6-conf-{}", std::process::id()));
        // A directory where the file should be: the write fails.
        std::fs::create_dir_all(dir.join("vec9/disable_ipv6")).unwrap();
        let err = apply_under(&dir, "network.interfaces[1]", "vec9", Policy::Off).unwrap_err();
        assert_eq!(err.path(), Some("network.interfaces[1]"));
        assert!(err.to_string().contains("vec9/disable_ipv6"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
