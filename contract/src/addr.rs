//! Parsing of the address notations the contract uses: CIDR, IP literals and MAC addresses.
//!
//! Errors are sentences meant to follow "<json path>: ", naming what was expected.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An address with its prefix length, e.g. `192.0.2.10/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    pub fn is_ipv6(&self) -> bool {
        self.addr.is_ipv6()
    }

    /// The network this prefix names: the address with its host bits cleared.
    pub fn network(&self) -> Cidr {
        let addr = match self.addr {
            IpAddr::V4(a) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
            }
        };
        Cidr {
            addr,
            prefix: self.prefix,
        }
    }

    /// Whether `ip` is on this prefix's network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv6() == self.is_ipv6()
            && Cidr {
                addr: ip,
                prefix: self.prefix,
            }
            .network()
                == self.network()
    }

    /// True for `0.0.0.0/0` and `::/0`.
    pub fn is_default(&self) -> bool {
        self.prefix == 0
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The address family a text was taken to be: one with a ':' is IPv6, any other IPv4, so the
/// error names the family the user meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    fn of(s: &str) -> Family {
        if s.contains(':') {
            Family::V6
        } else {
            Family::V4
        }
    }

    fn name(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }

    fn max_prefix(self) -> u8 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }

    fn cidr_example(self) -> &'static str {
        match self {
            Family::V4 => "192.0.2.10/24",
            Family::V6 => "2001:db8::10/64",
        }
    }

    fn ip_example(self) -> &'static str {
        match self {
            Family::V4 => "192.0.2.1",
            Family::V6 => "2001:db8::1",
        }
    }
}

/// Why a text is not the address it should be; each holds the text as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddrError {
    #[error("'{text}' is not an {} CIDR (expected e.g. '{}')", family.name(), family.cidr_example())]
    NotCidr { text: String, family: Family },
    #[error("'{text}' has no prefix length (expected e.g. '{}')", family.cidr_example())]
    NoPrefix { text: String, family: Family },
    #[error("'{text}': the prefix length must be 0 to {} for {}", family.max_prefix(), family.name())]
    Prefix { text: String, family: Family },
    #[error("'{text}' is not an {} address (expected e.g. '{}')", family.name(), family.ip_example())]
    NotIp { text: String, family: Family },
    #[error("'{0}' is not a MAC address (expected six hex pairs, e.g. '02:00:00:00:00:01')")]
    NotMac(String),
    #[error("'{0}' is a multicast MAC address; the first byte must be even (e.g. '02:...')")]
    MulticastMac(String),
    /// `what` the address is (loopback, multicast...).
    #[error("'{text}' is {what}, which an interface cannot have; give a unicast address, e.g. '192.0.2.10/24'")]
    NotUnicast { text: String, what: &'static str },
    /// `example` is the subnet's first host address.
    #[error("'{text}' is the network address of {net}; a host needs one with host bits set, e.g. '{example}/{}'", net.prefix)]
    NetworkAddress {
        text: String,
        net: Cidr,
        example: Ipv4Addr,
    },
    /// `example` is the subnet's last host address.
    #[error("'{text}' is the broadcast address of {net}; give a host address, e.g. '{example}/{}'", net.prefix)]
    BroadcastAddress {
        text: String,
        net: Cidr,
        example: Ipv4Addr,
    },
}

/// Parses `ADDR/PREFIX`. An address with a ':' is taken to be IPv6, any other IPv4, so the
/// error names the family the user meant.
pub fn parse_cidr(s: &str) -> Result<Cidr, AddrError> {
    let family = Family::of(s);
    let bad = || AddrError::NotCidr {
        text: s.to_string(),
        family,
    };
    let (addr, prefix) = s.split_once('/').ok_or_else(|| AddrError::NoPrefix {
        text: s.to_string(),
        family,
    })?;
    let addr: IpAddr = match family {
        Family::V6 => addr.parse::<Ipv6Addr>().map_err(|_| bad())?.into(),
        Family::V4 => addr.parse::<Ipv4Addr>().map_err(|_| bad())?.into(),
    };
    let prefix: u8 = prefix
        .parse()
        .ok()
        .filter(|p| *p <= family.max_prefix() && !prefix.starts_with('+'))
        .ok_or_else(|| AddrError::Prefix {
            text: s.to_string(),
            family,
        })?;
    Ok(Cidr { addr, prefix })
}

