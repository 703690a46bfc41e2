//! The network policy of one appliance, derived from its spec and manifest with no other
//! configuration, and written as an nftables script ([`render`]; host-launch installs it with
//! `nft` on the appliance's TAP device, uml-runc on the TAP it joins to a container's veth).
//! Pure: no I/O.
//!
//! One `netdev` table per network namespace ([`TABLE`], `host-launch`), and in it the chains
//! of each appliance, named after it (`from_guest_NAME`, ...; appliance names have no `_`),
//! with two base chains on its TAP device: `from_guest_NAME` (ingress: every frame the guest
//! sends, whether the TAP is bridged or routed) and `to_guest_NAME` (egress: every frame the
//! host or a neighbour sends it). One table and not one per appliance: `nft` reads the chains
//! of every table before a change, one request per table, so with a table per appliance a
//! start cost 20 ms beside no other appliance and 400 ms beside 500
//! (`cargo bench -p host-launch --bench netpolicy`). Stateless on
//! purpose: no conntrack entry for a guest to fill, nothing shared between appliances, and the
//! same rules on a bridge and on a routed TAP (the bridge family has no conntrack on a host
//! without `nf_conntrack_bridge`). So "replies" are what comes from a destination the
//! appliance may reach, from that destination's port (TCP: not a bare SYN).
//!
//! - Anti-spoofing (always): its own MAC only; ARP only with its own MAC and IPv4 address as
//!   sender; IPv4 and IPv6 only from its own addresses (and its link-local address, from the
//!   MAC, when it has IPv6); neighbour advertisements only for its own addresses; no router
//!   advertisements, redirects, DHCP or DHCPv6 server messages; nothing else (VLAN tags,
//!   other ethertypes, a family it has no address of).
//! - Declared ports (`network.reach`): to the guest only the manifest's ports, ICMP errors
//!   and echo, neighbour discovery, and replies; from the guest only replies from its
//!   declared ports, its syslog target, its DNS servers (port 53), ICMP echo to its routes'
//!   gateways, ICMP errors, and `network.egress`.

use crate::manifest::{Manifest, Protocol};
use crate::spec::{parse_egress_to, NetworkSpec};
use contract::addr::Cidr;
use contract::checked::{Network, Remote};
use contract::types::Transport;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The guest's ephemeral ports (Linux's default `ip_local_port_range`): where replies arrive
/// when `network.reach` lets it reach anything.
pub const EPHEMERAL_PORTS: (u16, u16) = (32768, 60999);

/// A destination the guest may open connections to, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowed {
    pub to: Cidr,
    pub what: Service,
    /// The spec field that allows it (shown by `check`).
    pub why: String,
}

/// What may be opened at an allowed destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Port(Protocol, u16),
    /// ICMP (v6) echo requests.
    Echo,
}

/// Everything the rules say, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The nftables table ([`TABLE`] for host-launch).
    pub table: String,
    /// The appliance's name: its chains' suffix.
    pub name: String,
    /// The TAP device the chains hook.
    pub device: String,
    pub mac: [u8; 6],
    pub ipv4: Vec<Ipv4Addr>,
    /// Its IPv6 addresses, the link-local one (from the MAC) first; empty without IPv6.
    pub ipv6: Vec<Ipv6Addr>,
    /// The manifest's ports.
    pub ports: Vec<(Protocol, u16)>,
    /// Whether traffic to the guest is limited to them (`network.reach`).
    pub inbound_limited: bool,
    /// `None` when `network.reach` opens outbound traffic.
    pub outbound: Option<Vec<Allowed>>,
}

/// host-launch's table, one in each network namespace with appliances.
pub const TABLE: &str = "host-launch";

/// The chains of an appliance, by their role: base chains first.
const CHAINS: [&str; 7] = [
    "from_guest",
    "to_guest",
    "arp_from_guest",
    "ip_from_guest",
    "ip6_from_guest",
    "ip_to_guest",
    "ip6_to_guest",
];

/// The chain of appliance `name` for `role` (one of [`CHAINS`]).
fn chain_name(role: &str, name: &str) -> String {
    format!("{role}_{name}")
}

/// Appliance `name`'s chains, its base chains first.
pub fn chains_of(name: &str) -> Vec<String> {
    CHAINS.iter().map(|role| chain_name(role, name)).collect()
}

