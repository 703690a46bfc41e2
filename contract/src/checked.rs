//! A contract that passed validation, with every value that travels as text parsed once into
//! its type: addresses and routes ([`Cidr`], [`IpAddr`]), the MAC, the remote syslog target
//! ([`SocketAddr`] and facility number), the stop [`Signal`], the [`Capability`] list, the
//! readiness address and the files' modes.
//!
//! The wire types ([`crate::types`]) keep these as strings on purpose: deserialization stops at
//! the first error, and [`crate::validate`] must report every problem at once with its JSON
//! path. [`check`] runs that validation and then builds this form, so a consumer (guest-init)
//! never parses a contract value again and has no fallback for a value that "cannot" be bad.

use crate::addr::{parse_cidr, parse_ip, parse_mac, Cidr};
use crate::names::facility_number;
pub use crate::names::{Capability, Signal};
use crate::types::{Contract, SyslogFormat, Transport};
use crate::validate::{parse_mode, validate, Problem, Problems};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// One interface, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub mac: Option<[u8; 6]>,
    pub addresses: Vec<Cidr>,
    pub mtu: Option<u32>,
}

/// One route, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub destination: Cidr,
    pub gateway: Option<IpAddr>,
    pub interface: Option<String>,
    pub metric: Option<u32>,
}

/// The network section, typed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Network {
    pub interfaces: Vec<Interface>,
    pub routes: Vec<Route>,
    pub dns_servers: Vec<IpAddr>,
    pub search_domains: Vec<String>,
}

impl Network {
    /// Whether IPv6 is used anywhere: an address, a route, or a DNS server.
    pub fn uses_ipv6(&self) -> bool {
        self.interfaces
            .iter()
            .any(|i| i.addresses.iter().any(Cidr::is_ipv6))
            || self
                .routes
                .iter()
                .any(|r| r.destination.is_ipv6() || r.gateway.is_some_and(|g| g.is_ipv6()))
            || self.dns_servers.iter().any(IpAddr::is_ipv6)
    }

    /// The guest's own addresses, in contract order.
    pub fn own_addresses(&self) -> Vec<IpAddr> {
        self.interfaces
            .iter()
            .flat_map(|i| i.addresses.iter().map(|c| c.addr))
            .collect()
    }
}

/// Where remote log lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    pub addr: SocketAddr,
    pub transport: Transport,
    pub format: SyslogFormat,
    /// Facility number, 0..=23.
    pub facility: u8,
}

/// How the init learns that the service is ready, typed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Readiness {
    #[default]
    None,
    Notify {
        fd: u32,
    },
    Tcp(SocketAddr),
}

/// The service's settings that travel as text, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub stop_signal: Signal,
    pub capabilities: Vec<Capability>,
    pub readiness: Readiness,
    /// `service.liveness`'s target, when there is a liveness check.
    pub liveness: Option<crate::liveness::Target>,
}

/// A validated contract and its typed values.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    /// The contract as it came (also what guest-init writes to /run/host-contract.json).
    pub contract: Contract,
    /// `None` when the contract has no network section.
    pub network: Option<Network>,
    pub remote: Option<Remote>,
    pub service: Service,
    /// The mode of each of `contract.files`, in the same order.
    pub file_modes: Vec<u32>,
}

/// Validates `c` (every problem at once, see [`validate`]) and returns it with its typed
/// values.
pub fn check(c: Contract) -> Result<Checked, Problems> {
    validate(&c)?;
    let mut problems = Vec::new();
    let network = c.network.as_ref().map(|n| typed_network(n, &mut problems));
    let remote = typed_remote(&c, &mut problems);
    let service = typed_service(&c.service, &mut problems);
    let file_modes = c
        .files
        .iter()
        .enumerate()
        .filter_map(|(i, f)| {
            take(
                &mut problems,
                format!("files[{i}].mode"),
                parse_mode(&f.mode),
            )
        })
        .collect();
    // Problems here are only reachable if validation and this conversion ever disagree:
    // still errors with their paths, never a panic or a default.
    match (problems.is_empty(), service) {
        (true, Some(service)) => Ok(Checked {
            contract: c,
            network,
            remote,
            service,
            file_modes,
        }),
        _ => Err(Problems(problems)),
    }
}

