//! The network section: interface names, addresses, routes (gateways the guest can reach,
//! no duplicates the kernel would refuse), resolvers and search domains.

use super::{check_domain, Checker};
use crate::addr::{parse_cidr, parse_ip, parse_mac, AddrError, Cidr};
use crate::types::*;
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

pub(super) fn check_network(ck: &mut Checker, net: &Network) {
    let (names, mut subnets) = check_interfaces(ck, net);
    // Routes without a gateway put their destination on the link: a later gateway may be there.
    for r in &net.routes {
        if let (None, Some(i), Ok(d)) = (&r.gateway, &r.interface, parse_cidr(&r.destination)) {
            subnets.push((i.as_str(), d.network()));
        }
    }
    for (i, r) in net.routes.iter().enumerate() {
        check_route(ck, &format!("network.routes[{i}]"), r, &names, &subnets);
    }
    check_duplicate_routes(ck, &net.routes);
    check_resolvers(ck, net);
}

/// The interfaces: names, MACs, addresses (each once) and MTUs. Returns the names and the
/// subnets the addresses are on, which the routes' checks need.
fn check_interfaces<'a>(
    ck: &mut Checker,
    net: &'a Network,
) -> (BTreeSet<&'a str>, Vec<(&'a str, Cidr)>) {
    let mut names = BTreeSet::new();
    // Every good address once, with where it was first given, and the subnets they are on.
    let mut seen_addresses: Vec<(IpAddr, String)> = Vec::new();
    let mut subnets: Vec<(&str, Cidr)> = Vec::new();
    for (i, iface) in net.interfaces.iter().enumerate() {
        let at = format!("network.interfaces[{i}]");
        ck.check(&format!("{at}.name"), check_ifname(&iface.name));
        if !names.insert(iface.name.as_str()) {
            ck.push(
                format!("{at}.name"),
                format!(
                    "interface '{}' is listed twice; merge its settings into one entry",
                    iface.name
                ),
            );
        }
        if let Some(mac) = &iface.mac {
            ck.check(&format!("{at}.mac"), parse_mac(mac).map(|_| ()));
        }
        let mut has_v6 = false;
        for (j, a) in iface.addresses.iter().enumerate() {
            let path = format!("{at}.addresses[{j}]");
            match parse_cidr(a).and_then(|c| check_host_address(a, c).map(|()| c)) {
                Ok(c) => {
                    has_v6 |= c.is_ipv6();
                    match seen_addresses.iter().find(|(ip, _)| *ip == c.addr) {
                        Some((_, first)) => ck.push(
                            &path,
                            format!("'{a}': the address {} is already given at {first}; give each address once", c.addr),
                        ),
                        None => seen_addresses.push((c.addr, path.clone())),
                    }
                    subnets.push((iface.name.as_str(), c.network()));
                }
                Err(m) => ck.push(path, m.to_string()),
            }
        }
        if let Some(mtu) = iface.mtu {
            let min = if has_v6 { 1280 } else { 68 };
            if !(min..=65535).contains(&mtu) {
                ck.push(
                    format!("{at}.mtu"),
                    format!(
                        "{mtu} is out of range; use {min} to 65535{}",
                        if has_v6 {
                            " (IPv6 needs at least 1280)"
                        } else {
                            ""
                        }
                    ),
                );
            }
        }
    }
    (names, subnets)
}

/// resolv.conf's servers and search domains.
fn check_resolvers(ck: &mut Checker, net: &Network) {
    if net.dns_servers.len() > 3 {
        ck.push(
            "network.dns_servers",
            format!(
                "{} servers given; resolv.conf uses at most 3, so list the 3 preferred",
                net.dns_servers.len()
            ),
        );
    }
    for (i, s) in net.dns_servers.iter().enumerate() {
        ck.check(
            &format!("network.dns_servers[{i}]"),
            parse_ip(s).map(|_| ()),
        );
    }
    if net.search_domains.len() > 6 {
        ck.push(
            "network.search_domains",
            "at most 6 search domains are allowed (resolv.conf limit)",
        );
    }
    for (i, d) in net.search_domains.iter().enumerate() {
        ck.check(&format!("network.search_domains[{i}]"), check_domain(d));
    }
}

/// A name the kernel would refuse for an interface.
#[derive(Debug, thiserror::Error)]
#[error("'{0}' is not an interface name (1 to 15 characters, no '/', ':' or spaces, e.g. 'vec0')")]
struct IfnameError(String);

fn check_ifname(name: &str) -> Result<(), IfnameError> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_graphic() && c != '/' && c != ':');
    if ok {
        Ok(())
    } else {
        Err(IfnameError(name.into()))
    }
}

/// An address an interface can have: not loopback, multicast or unspecified, and (IPv4 with a
/// prefix under 31) neither its subnet's network nor its broadcast address.
pub fn check_host_address(text: &str, c: Cidr) -> Result<(), AddrError> {
    let what = match c.addr {
        a if a.is_loopback() => Some("a loopback address (the guest's lo has it already)"),
        a if a.is_multicast() => Some("a multicast address"),
        a if a.is_unspecified() => Some("the unspecified address"),
        IpAddr::V4(a) if a.is_broadcast() => Some("the limited broadcast address"),
        _ => None,
    };
    if let Some(what) = what {
        return Err(AddrError::NotUnicast {
            text: text.to_string(),
            what,
        });
    }
    if let IpAddr::V4(a) = c.addr {
        if c.prefix < 31 {
            let net = c.network();
            let host_mask = u32::MAX >> c.prefix;
            if c.addr == net.addr {
                return Err(AddrError::NetworkAddress {
                    text: text.to_string(),
                    net,
                    example: Ipv4Addr::from(u32::from(a) | 1),
                });
            }
            if u32::from(a) & host_mask == host_mask {
                return Err(AddrError::BroadcastAddress {
                    text: text.to_string(),
                    net,
                    example: Ipv4Addr::from(u32::from(a) - 1),
                });
            }
        }
    }
    Ok(())
}