/// Whether `chain` is one of appliance `name`'s: names have no `_`, so what follows the last
/// one is the name.
pub fn is_chain_of(chain: &str, name: &str) -> bool {
    chain
        .rsplit_once('_')
        .is_some_and(|(role, n)| n == name && CHAINS.contains(&role))
}

/// An nftables script that removes appliance `name`'s chains from `table` (in one
/// transaction, whether they are there or not: each is added first, then flushed, then
/// deleted). The table itself stays: deleting it could take another appliance's chains
/// that a concurrent start just added.
pub fn removal(table: &str, name: &str) -> String {
    let mut s = format!("add table netdev {table}\n");
    for verb in ["add", "flush", "delete"] {
        for role in CHAINS {
            let _ = writeln!(s, "{verb} chain netdev {table} {}", chain_name(role, name));
        }
    }
    s
}

/// The IPv6 link-local address a guest kernel makes from its MAC (modified EUI-64).
pub fn link_local(mac: [u8; 6]) -> Ipv6Addr {
    let [a, b, c, d, e, f] = mac;
    Ipv6Addr::from([
        0xfe,
        0x80,
        0,
        0,
        0,
        0,
        0,
        0,
        a ^ 2,
        b,
        c,
        0xff,
        0xfe,
        d,
        e,
        f,
    ])
}

/// The policy of an appliance: its name, its spec's network, the manifest's ports, and the
/// merged contract's typed network (its MAC, addresses, routes, DNS servers) and syslog target.
/// `None` when the contract gives the interface no MAC (host-launch always gives one).
pub fn derive(
    name: &str,
    spec: &NetworkSpec,
    manifest: &Manifest,
    net: &Network,
    syslog: Option<&Remote>,
) -> Option<Policy> {
    let mac = net.interfaces.first()?.mac?;
    let own = net.own_addresses();
    let ipv4 = own
        .iter()
        .filter_map(|a| match a {
            IpAddr::V4(v) => Some(*v),
            IpAddr::V6(_) => None,
        })
        .collect();
    let mut ipv6: Vec<Ipv6Addr> = Vec::new();
    if net.uses_ipv6() {
        ipv6.push(link_local(mac));
        ipv6.extend(own.iter().filter_map(|a| match a {
            IpAddr::V6(v) => Some(*v),
            IpAddr::V4(_) => None,
        }));
    }
    let mut ports: Vec<(Protocol, u16)> = manifest
        .ports
        .iter()
        .map(|p| (p.protocol, p.port))
        .collect();
    ports.sort_by_key(|&(p, n)| (p == Protocol::Udp, n));
    ports.dedup();
    let outbound = spec
        .reach
        .limits_outbound()
        .then(|| allowed_out(spec, net, syslog));
    Some(Policy {
        table: TABLE.to_string(),
        name: name.to_string(),
        device: spec.tap.clone(),
        mac,
        ipv4,
        ipv6,
        ports,
        inbound_limited: spec.reach.limits_inbound(),
        outbound,
    })
}

fn host(addr: IpAddr) -> Cidr {
    Cidr {
        addr,
        prefix: if addr.is_ipv4() { 32 } else { 128 },
    }
}

/// What the spec implies the guest reaches, then `network.egress`.
fn allowed_out(spec: &NetworkSpec, net: &Network, syslog: Option<&Remote>) -> Vec<Allowed> {
    let mut out = Vec::new();
    if let Some(r) = syslog {
        let proto = match r.transport {
            Transport::Udp => Protocol::Udp,
            Transport::Tcp => Protocol::Tcp,
        };
        out.push(Allowed {
            to: host(r.addr.ip()),
            what: Service::Port(proto, r.addr.port()),
            why: "syslog".into(),
        });
    }
    for (i, d) in net.dns_servers.iter().enumerate() {
        for proto in [Protocol::Udp, Protocol::Tcp] {
            out.push(Allowed {
                to: host(*d),
                what: Service::Port(proto, 53),
                why: format!("network.dns_servers[{i}]"),
            });
        }
    }
    for (i, r) in net.routes.iter().enumerate() {
        if let Some(g) = r.gateway {
            out.push(Allowed {
                to: host(g),
                what: Service::Echo,
                why: format!("network.routes[{i}].gateway"),
            });
        }
    }
    for (i, e) in spec.egress.iter().enumerate() {
        // The spec was checked: a bad `to` never gets here, and is left out if it does.
        if let Ok(to) = parse_egress_to(&e.to) {
            out.push(Allowed {
                to,
                what: Service::Port(e.protocol, e.port),
                why: format!("network.egress[{i}]"),
            });
        }
    }
    out.dedup_by(|a, b| a.to == b.to && a.what == b.what);
    out
}