/// A network section alone, typed: for callers (tests, tools) that configure a network
/// without a whole contract. Values that do not parse are problems with their paths; the
/// checks across the section (gateways on a subnet, duplicates) are [`validate`]'s.
pub fn network(n: &crate::types::Network) -> Result<Network, Problems> {
    let mut problems = Vec::new();
    let typed = typed_network(n, &mut problems);
    if problems.is_empty() {
        Ok(typed)
    } else {
        Err(Problems(problems))
    }
}

/// Parses `result`, recording a problem at `path` when it fails.
fn take<T, E: std::fmt::Display>(
    problems: &mut Vec<Problem>,
    path: String,
    result: Result<T, E>,
) -> Option<T> {
    match result {
        Ok(v) => Some(v),
        Err(e) => {
            problems.push(Problem {
                path,
                message: e.to_string(),
            });
            None
        }
    }
}

fn typed_remote(c: &Contract, problems: &mut Vec<Problem>) -> Option<Remote> {
    let r = c.logging.remote.as_ref()?;
    let ip = take(problems, "logging.remote.host".into(), parse_ip(&r.host));
    let facility = take(
        problems,
        "logging.remote.facility".into(),
        facility_number(&r.facility).ok_or_else(|| format!("'{}' is unknown", r.facility)),
    );
    Some(Remote {
        addr: SocketAddr::new(ip?, r.port),
        transport: r.transport,
        format: r.format,
        facility: facility?,
    })
}

fn typed_network(n: &crate::types::Network, problems: &mut Vec<Problem>) -> Network {
    let interfaces = n
        .interfaces
        .iter()
        .enumerate()
        .map(|(i, iface)| {
            let at = format!("network.interfaces[{i}]");
            let mac = iface
                .mac
                .as_ref()
                .and_then(|m| take(problems, format!("{at}.mac"), parse_mac(m)));
            let addresses = iface
                .addresses
                .iter()
                .enumerate()
                .filter_map(|(j, a)| take(problems, format!("{at}.addresses[{j}]"), parse_cidr(a)))
                .collect();
            Interface {
                name: iface.name.clone(),
                mac,
                addresses,
                mtu: iface.mtu,
            }
        })
        .collect();
    let routes = n
        .routes
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let at = format!("network.routes[{i}]");
            let destination = take(
                problems,
                format!("{at}.destination"),
                parse_cidr(&r.destination),
            );
            let gateway = match &r.gateway {
                Some(g) => Some(take(problems, format!("{at}.gateway"), parse_ip(g))?),
                None => None,
            };
            Some(Route {
                destination: destination?,
                gateway,
                interface: r.interface.clone(),
                metric: r.metric,
            })
        })
        .collect();
    let dns_servers = n
        .dns_servers
        .iter()
        .enumerate()
        .filter_map(|(i, s)| take(problems, format!("network.dns_servers[{i}]"), parse_ip(s)))
        .collect();
    Network {
        interfaces,
        routes,
        dns_servers,
        search_domains: n.search_domains.clone(),
    }
}