fn check_route(
    ck: &mut Checker,
    at: &str,
    r: &Route,
    ifaces: &BTreeSet<&str>,
    subnets: &[(&str, Cidr)],
) {
    let dest = match parse_cidr(&r.destination) {
        Ok(d) if d.network() != d => {
            ck.push(
                format!("{at}.destination"),
                format!(
                    "'{}' has host bits set; write the network, '{}'",
                    r.destination,
                    d.network()
                ),
            );
            Some(d)
        }
        Ok(d) => Some(d),
        Err(m) => {
            ck.push(
                format!("{at}.destination"),
                format!("{m}; use '0.0.0.0/0' or '::/0' for a default route"),
            );
            None
        }
    };
    match (&r.gateway, dest) {
        (Some(gw), dest) => match parse_ip(gw) {
            Ok(ip) => {
                let family_ok = dest.is_none_or(|d| ip.is_ipv6() == d.is_ipv6());
                if !family_ok {
                    ck.push(
                        format!("{at}.gateway"),
                        format!(
                            "gateway '{gw}' and destination '{}' are of different IP families",
                            r.destination
                        ),
                    );
                } else if let Some(m) = unreachable_gateway(gw, ip, r.interface.as_deref(), subnets)
                {
                    ck.push(format!("{at}.gateway"), m);
                }
            }
            Err(m) => ck.push(format!("{at}.gateway"), m.to_string()),
        },
        (None, _) if r.interface.is_none() => {
            ck.push(at, "a route needs a gateway, an interface, or both");
        }
        _ => {}
    }
    if let Some(i) = &r.interface {
        if !ifaces.contains(i.as_str()) {
            ck.push(
                format!("{at}.interface"),
                format!("'{i}' is not one of network.interfaces; add it there or fix the name"),
            );
        }
    }
}

/// A second route to the same destination with the same metric is refused by the kernel at
/// boot ("File exists"); for IPv6 one with another next hop is a multipath route, so only an
/// identical one is.
fn check_duplicate_routes(ck: &mut Checker, routes: &[Route]) {
    // (destination, metric, gateway, interface, index) of each route kept.
    type Seen<'a> = (Cidr, Option<u32>, Option<&'a str>, Option<&'a str>, usize);
    let mut seen: Vec<Seen> = Vec::new();
    for (i, r) in routes.iter().enumerate() {
        let Ok(dest) = parse_cidr(&r.destination) else {
            continue;
        };
        let dest = dest.network();
        let (gw, dev) = (r.gateway.as_deref(), r.interface.as_deref());
        let first = seen.iter().find(|(d, m, g, i, _)| {
            *d == dest && *m == r.metric && (!dest.is_ipv6() || (*g == gw && *i == dev))
        });
        match first {
            Some((_, _, _, _, j)) => ck.push(
                format!("network.routes[{i}]"),
                format!(
                    "a route to {dest} with {} is already network.routes[{j}]; the kernel would refuse this one at boot (give it another metric or remove it)",
                    r.metric.map_or("the default metric".to_string(), |m| format!("metric {m}"))
                ),
            ),
            None => seen.push((dest, r.metric, gw, dev, i)),
        }
    }
}

/// Why the kernel would refuse `gw` as a next hop ("Nexthop has invalid gateway"): it is on
/// none of the subnets of the guest's addresses (of `interface`, when the route names one) or
/// of its on-link routes. An IPv6 link-local gateway is on every link, given the interface.
fn unreachable_gateway(
    gw: &str,
    ip: IpAddr,
    interface: Option<&str>,
    subnets: &[(&str, Cidr)],
) -> Option<String> {
    if let IpAddr::V6(v6) = ip {
        if v6.segments()[0] & 0xffc0 == 0xfe80 {
            return interface.is_none().then(|| {
                format!("'{gw}' is link-local; name the route's interface, which link it is on")
            });
        }
    }
    let candidates: Vec<&Cidr> = subnets
        .iter()
        .filter(|(name, _)| interface.is_none_or(|i| i == *name))
        .map(|(_, c)| c)
        .collect();
    if candidates.iter().any(|c| c.contains(ip)) {
        return None;
    }
    let on: Vec<String> = candidates
        .iter()
        .filter(|c| c.is_ipv6() == ip.is_ipv6())
        .map(|c| c.to_string())
        .collect();
    let whose = match interface {
        Some(i) => format!("of interface '{i}'"),
        None => "of the guest's".to_string(),
    };
    Some(if on.is_empty() {
        format!(
            "'{gw}' cannot be reached: no address {whose} is of its family; the kernel would refuse the route at boot"
        )
    } else {
        format!(
            "'{gw}' is on none of the subnets {whose} ({}); the kernel would refuse the route at boot: use a gateway on one of them",
            on.join(", ")
        )
    })
}