fn mac_text(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn proto_word(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
    }
}

// No anonymous sets (`{ a, b }`): `nft` fetches the elements of every set in the table, one
// request each, before any change or listing, and with 10 sets per appliance a listing next
// to 500 appliances took 2 s. A rule per value, and `!= a != b` for "none of these".

/// One rule per value: `{field} {value} {rest}`.
fn each<T: std::fmt::Display>(field: &str, values: &[T], rest: &str) -> Vec<String> {
    values
        .iter()
        .map(|v| format!("{field} {v} {rest}"))
        .collect()
}

/// `field != a field != b ...`: matches what is none of `values` (not empty).
fn none_of<T: std::fmt::Display>(field: &str, values: &[T]) -> String {
    values
        .iter()
        .map(|v| format!("{field} != {v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// ICMP types a guest may send and receive whatever the ports say.
const ICMP_ALWAYS: [&str; 5] = [
    "echo-reply",
    "echo-request",
    "destination-unreachable",
    "time-exceeded",
    "parameter-problem",
];
const ICMPV6_ALWAYS: [&str; 6] = [
    "echo-reply",
    "echo-request",
    "destination-unreachable",
    "packet-too-big",
    "time-exceeded",
    "parameter-problem",
];

/// Where what the guest may send goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass<'a> {
    /// On as usual: into the bridge or the host's stack (host-launch's TAP). The table also
    /// filters what is sent to the guest (the TAP's egress hook).
    On,
    /// Forwarded out of this device (`fwd to`): uml-runc's TAP joined to the container's
    /// veth. Frames to the guest come by a tc redirect, which skips the egress hook, so the
    /// table has no chain for them.
    ForwardTo(&'a str),
}

/// The nftables script: the appliance's chains replaced as a whole in one transaction (a
/// leftover of a dead launcher included: [`removal`] first).
pub fn render(p: &Policy, pass: Pass) -> String {
    let t = &p.table;
    let mut s = removal(t, &p.name);
    let _ = writeln!(s, "table netdev {t} {{");
    let ok = match pass {
        Pass::On => "accept".to_string(),
        Pass::ForwardTo(dev) => format!("fwd to \"{dev}\""),
    };
    from_guest(&mut s, p, &ok);
    if pass == Pass::On {
        to_guest(&mut s, p);
    }
    s.push_str("}\n");
    s
}

fn chain(s: &mut String, p: &Policy, role: &str, rules: &[String]) {
    let _ = writeln!(s, "\tchain {} {{", chain_name(role, &p.name));
    for r in rules {
        let _ = writeln!(s, "\t\t{r}");
    }
    s.push_str("\t}\n");
}

fn drop_rule(matches: &str, why: &str) -> String {
    format!("{matches} counter drop comment \"{why}\"")
}

/// What the guest sends: one chain per protocol, each dropping what is not its own.
fn from_guest(s: &mut String, p: &Policy, ok: &str) {
    let mac = mac_text(p.mac);
    dispatch_from_guest(s, p, &mac);
    arp_from_guest(s, p, &mac, ok);
    if !p.ipv4.is_empty() {
        ip_from_guest(s, p, ok);
    }
    if !p.ipv6.is_empty() {
        ip6_from_guest(s, p, ok);
    }
}

/// The ingress hook: its own source MAC only, then a jump by protocol.
fn dispatch_from_guest(s: &mut String, p: &Policy, mac: &str) {
    let mut base = vec![
        format!(
            "type filter hook ingress device \"{}\" priority filter; policy drop;",
            p.device
        ),
        drop_rule(&format!("ether saddr != {mac}"), "source MAC not its own"),
        format!(
            "ether type arp jump {}",
            chain_name("arp_from_guest", &p.name)
        ),
    ];
    if !p.ipv4.is_empty() {
        base.push(format!(
            "ether type ip jump {}",
            chain_name("ip_from_guest", &p.name)
        ));
    }
    if !p.ipv6.is_empty() {
        base.push(format!(
            "ether type ip6 jump {}",
            chain_name("ip6_from_guest", &p.name)
        ));
    }
    base.push(drop_rule(
        "",
        "another protocol, or a family it has no address in",
    ));
    chain(s, p, "from_guest", &base);
}

fn arp_from_guest(s: &mut String, p: &Policy, mac: &str, ok: &str) {
    let mut arp = vec![
        drop_rule("arp hlen != 6", "ARP not over Ethernet"),
        drop_rule("arp plen != 4", "ARP not for IPv4"),
        drop_rule(
            &format!("arp saddr ether != {mac}"),
            "ARP sender MAC not its own",
        ),
        drop_rule(
            "arp operation != request arp operation != reply",
            "ARP operation",
        ),
        format!("arp operation request arp saddr ip 0.0.0.0 {ok} comment \"address probe\""),
    ];
    if !p.ipv4.is_empty() {
        arp.extend(each("arp saddr ip", &p.ipv4, ok));
    }
    arp.push(drop_rule("", "ARP for an address not its own"));
    chain(s, p, "arp_from_guest", &arp);
}

fn ip_from_guest(s: &mut String, p: &Policy, ok: &str) {
    let mut ip = vec![
        drop_rule(&none_of("ip saddr", &p.ipv4), "IPv4 source not its own"),
        drop_rule("udp sport 67", "DHCP server"),
        drop_rule("icmp type redirect", "ICMP redirect"),
        drop_rule(
            "icmp type router-advertisement",
            "ICMP router advertisement",
        ),
    ];
    ip.extend(each("icmp type", &ICMP_ALWAYS, ok));
    ip.extend(outbound_rules(p, false, ok));
    chain(s, p, "ip_from_guest", &ip);
}

fn ip6_from_guest(s: &mut String, p: &Policy, ok: &str) {
    let mut ip6 = vec![
            format!("ip6 saddr :: icmpv6 type nd-neighbor-solicit {ok} comment \"duplicate address detection\""),
            drop_rule(&none_of("ip6 saddr", &p.ipv6), "IPv6 source not its own"),
            drop_rule("icmpv6 type nd-router-advert", "router advertisement"),
            drop_rule("icmpv6 type nd-redirect", "redirect"),
        ];
    // nft 1.0.6 has no `icmpv6 taddr`: the target is the 16 bytes after the 8 of the header.
    for a in &p.ipv6 {
        ip6.push(format!(
            "icmpv6 type nd-neighbor-advert @th,64,128 0x{:032x} {ok} comment \"{a}\"",
            u128::from(*a)
        ));
    }
    ip6.push(drop_rule(
        "icmpv6 type nd-neighbor-advert",
        "neighbour advertisement not for its own address",
    ));
    ip6.extend(each(
        "icmpv6 type",
        &[
            "nd-neighbor-solicit",
            "nd-router-solicit",
            "mld-listener-report",
            "mld2-listener-report",
        ],
        ok,
    ));
    ip6.push(drop_rule("udp sport 547", "DHCPv6 server"));
    ip6.extend(each("icmpv6 type", &ICMPV6_ALWAYS, ok));
    ip6.extend(outbound_rules(p, true, ok));
    chain(s, p, "ip6_from_guest", &ip6);
}

/// The declared-ports part of what the guest sends, for one family.
fn outbound_rules(p: &Policy, v6: bool, ok: &str) -> Vec<String> {
    let Some(allowed) = &p.outbound else {
        return vec![format!(
            "{ok} comment \"network.reach opens outbound traffic\""
        )];
    };
    let fam = if v6 { "ip6" } else { "ip" };
    let mut r = Vec::new();
    r.extend(replies_from_guest(p, ok));
    for a in allowed.iter().filter(|a| a.to.is_ipv6() == v6) {
        let to = a.to;
        match a.what {
            Service::Port(proto, port) => r.push(format!(
                "{fam} daddr {to} {} dport {port} {ok} comment \"{}\"",
                proto_word(proto),
                a.why
            )),
            Service::Echo => {
                let echo = if v6 { "icmpv6" } else { "icmp" };
                r.push(format!(
                    "{fam} daddr {to} {echo} type echo-request {ok} comment \"{}\"",
                    a.why
                ))
            }
        }
    }
    r.push(drop_rule(
        "",
        "a destination its spec does not allow (network.egress)",
    ));
    r
}

const NOT_SYN: &str = "tcp flags & (syn | ack) != syn";

/// Accepts `ports` in `dir`: `dport` to the guest, `sport` (its replies) from it, where a TCP
/// packet is a reply only when it is not a bare SYN.
fn ports_rules(ports: &[(Protocol, u16)], dir: &str, why: &str, ok: &str) -> Vec<String> {
    let mut r = Vec::new();
    for proto in [Protocol::Tcp, Protocol::Udp] {
        let of: Vec<u16> = ports
            .iter()
            .filter(|(p, _)| *p == proto)
            .map(|&(_, n)| n)
            .collect();
        if of.is_empty() {
            continue;
        }
        let not_syn = if proto == Protocol::Tcp && dir == "sport" {
            format!("{NOT_SYN} ")
        } else {
            String::new()
        };
        r.extend(each(
            &format!("{} {dir}", proto_word(proto)),
            &of,
            &format!("{not_syn}{ok} comment \"{why}\""),
        ));
    }
    r
}

/// Replies from the guest: from its declared ports; with inbound traffic open, TCP replies
/// from any port too (a stateless filter cannot tell a UDP reply from a new datagram, so UDP
/// ones only from the declared ports).
fn replies_from_guest(p: &Policy, ok: &str) -> Vec<String> {
    let mut r = ports_rules(&p.ports, "sport", "replies from its declared ports", ok);
    if !p.inbound_limited {
        r.push(format!(
            "meta l4proto tcp {NOT_SYN} {ok} comment \"TCP replies (network.reach)\""
        ));
    }
    r
}

/// What the guest may be sent on: its declared ports, or any (`network.reach`).
fn inbound_rules(p: &Policy) -> Vec<String> {
    if p.inbound_limited {
        ports_rules(&p.ports, "dport", "its declared ports", "accept")
    } else {
        each(
            "meta l4proto",
            &["tcp", "udp"],
            "accept comment \"network.reach opens inbound traffic\"",
        )
    }
}

fn to_guest(s: &mut String, p: &Policy) {
    let base = vec![
        format!(
            "type filter hook egress device \"{}\" priority filter; policy accept;",
            p.device
        ),
        format!("ether type ip jump {}", chain_name("ip_to_guest", &p.name)),
        format!(
            "ether type ip6 jump {}",
            chain_name("ip6_to_guest", &p.name)
        ),
    ];
    chain(s, p, "to_guest", &base);
    for v6 in [false, true] {
        let mut r = Vec::new();
        if v6 {
            r.extend(each("icmpv6 type", &ICMPV6_ALWAYS, "accept"));
            r.extend(each(
                "icmpv6 type",
                &[
                    "nd-neighbor-solicit",
                    "nd-neighbor-advert",
                    "nd-router-advert",
                    "mld-listener-query",
                ],
                "accept",
            ));
        } else {
            r.extend(each("icmp type", &ICMP_ALWAYS, "accept"));
        }
        r.extend(inbound_rules(p));
        r.extend(reply_rules(p, v6));
        r.push(drop_rule("", "not a port its manifest declares"));
        chain(s, p, if v6 { "ip6_to_guest" } else { "ip_to_guest" }, &r);
    }
}

/// What comes back from where the guest may go: from that destination's port (TCP: not a
/// bare SYN); any reply to its ephemeral ports when its outbound traffic is open.
fn reply_rules(p: &Policy, v6: bool) -> Vec<String> {
    let fam = if v6 { "ip6" } else { "ip" };
    let Some(allowed) = &p.outbound else {
        let (lo, hi) = EPHEMERAL_PORTS;
        return vec![
            format!("tcp dport {lo}-{hi} tcp flags & (syn | ack) != syn accept comment \"replies (network.reach)\""),
            format!("udp dport {lo}-{hi} accept comment \"replies (network.reach)\""),
        ];
    };
    allowed
        .iter()
        .filter(|a| a.to.is_ipv6() == v6)
        .filter_map(|a| match a.what {
            Service::Port(proto, port) => {
                let not_syn = if proto == Protocol::Tcp {
                    " tcp flags & (syn | ack) != syn"
                } else {
                    ""
                };
                Some(format!(
                    "{fam} saddr {} {} sport {port}{not_syn} accept comment \"replies: {}\"",
                    a.to,
                    proto_word(proto),
                    a.why
                ))
            }
            Service::Echo => None,
        })
        .collect()
}

/// The number of rules [`render`] writes (base chain headers not counted).
pub fn rule_count(script: &str) -> usize {
    script
        .lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty()
                && !l.starts_with("chain ")
                && !l.starts_with("type ")
                && !l.starts_with("table ")
                && !l.starts_with("add ")
                && !l.starts_with("flush ")
                && !l.starts_with("delete ")
                && *l != "}"
        })
        .count()
}

/// What `check` prints: one line per part of the policy.
pub fn describe(p: &Policy) -> Vec<String> {
    let mut v = vec![format!(
        "nftables table netdev {}, chains *_{} on {} ({} rules)",
        p.table,
        p.name,
        p.device,
        rule_count(&render(p, Pass::On))
    )];
    let mut own: Vec<String> = p.ipv4.iter().map(ToString::to_string).collect();
    own.extend(p.ipv6.iter().map(ToString::to_string));
    v.push(format!(
        "from the guest: only MAC {}, addresses {}; no RA, redirect, DHCP/DHCPv6 server",
        mac_text(p.mac),
        if own.is_empty() {
            "none".into()
        } else {
            own.join(", ")
        }
    ));
    let ports: Vec<String> = p
        .ports
        .iter()
        .map(|&(p, n)| format!("{n}/{}", proto_word(p)))
        .collect();
    v.push(if !p.inbound_limited {
        "reached on: any port (network.reach)".into()
    } else if ports.is_empty() {
        "reached on: no port (the manifest declares none), ICMP errors and echo".into()
    } else {
        format!("reached on: {}, ICMP errors and echo", ports.join(", "))
    });
    v.push(match &p.outbound {
        Some(a) if a.is_empty() => "reaches: nothing but replies (add network.egress)".into(),
        Some(a) => format!(
            "reaches: {}",
            a.iter()
                .map(|a| match a.what {
                    Service::Port(pr, n) => format!("{} {n}/{} ({})", a.to, proto_word(pr), a.why),
                    Service::Echo => format!("{} echo ({})", a.to, a.why),
                })
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None => "reaches: anything (network.reach)".into(),
    });
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(spec_net: &str, ports: &str, syslog: bool) -> Policy {
        let text = format!(
            r#"{{"name":"dns1","image":"i.img","network":{spec_net}{}}}"#,
            if syslog {
                r#","syslog":{"transport":"udp","host":"192.0.2.1","format":"rfc5424"}"#
            } else {
                ""
            }
        );
        let spec = crate::spec::parse(text.as_bytes()).unwrap();
        let manifest = crate::manifest::parse(
            format!(r#"{{"contract_version":1,"service":{{"argv":["/bin/x"]}},"ports":{ports}}}"#)
                .as_bytes(),
        )
        .unwrap();
        let merged = crate::merge::merge(&spec, &manifest).unwrap();
        let checked = contract::checked::check(merged.contract).unwrap();
        derive(
            "dns1",
            spec.network.as_ref().unwrap(),
            &manifest,
            checked.network.as_ref().unwrap(),
            checked.remote.as_ref(),
        )
        .unwrap()
    }

    const DUAL: &str = r#"{"tap":"tap-dns1","bridge":"br-app","mac":"02:00:00:00:00:35",
        "addresses":["192.0.2.53/24","2001:db8::53/64"],
        "routes":[{"destination":"0.0.0.0/0","gateway":"192.0.2.1"}],"dns_servers":["192.0.2.2"]}"#;

    fn render_on(p: &Policy) -> String {
        render(p, Pass::On)
    }

    #[test]
    fn the_link_local_address_comes_from_the_mac() {
        assert_eq!(
            link_local([0x02, 0, 0, 0, 0, 0x35]),
            "fe80::ff:fe00:35".parse::<Ipv6Addr>().unwrap()
        );
    }

    #[test]
    fn a_dual_stack_appliance_owns_its_mac_and_addresses_only() {
        let p = policy(DUAL, r#"[{"port":53,"protocol":"udp"},{"port":53}]"#, true);
        let s = render(&p, Pass::On);
        assert_eq!(p.table, "host-launch");
        assert!(s.contains("chain from_guest_dns1 {"), "{s}");
        assert!(s.contains("jump arp_from_guest_dns1"), "{s}");
        assert!(is_chain_of("ip6_to_guest_dns1", "dns1"));
        assert!(!is_chain_of("ip6_to_guest_dns1", "1"));
        assert!(!is_chain_of("ip6_to_guest_xdns1", "dns1"));
        for want in [
            "device \"tap-dns1\"",
            "ether saddr != 02:00:00:00:00:35 counter drop",
            "arp saddr ether != 02:00:00:00:00:35",
            "arp saddr ip 192.0.2.53 accept",
            "ip saddr != 192.0.2.53 counter drop",
            "ip6 saddr != fe80::ff:fe00:35 ip6 saddr != 2001:db8::53 counter drop",
            "@th,64,128 0x20010db8000000000000000000000053 accept",
            "udp sport 67 counter drop",
            "udp sport 547 counter drop",
            "icmpv6 type nd-router-advert counter drop",
            "icmpv6 type nd-redirect counter drop",
            "tcp dport 53 accept",
            "udp dport 53 accept",
            "ip daddr 192.0.2.1/32 udp dport 514 accept comment \"syslog\"",
            "ip daddr 192.0.2.2/32 udp dport 53 accept",
            "ip daddr 192.0.2.1/32 icmp type echo-request accept",
            "ip saddr 192.0.2.2/32 udp sport 53 accept",
        ] {
            assert!(s.contains(want), "missing {want:?} in\n{s}");
        }
        // No anonymous set: nft would fetch each one's elements before every change.
        assert!(!s.contains("{ "), "{s}");
        // Nothing opens everything while the ports are declared.
        assert!(!s.contains("network.reach"), "{s}");
        assert!(rule_count(&s) > 20, "{}", rule_count(&s));
        if let Ok(out) = std::env::var("NETPOLICY_DUMP") {
            std::fs::write(out, &s).unwrap();
        }
    }

    #[test]
    fn an_ipv4_only_appliance_sends_no_ipv6_and_an_ipv6_only_one_no_ipv4() {
        let v4 = render_on(&policy(
            r#"{"tap":"t1","bridge":"b","addresses":["192.0.2.9/24"]}"#,
            "[]",
            false,
        ));
        assert!(!v4.contains("ip6_from_guest_dns1 {"), "{v4}");
        assert!(v4.contains("ip_from_guest_dns1 {"), "{v4}");
        let v6 = render_on(&policy(
            r#"{"tap":"t1","bridge":"b","addresses":["2001:db8::9/64"]}"#,
            "[]",
            false,
        ));
        assert!(!v6.contains("ip_from_guest_dns1 {"), "{v6}");
        assert!(!v6.contains("arp saddr ip 2001"), "{v6}");
        assert!(v6.contains("ip6_from_guest_dns1 {"), "{v6}");
    }

    #[test]
    fn a_spec_without_a_mac_gets_the_derived_one() {
        let p = policy(
            r#"{"tap":"t1","bridge":"b","addresses":["192.0.2.9/24"]}"#,
            "[]",
            false,
        );
        let want = crate::merge::derived_mac("dns1");
        assert_eq!(mac_text(p.mac), want);
        assert!(want.starts_with("02:"));
    }

    #[test]
    fn egress_and_reach_are_honoured() {
        let p = policy(
            r#"{"tap":"t1","bridge":"b","addresses":["192.0.2.9/24"],
               "egress":[{"to":"198.51.100.0/24","protocol":"tcp","port":443}]}"#,
            "[]",
            false,
        );
        let s = render(&p, Pass::On);
        assert!(
            s.contains("ip daddr 198.51.100.0/24 tcp dport 443 accept"),
            "{s}"
        );
        assert!(s.contains(
            "ip saddr 198.51.100.0/24 tcp sport 443 tcp flags & (syn | ack) != syn accept"
        ));
        let open = render_on(&policy(
            r#"{"tap":"t1","bridge":"b","addresses":["192.0.2.9/24"],"reach":"open"}"#,
            "[]",
            false,
        ));
        assert!(
            open.contains("network.reach opens outbound traffic"),
            "{open}"
        );
        assert!(
            open.contains("network.reach opens inbound traffic"),
            "{open}"
        );
        // Anti-spoofing stays.
        assert!(
            open.contains("ip saddr != 192.0.2.9 counter drop"),
            "{open}"
        );
    }
}