fn typed_service(s: &crate::types::Service, problems: &mut Vec<Problem>) -> Option<Service> {
    let stop_signal = take(
        problems,
        "service.stop_signal".into(),
        Signal::from_name(&s.stop_signal).ok_or_else(|| format!("'{}' is unknown", s.stop_signal)),
    );
    let capabilities = s
        .capabilities
        .iter()
        .enumerate()
        .filter_map(|(i, name)| {
            take(
                problems,
                format!("service.capabilities[{i}]"),
                Capability::from_name(name).ok_or_else(|| format!("'{name}' is unknown")),
            )
        })
        .collect();
    let readiness = match &s.readiness {
        crate::types::Readiness::None => Readiness::None,
        crate::types::Readiness::Notify { fd } => Readiness::Notify { fd: *fd },
        crate::types::Readiness::Tcp { port, address } => {
            let ip = match address {
                Some(a) => take(problems, "service.readiness.address".into(), parse_ip(a)),
                None => Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            };
            Readiness::Tcp(SocketAddr::new(ip?, *port))
        }
    };
    let liveness = match &s.liveness {
        None => None,
        Some(l) => Some(take(
            problems,
            "service.liveness.check.address".into(),
            crate::liveness::target(l),
        )?),
    };
    Some(Service {
        stop_signal: stop_signal?,
        capabilities,
        readiness,
        liveness,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contract(json: &str) -> Contract {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn values_come_typed() {
        let c = contract(
            r#"{"version":1,"hostname":"h","service":{"argv":["/bin/x"],"stop_signal":"quit",
            "capabilities":["net_bind_service","CAP_NET_RAW"],
            "readiness":{"type":"tcp","port":53,"address":"::1"}},
            "network":{"interfaces":[{"name":"vec0","mac":"02:00:00:00:00:01",
              "addresses":["192.0.2.10/24","2001:db8::10/64"]}],
              "routes":[{"destination":"0.0.0.0/0","gateway":"192.0.2.1"}],
              "dns_servers":["192.0.2.53"]},
            "logging":{"remote":{"transport":"udp","host":"192.0.2.1","format":"rfc5424","facility":"local3"}},
            "files":[{"path":"/run/a","mode":"0600","content":""}]}"#,
        );
        let k = check(c.clone()).unwrap();
        assert_eq!(k.contract, c);
        assert_eq!(k.service.stop_signal, Signal::Quit);
        assert_eq!(k.service.stop_signal.number(), 3);
        assert_eq!(
            k.service
                .capabilities
                .iter()
                .map(|c| c.number())
                .collect::<Vec<_>>(),
            [10, 13]
        );
        assert_eq!(
            k.service.readiness,
            Readiness::Tcp("[::1]:53".parse().unwrap())
        );
        let net = k.network.unwrap();
        assert_eq!(net.interfaces[0].mac, Some([2, 0, 0, 0, 0, 1]));
        assert_eq!(net.interfaces[0].addresses[1].prefix, 64);
        assert!(net.uses_ipv6());
        assert_eq!(net.routes[0].gateway, Some("192.0.2.1".parse().unwrap()));
        assert_eq!(net.dns_servers, ["192.0.2.53".parse::<IpAddr>().unwrap()]);
        let remote = k.remote.unwrap();
        assert_eq!(remote.addr, "192.0.2.1:514".parse().unwrap());
        assert_eq!(remote.facility, 19);
        assert_eq!(k.file_modes, [0o600]);
    }

    #[test]
    fn invalid_contracts_report_every_problem() {
        let c = contract(
            r#"{"version":1,"hostname":"h","service":{"argv":["/bin/x"],"stop_signal":"SIGFOO",
            "capabilities":["CAP_FLY"]},
            "network":{"interfaces":[{"name":"vec0","addresses":["300.0.0.1/24"]}]}}"#,
        );
        let paths: Vec<String> = check(c)
            .unwrap_err()
            .0
            .into_iter()
            .map(|p| p.path)
            .collect();
        for want in [
            "service.stop_signal",
            "service.capabilities[0]",
            "network.interfaces[0].addresses[0]",
        ] {
            assert!(paths.iter().any(|p| p == want), "{want} in {paths:?}");
        }
    }

    #[test]
    fn ipv6_is_used_by_any_v6_address_route_or_server() {
        let cidr = |s: &str| parse_cidr(s).unwrap();
        let v4 = Network {
            interfaces: vec![Interface {
                name: "vec0".into(),
                mac: None,
                addresses: vec![cidr("192.0.2.10/24")],
                mtu: None,
            }],
            routes: vec![Route {
                destination: cidr("0.0.0.0/0"),
                gateway: Some("192.0.2.1".parse().unwrap()),
                interface: None,
                metric: None,
            }],
            dns_servers: vec!["192.0.2.53".parse().unwrap()],
            search_domains: vec![],
        };
        assert!(!v4.uses_ipv6());
        assert!(!Network::default().uses_ipv6());
        let mut n = v4.clone();
        n.interfaces[0].addresses.push(cidr("2001:db8::10/64"));
        assert!(n.uses_ipv6());
        let mut n = v4.clone();
        n.routes[0].destination = cidr("::/0");
        n.routes[0].gateway = None;
        assert!(n.uses_ipv6());
        let mut n = v4.clone();
        n.dns_servers.push("2001:db8::53".parse().unwrap());
        assert!(n.uses_ipv6());
    }
}
