//! Network setup from the contract's `network` section, over rtnetlink.
//!
//! The netlink messages are written by hand (the `netlink` submodule, `netlink.rs`): the
//! four requests we need do not justify a netlink crate tree in a PID 1 that has a size budget.
//! Every request asks for an ACK, so a setting the kernel refuses comes back as an error that
//! names the contract's JSON path, the value, and the kernel's errno (plus its extended-ACK
//! message when it gives one, e.g. "Nexthop has invalid gateway").
//!
//! Order matters and follows what drivers need: MAC (while the link is down), MTU, IPv6 policy
//! (`ipv6.rs`, while the link is down), addresses, the IPv4 announcement (`announce.rs`, before
//! the link goes up), link up, the IPv6 announcements, and only then routes, whose gateways the
//! kernel checks against the connected prefixes that exist only once the links are up.

use contract::addr::Cidr;
use contract::checked::{Interface, Network, Route};
use nix::errno::Errno;
use std::fmt;
use std::net::IpAddr;

mod announce;
mod ipv6;
pub use announce::Announcement;
mod netlink;
use netlink as nl;

/// What [`configure`] set, as short lines for the status event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Links brought up, e.g. `vec0 mtu 1400 mac 02:00:00:00:00:01`.
    pub links: Vec<String>,
    /// Addresses, e.g. `vec0 192.0.2.10/24`.
    pub addresses: Vec<String>,
    /// Routes, e.g. `0.0.0.0/0 via 192.0.2.1 dev vec0 metric 100`.
    pub routes: Vec<String>,
    /// What did not stop the network but is worth a line on the console (an address that
    /// could not be announced).
    pub notes: Vec<String>,
    /// Each interface's addresses, announced again once the service is ready.
    pub announce: Vec<Announcement>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "links: [{}]; addresses: [{}]; routes: [{}]",
            self.links.join(", "),
            self.addresses.join(", "),
            self.routes.join(", ")
        )
    }
}

/// Why the network could not be set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetError {
    /// The netlink socket itself failed (`op` is e.g. "open", "send", "receive").
    Socket { op: &'static str, errno: Errno },
    /// The kernel's reply did not have the expected shape.
    Protocol { what: String },
    /// The contract names an interface the kernel does not have.
    NoSuchInterface {
        path: String,
        name: String,
        existing: Vec<String>,
    },
    /// A per-interface IPv6 setting could not be written (`file` under /proc/sys).
    Setting {
        path: String,
        file: String,
        error: String,
    },
    /// The kernel refused a request. `path` is `None` for the loopback, which the contract
    /// does not describe.
    Refused {
        path: Option<String>,
        what: String,
        errno: Errno,
        detail: Option<String>,
    },
}