/// Parses an IPv4 or IPv6 literal.
pub fn parse_ip(s: &str) -> Result<IpAddr, AddrError> {
    s.parse::<IpAddr>().map_err(|_| AddrError::NotIp {
        text: s.to_string(),
        family: Family::of(s),
    })
}

/// Parses a unicast MAC address `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Result<[u8; 6], AddrError> {
    let bad = || AddrError::NotMac(s.to_string());
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for byte in out.iter_mut() {
        let part = parts.next().ok_or_else(bad)?;
        if part.len() != 2 {
            return Err(bad());
        }
        *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
    }
    if parts.next().is_some() {
        return Err(bad());
    }
    if out[0] & 1 == 1 {
        return Err(AddrError::MulticastMac(s.to_string()));
    }
    Ok(out)
}

/// Netmask (`255.255.255.0`) to prefix length; `None` if the mask is not contiguous.
pub fn netmask_to_prefix(mask: Ipv4Addr) -> Option<u8> {
    let bits = u32::from(mask);
    let ones = bits.leading_ones();
    // leading_ones of a u32 is at most 32.
    let ones8 = u8::try_from(ones).ok()?;
    (bits.checked_shl(ones).unwrap_or(0) == 0).then_some(ones8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_accepts_both_families() {
        let c = parse_cidr("192.0.2.10/24").unwrap();
        assert_eq!(c.prefix, 24);
        assert!(!c.is_ipv6());
        let c = parse_cidr("2001:db8::10/64").unwrap();
        assert!(c.is_ipv6());
        assert_eq!(c.to_string(), "2001:db8::10/64");
    }

    #[test]
    fn cidr_errors_name_the_family() {
        assert_eq!(
            parse_cidr("10.0.0.300/24").unwrap_err().to_string(),
            "'10.0.0.300/24' is not an IPv4 CIDR (expected e.g. '192.0.2.10/24')"
        );
        assert!(parse_cidr("2001:db8::g/64")
            .unwrap_err()
            .to_string()
            .contains("IPv6"));
        assert!(parse_cidr("10.0.0.1")
            .unwrap_err()
            .to_string()
            .contains("no prefix length"));
        assert!(parse_cidr("10.0.0.1/33")
            .unwrap_err()
            .to_string()
            .contains("0 to 32"));
        assert!(parse_cidr("::1/129")
            .unwrap_err()
            .to_string()
            .contains("0 to 128"));
    }

    #[test]
    fn mac_parsing() {
        assert_eq!(
            parse_mac("02:00:5e:10:00:01").unwrap(),
            [2, 0, 0x5e, 0x10, 0, 1]
        );
        assert!(parse_mac("02:00:5e:10:00").is_err());
        assert!(parse_mac("02:00:5e:10:00:01:02").is_err());
        assert!(parse_mac("01:00:5e:10:00:01")
            .unwrap_err()
            .to_string()
            .contains("multicast"));
    }

    #[test]
    fn network_clears_host_bits() {
        let c = parse_cidr("198.51.100.5/24").unwrap();
        assert_eq!(c.network().to_string(), "198.51.100.0/24");
        assert_eq!(
            parse_cidr("10.1.2.3/0").unwrap().network().to_string(),
            "0.0.0.0/0"
        );
        assert_eq!(
            parse_cidr("10.1.2.3/32").unwrap().network().to_string(),
            "10.1.2.3/32"
        );
        assert_eq!(
            parse_cidr("2001:db8::1/64").unwrap().network().to_string(),
            "2001:db8::/64"
        );
    }

    #[test]
    fn netmasks() {
        assert_eq!(
            netmask_to_prefix("255.255.255.0".parse().unwrap()),
            Some(24)
        );
        assert_eq!(netmask_to_prefix("0.0.0.0".parse().unwrap()), Some(0));
        assert_eq!(
            netmask_to_prefix("255.255.255.255".parse().unwrap()),
            Some(32)
        );
        assert_eq!(netmask_to_prefix("255.0.255.0".parse().unwrap()), None);
    }
}
