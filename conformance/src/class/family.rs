//! The address families a class suite boots an image with (docs/classes/README.md, "Address
//! families"): IPv4 only, IPv6 only and both, each with the guest's addresses the battery
//! then talks to.

use std::net::IpAddr;

/// The guest's IPv4 address in every class boot (the host side is 192.0.2.1/24 on `tap0`).
pub const GUEST_V4: &str = "192.0.2.10";
/// The guest's IPv6 address (the host side is 2001:db8::1/64 on `tap0`).
pub const GUEST_V6: &str = "2001:db8::10";

/// A `--family` value that names no family.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not an address family; use ipv4, ipv6 or dual")]
pub struct UnknownFamily(String);

/// Which addresses the spec gives the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Ipv4,
    Ipv6,
    Dual,
}

impl Family {
    /// Every family, in the order a suite runs them.
    pub const ALL: [Family; 3] = [Family::Ipv4, Family::Ipv6, Family::Dual];

    /// `ipv4`, `ipv6` or `dual`, as `--family` takes them.
    pub fn parse(s: &str) -> Result<Family, UnknownFamily> {
        Family::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| UnknownFamily(s.into()))
    }

    pub fn name(self) -> &'static str {
        match self {
            Family::Ipv4 => "ipv4",
            Family::Ipv6 => "ipv6",
            Family::Dual => "dual",
        }
    }

    /// The guest's addresses, as the spec's `network.addresses` gives them.
    pub fn cidrs(self) -> Vec<String> {
        self.guests()
            .into_iter()
            .map(|a| match a {
                IpAddr::V4(_) => format!("{a}/24"),
                IpAddr::V6(_) => format!("{a}/64"),
            })
            .collect()
    }

    /// The addresses the battery is run against: every one the guest has.
    pub fn guests(self) -> Vec<IpAddr> {
        let v4 = IpAddr::from([192, 0, 2, 10]);
        let v6 = IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10]);
        match self {
            Family::Ipv4 => vec![v4],
            Family::Ipv6 => vec![v6],
            Family::Dual => vec![v4, v6],
        }
    }
}

/// `a` as a URL's host: IPv6 in brackets.
pub fn url_host(a: IpAddr) -> String {
    match a {
        IpAddr::V4(_) => a.to_string(),
        IpAddr::V6(_) => format!("[{a}]"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_match_the_constants() {
        assert_eq!(Family::Ipv4.guests()[0].to_string(), GUEST_V4);
        assert_eq!(Family::Ipv6.guests()[0].to_string(), GUEST_V6);
        assert_eq!(Family::Dual.cidrs(), ["192.0.2.10/24", "2001:db8::10/64"]);
        assert_eq!(Family::parse("dual"), Ok(Family::Dual));
        assert!(Family::parse("ipx")
            .unwrap_err()
            .to_string()
            .contains("ipv4, ipv6 or dual"));
        assert_eq!(url_host(Family::Ipv6.guests()[0]), "[2001:db8::10]");
    }
}