impl NetError {
    /// The contract JSON path of the setting at fault, if the error is about one.
    pub fn path(&self) -> Option<&str> {
        match self {
            NetError::NoSuchInterface { path, .. } => Some(path),
            NetError::Refused { path, .. } => path.as_deref(),
            NetError::Setting { path, .. } => Some(path),
            NetError::Socket { .. } | NetError::Protocol { .. } => None,
        }
    }
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetError::Socket { op, errno } => {
                write!(
                    f,
                    "netlink socket {op} failed: {}",
                    crate::errno::text(*errno)
                )
            }
            NetError::Protocol { what } => write!(f, "unexpected netlink reply: {what}"),
            NetError::Setting { path, file, error } => write!(f, "{path}: writing {file}: {error}"),
            NetError::NoSuchInterface {
                path,
                name,
                existing,
            } => write!(
                f,
                "{path}: the guest has no interface '{name}' (it has: {})",
                existing.join(", ")
            ),
            NetError::Refused {
                path,
                what,
                errno,
                detail,
            } => {
                if let Some(p) = path {
                    write!(f, "{p} ")?;
                }
                write!(
                    f,
                    "{what}: the kernel refused: {}",
                    crate::errno::text(*errno)
                )?;
                if let Some(d) = detail {
                    write!(f, ": {d}")?;
                }
                if *errno == Errno::EAFNOSUPPORT {
                    write!(f, " (is the ipv6 module loaded?)")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for NetError {}

/// Turns a netlink failure into a [`NetError`] naming the setting the request was for.
fn refused(path: Option<&str>, what: &str) -> impl FnOnce(nl::Failure) -> NetError {
    let path = path.map(str::to_string);
    let what = what.to_string();
    move |failure| match failure {
        nl::Failure::Socket { op, errno } => NetError::Socket { op, errno },
        nl::Failure::Protocol(what) => NetError::Protocol { what },
        nl::Failure::Kernel { errno, detail } => NetError::Refused {
            path,
            what,
            errno,
            detail,
        },
    }
}

/// Brings the loopback up; for guests whose contract has no network section (services still
/// talk to themselves over 127.0.0.1).
pub fn loopback_up() -> Result<(), NetError> {
    let mut sock = nl::Socket::open().map_err(refused(None, "opening"))?;
    let links = list_links(&mut sock)?;
    loopback_up_on(&mut sock, &links)
}

fn loopback_up_on(sock: &mut nl::Socket, links: &[Link]) -> Result<(), NetError> {
    let lo = find_link(links, "lo", "loopback")?;
    let req = nl::link_flags(lo.index, libc::IFF_UP as u32);
    sock.request(req).map_err(refused(None, "link up on lo"))
}

/// Configures interfaces and routes as the (validated) contract says. Every interface is
/// looked up before anything changes, so a misnamed interface leaves the guest untouched.
pub fn configure(net: &Network) -> Result<Report, NetError> {
    let mut sock = nl::Socket::open().map_err(refused(None, "opening"))?;
    let links = list_links(&mut sock)?;
    loopback_up_on(&mut sock, &links)?;
    let mut found = Vec::with_capacity(net.interfaces.len());
    for (i, iface) in net.interfaces.iter().enumerate() {
        found.push(find_link(
            &links,
            &iface.name,
            &format!("network.interfaces[{i}].name"),
        )?);
    }
    let mut report = Report::default();
    for (i, (iface, link)) in net.interfaces.iter().zip(found).enumerate() {
        let at = format!("network.interfaces[{i}]");
        let policy = ipv6::policy(iface, &net.routes);
        configure_interface(&mut sock, &at, iface, link, policy, &mut report)?;
    }
    for (i, route) in net.routes.iter().enumerate() {
        let at = format!("network.routes[{i}]");
        add_route(&mut sock, &at, route, &links, &mut report)?;
    }
    Ok(report)
}

/// One kernel link, from the RTM_GETLINK dump.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Link {
    index: u32,
    name: String,
    up: bool,
    mac: Option<[u8; 6]>,
}

fn list_links(sock: &mut nl::Socket) -> Result<Vec<Link>, NetError> {
    let replies = sock
        .dump(nl::link_dump())
        .map_err(refused(None, "listing interfaces"))?;
    Ok(replies
        .iter()
        .filter_map(|payload| nl::parse_link(payload))
        .map(|l| Link {
            index: l.index,
            name: l.name,
            up: l.flags & libc::IFF_UP as u32 != 0,
            mac: l.mac,
        })
        .collect())
}

fn find_link<'a>(links: &'a [Link], name: &str, path: &str) -> Result<&'a Link, NetError> {
    links
        .iter()
        .find(|l| l.name == name)
        .ok_or_else(|| NetError::NoSuchInterface {
            path: path.to_string(),
            name: name.to_string(),
            existing: links.iter().map(|l| l.name.clone()).collect(),
        })
}

fn configure_interface(
    sock: &mut nl::Socket,
    at: &str,
    iface: &Interface,
    link: &Link,
    policy: ipv6::Policy,
    report: &mut Report,
) -> Result<(), NetError> {
    let name = &iface.name;
    let mut line = name.clone();
    if let Some(mac) = iface.mac {
        let text = mac_text(mac);
        set_mac(sock, &format!("{at}.mac"), link, mac, &text)?;
        line.push_str(&format!(" mac {text}"));
    }
    if let Some(mtu) = iface.mtu {
        let what = format!("{mtu} on {name}");
        let req = nl::link_mtu(link.index, mtu);
        sock.request(req)
            .map_err(refused(Some(&format!("{at}.mtu")), &what))?;
        line.push_str(&format!(" mtu {mtu}"));
    }
    // Before the link goes up: that is when the kernel would start IPv6 autoconfiguration.
    if ipv6::apply(at, name, policy)? && policy == ipv6::Policy::Off {
        line.push_str(" ipv6 off");
    }
    for (j, &cidr) in iface.addresses.iter().enumerate() {
        let path = format!("{at}.addresses[{j}]");
        let what = format!("{cidr} on {name}");
        sock.request(nl::new_address(link.index, cidr))
            .map_err(refused(Some(&path), &what))?;
        report.addresses.push(format!("{name} {cidr}"));
    }
    if iface.addresses.iter().any(|a| !a.is_ipv6()) {
        announce::arp_notify(at, name)?;
    }
    let req = nl::link_flags(link.index, libc::IFF_UP as u32);
    sock.request(req)
        .map_err(refused(Some(at), &format!("link up on {name}")))?;
    if let Some(mac) = iface.mac.or(link.mac) {
        let all = Announcement {
            name: name.clone(),
            index: link.index,
            mac,
            addresses: iface.addresses.iter().map(|c| c.addr).collect(),
        };
        // The kernel announced the IPv4 addresses as the link went up (arp_notify).
        let ipv6 = Announcement {
            addresses: all
                .addresses
                .iter()
                .filter(|a| a.is_ipv6())
                .copied()
                .collect(),
            ..all.clone()
        };
        report.notes.extend(ipv6.send());
        report.announce.push(all);
    }
    report.links.push(line);
    Ok(())
}

/// Sets the MAC address. Many drivers (UML's vector among them, via `eth_mac_addr`) refuse a
/// new address on a running link with EBUSY, so a link that is already up is taken down
/// first; `configure_interface` brings it up again afterwards.
fn set_mac(
    sock: &mut nl::Socket,
    path: &str,
    link: &Link,
    bytes: [u8; 6],
    text: &str,
) -> Result<(), NetError> {
    let what = format!("{text} on {}", link.name);
    if link.up {
        sock.request(nl::link_flags(link.index, 0))
            .map_err(refused(Some(path), &format!("link down on {}", link.name)))?;
    }
    sock.request(nl::link_mac(link.index, bytes))
        .map_err(refused(Some(path), &what))
}

fn add_route(
    sock: &mut nl::Socket,
    at: &str,
    route: &Route,
    links: &[Link],
    report: &mut Report,
) -> Result<(), NetError> {
    let dest = route.destination;
    let gateway = route.gateway;
    let oif = match &route.interface {
        Some(name) => Some(find_link(links, name, &format!("{at}.interface"))?.index),
        None => None,
    };
    let what = describe_route(dest, gateway, route.interface.as_deref(), route.metric);
    let spec = nl::RouteSpec {
        dest,
        gateway,
        oif,
        metric: route.metric,
    };
    sock.request(nl::new_route(&spec))
        .map_err(refused(Some(at), &what))?;
    report.routes.push(what);
    Ok(())
}

/// `ip route`-like text, used both in errors and in the report.
fn describe_route(
    dest: Cidr,
    gateway: Option<IpAddr>,
    dev: Option<&str>,
    metric: Option<u32>,
) -> String {
    let mut s = dest.to_string();
    if let Some(g) = gateway {
        s.push_str(&format!(" via {g}"));
    }
    if let Some(d) = dev {
        s.push_str(&format!(" dev {d}"));
    }
    if let Some(m) = metric {
        s.push_str(&format!(" metric {m}"));
    }
    s
}

/// `aa:bb:cc:dd:ee:ff`, as the contract writes it.
fn mac_text(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The text of /etc/resolv.conf: one `nameserver` line per server, in the contract's order of
/// preference, and a `search` line if there are search domains. Nothing else: the libc
/// defaults are right for a one-service guest. Empty when the contract gives neither.
pub fn resolv_conf(net: &Network) -> String {
    let mut out = String::new();
    for server in &net.dns_servers {
        out.push_str(&format!("nameserver {server}\n"));
    }
    if !net.search_domains.is_empty() {
        out.push_str(&format!("search {}\n", net.search_domains.join(" ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(servers: &[&str], search: &[&str]) -> Network {
        Network {
            dns_servers: servers.iter().map(|s| s.parse().unwrap()).collect(),
            search_domains: search.iter().map(|s| s.to_string()).collect(),
            ..Network::default()
        }
    }

    #[test]
    fn resolv_conf_lists_servers_in_order_then_search() {
        let n = net(
            &["192.0.2.53", "2001:db8::53"],
            &["example.org", "corp.example"],
        );
        assert_eq!(
            resolv_conf(&n),
            "nameserver 192.0.2.53\nnameserver 2001:db8::53\nsearch example.org corp.example\n"
        );
    }

    #[test]
    fn resolv_conf_omits_what_is_not_given() {
        assert_eq!(
            resolv_conf(&net(&["192.0.2.53"], &[])),
            "nameserver 192.0.2.53\n"
        );
        assert_eq!(
            resolv_conf(&net(&[], &["example.org"])),
            "search example.org\n"
        );
        assert_eq!(resolv_conf(&net(&[], &[])), "");
    }

    #[test]
    fn refusal_names_path_value_and_errno() {
        let e = NetError::Refused {
            path: Some("network.interfaces[0].addresses[1]".into()),
            what: "2001:db8::10/64 on vec0".into(),
            errno: Errno::EACCES,
            detail: None,
        };
        assert_eq!(
            e.to_string(),
            "network.interfaces[0].addresses[1] 2001:db8::10/64 on vec0: the kernel refused: \
             Permission denied (EACCES)"
        );
        assert_eq!(e.path(), Some("network.interfaces[0].addresses[1]"));
    }

    #[test]
    fn route_description_reads_like_ip_route() {
        let d = contract::addr::parse_cidr("198.51.100.0/24").unwrap();
        let g = "192.0.2.254".parse().ok();
        assert_eq!(
            describe_route(d, g, Some("vec0"), Some(50)),
            "198.51.100.0/24 via 192.0.2.254 dev vec0 metric 50"
        );
    }
}
