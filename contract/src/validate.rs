//! Semantic validation of a v1 contract: every problem at once, each with its JSON path and a
//! sentence that says what to change.

use crate::addr::{parse_cidr, parse_ip, parse_mac, Cidr};
use crate::names::{capability_number, facility_number, signal_number};
use crate::v1::*;
use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

/// Directory under /run that guest-init keeps for itself (the contract and `extra`).
pub const RESERVED_RUN_DIR: &str = "/run/contract";

/// One thing wrong with a contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// JSON path, e.g. `network.interfaces[0].addresses[1]`.
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Paths and messages quote the contract's strings: print control characters escaped.
        write!(
            f,
            "{}: {}",
            crate::json::printable(&self.path),
            crate::json::printable(&self.message)
        )
    }
}

/// Every problem found in a contract; never empty when returned as an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

/// Collects problems while walking the contract.
#[derive(Default)]
struct Checker {
    problems: Vec<Problem>,
}

impl Checker {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }

    fn check(&mut self, path: &str, result: Result<(), String>) {
        if let Err(m) = result {
            self.push(path, m);
        }
    }
}

/// Checks everything the types cannot express.
pub fn validate(c: &Contract) -> Result<(), Problems> {
    let mut ck = Checker::default();
    if c.version != VERSION {
        ck.push(
            "version",
            format!(
                "contract version {} is not supported; this software speaks version {VERSION}",
                c.version
            ),
        );
    }
    ck.check("hostname", check_hostname(&c.hostname));
    if let Some(net) = &c.network {
        check_network(&mut ck, net);
    }
    check_logging(&mut ck, &c.logging);
    check_service(&mut ck, &c.service);
    check_mounts(&mut ck, &c.mounts);
    check_files(&mut ck, &c.files);
    for (key, value) in &c.sysctl {
        let path = format!("sysctl.{key}");
        ck.check(&path, check_sysctl(key, value));
    }
    if ck.problems.is_empty() {
        Ok(())
    } else {
        Err(Problems(ck.problems))
    }
}

/// RFC 1123 host name: dot-separated labels of letters, digits and '-', at most 64 characters
/// in all (the kernel's limit for a node name).
pub fn check_hostname(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err(format!(
            "'{name}' must be 1 to 64 characters long (it has {})",
            name.len()
        ));
    }
    for label in name.split('.') {
        check_label(name, label)?;
    }
    Ok(())
}

fn check_label(name: &str, label: &str) -> Result<(), String> {
    if label.is_empty() || label.len() > 63 {
        return Err(format!(
            "'{name}' has a label of {} characters; each dot-separated label must have 1 to 63",
            label.len()
        ));
    }
    if let Some(ch) = label
        .chars()
        .find(|ch| !ch.is_ascii_alphanumeric() && *ch != '-')
    {
        return Err(format!(
            "'{name}' contains {ch:?}; use only letters, digits and '-' (RFC 1123)"
        ));
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(format!(
            "'{name}': a label may not start or end with '-' (RFC 1123)"
        ));
    }
    Ok(())
}

fn check_domain(name: &str) -> Result<(), String> {
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    if trimmed.is_empty() || trimmed.len() > 253 {
        return Err(format!(
            "'{name}' is not a domain name (1 to 253 characters)"
        ));
    }
    trimmed.split('.').try_for_each(|l| check_label(name, l))
}

fn check_network(ck: &mut Checker, net: &Network) {
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
                Err(m) => ck.push(path, m),
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

fn check_ifname(name: &str) -> Result<(), String> {
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
        Err(format!("'{name}' is not an interface name (1 to 15 characters, no '/', ':' or spaces, e.g. 'vec0')"))
    }
}

/// An address an interface can have: not loopback, multicast or unspecified, and (IPv4 with a
/// prefix under 31) neither its subnet's network nor its broadcast address.
pub fn check_host_address(text: &str, c: Cidr) -> Result<(), String> {
    let what = match c.addr {
        a if a.is_loopback() => Some("a loopback address (the guest's lo has it already)"),
        a if a.is_multicast() => Some("a multicast address"),
        a if a.is_unspecified() => Some("the unspecified address"),
        IpAddr::V4(a) if a.is_broadcast() => Some("the limited broadcast address"),
        _ => None,
    };
    if let Some(what) = what {
        return Err(format!(
            "'{text}' is {what}, which an interface cannot have; give a unicast address, e.g. '192.0.2.10/24'"
        ));
    }
    if let IpAddr::V4(a) = c.addr {
        if c.prefix < 31 {
            let net = c.network();
            let host_mask = u32::MAX >> c.prefix;
            if c.addr == net.addr {
                return Err(format!(
                    "'{text}' is the network address of {net}; a host needs one with host bits set, e.g. '{}/{}'",
                    Ipv4Addr::from(u32::from(a) | 1),
                    c.prefix
                ));
            }
            if u32::from(a) & host_mask == host_mask {
                return Err(format!(
                    "'{text}' is the broadcast address of {net}; give a host address, e.g. '{}/{}'",
                    Ipv4Addr::from(u32::from(a) - 1),
                    c.prefix
                ));
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
            Err(m) => ck.push(format!("{at}.gateway"), m),
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

fn check_logging(ck: &mut Checker, l: &Logging) {
    let Some(r) = &l.remote else { return };
    ck.check(
        "logging.remote.host",
        parse_ip(&r.host)
            .map(|_| ())
            .map_err(|m| format!("{m}; the syslog host must be an IP address")),
    );
    if r.port == 0 {
        ck.push(
            "logging.remote.port",
            "port 0 is not a valid destination; syslog normally uses 514",
        );
    }
    if facility_number(&r.facility).is_none() {
        ck.push(
            "logging.remote.facility",
            format!(
                "'{}' is not a syslog facility; use e.g. 'daemon', 'user' or 'local0' to 'local7'",
                r.facility
            ),
        );
    }
}

fn check_service(ck: &mut Checker, s: &Service) {
    if let Some(name) = &s.name {
        let ok = !name.is_empty() && name.len() <= 48 && name.chars().all(|c| c.is_ascii_graphic());
        if !ok {
            ck.push("service.name", format!("'{name}' must be 1 to 48 printable ASCII characters without spaces (syslog APP-NAME)"));
        }
    }
    match s.argv.first() {
        None => ck.push(
            "service.argv",
            "is empty; give at least the program's absolute path",
        ),
        Some(a0) if !a0.starts_with('/') => ck.push(
            "service.argv[0]",
            format!("'{a0}' must be an absolute path in the image (no PATH lookup is done)"),
        ),
        _ => {}
    }
    for (i, a) in s.argv.iter().enumerate() {
        if a.contains('\0') {
            ck.push(
                format!("service.argv[{i}]"),
                "contains a NUL character, which a program argument cannot hold",
            );
        }
    }
    for (k, v) in &s.env {
        ck.check(&format!("service.env.{k}"), check_env(k, v));
    }
    if let Some(w) = &s.workdir {
        ck.check("service.workdir", check_abs_path(w));
    }
    let mut seen = BTreeSet::new();
    for (i, cap) in s.capabilities.iter().enumerate() {
        match capability_number(cap) {
            Some(n) if !seen.insert(n) => ck.push(
                format!("service.capabilities[{i}]"),
                format!("'{cap}' is listed twice"),
            ),
            Some(_) => {}
            None => ck.push(
                format!("service.capabilities[{i}]"),
                format!(
                    "'{cap}' is not a Linux capability; use a name such as 'CAP_NET_BIND_SERVICE'"
                ),
            ),
        }
    }
    let r = &s.restart;
    if r.backoff_min_ms == 0 {
        ck.push(
            "service.restart.backoff_min_ms",
            "must be at least 1 so that a crashing service cannot spin",
        );
    }
    if r.backoff_min_ms > r.backoff_max_ms {
        ck.push(
            "service.restart.backoff_max_ms",
            format!(
                "{} is below backoff_min_ms ({}); raise it or lower the minimum",
                r.backoff_max_ms, r.backoff_min_ms
            ),
        );
    }
    if signal_number(&s.stop_signal).is_none() {
        ck.push("service.stop_signal", format!("'{}' is not a signal a service can be stopped with; use e.g. 'SIGTERM', 'SIGINT' or 'SIGQUIT'", s.stop_signal));
    }
    if s.stop_timeout_ms > 3_600_000 {
        ck.push(
            "service.stop_timeout_ms",
            "must be at most 3600000 (one hour)",
        );
    }
    check_readiness(ck, &s.readiness);
    if let Some(l) = &s.liveness {
        for (path, message) in crate::liveness::problems(l, "service.liveness") {
            ck.push(path, message);
        }
    }
}

fn check_env(key: &str, value: &str) -> Result<(), String> {
    let mut chars = key.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("'{key}' is not a valid variable name (letters, digits and '_', not starting with a digit)"));
    }
    if value.contains('\0') {
        return Err("the value contains a NUL character".into());
    }
    Ok(())
}

fn check_readiness(ck: &mut Checker, r: &Readiness) {
    match r {
        Readiness::None => {}
        Readiness::Notify { fd } => {
            if !(3..=1023).contains(fd) {
                ck.push("service.readiness.fd", format!("{fd} is not usable; use a descriptor from 3 to 1023 (0 to 2 are stdin, stdout and stderr)"));
            }
        }
        Readiness::Tcp { port, address } => {
            if *port == 0 {
                ck.push("service.readiness.port", "must be 1 to 65535");
            }
            if let Some(a) = address {
                ck.check("service.readiness.address", parse_ip(a).map(|_| ()));
            }
        }
    }
}

/// An absolute, normalised path: starts with '/', no empty, '.' or '..' components, no NUL.
pub fn check_abs_path(p: &str) -> Result<(), String> {
    if !p.starts_with('/') {
        return Err(format!("'{p}' must be an absolute path starting with '/'"));
    }
    if p.contains('\0') {
        return Err(format!("'{p}' contains a NUL character"));
    }
    if p.len() > 1
        && p[1..]
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(format!(
            "'{p}' must be normalised: no '//', '.', '..' or trailing '/'"
        ));
    }
    // The kernel's limits (PATH_MAX, NAME_MAX), which would otherwise fail only at boot.
    if p.len() >= 4096 {
        return Err(format!(
            "is {} bytes long; a path must be shorter than 4096 bytes",
            p.len()
        ));
    }
    if let Some(c) = p.split('/').find(|c| c.len() > 255) {
        return Err(format!(
            "'{p}' has a component of {} bytes; each may have at most 255",
            c.len()
        ));
    }
    Ok(())
}

const SYSTEM_DIRS: &[&str] = &[
    "/",
    "/proc",
    "/sys",
    "/dev",
    "/run",
    "/tmp",
    RESERVED_RUN_DIR,
];

fn check_mounts(ck: &mut Checker, m: &Mounts) {
    let mut points = BTreeSet::new();
    let mut devices = BTreeSet::new();
    for (i, d) in m.disks.iter().enumerate() {
        let at = format!("mounts.disks[{i}]");
        check_mount_point(
            ck,
            &format!("{at}.mount_point"),
            &d.mount_point,
            &mut points,
        );
        match check_abs_path(&d.device) {
            Err(m) => ck.push(format!("{at}.device"), m),
            Ok(()) if !d.device.starts_with("/dev/") => ck.push(
                format!("{at}.device"),
                format!(
                    "'{}' must be a device under /dev/, e.g. '/dev/ubdb'",
                    d.device
                ),
            ),
            Ok(()) if !devices.insert(d.device.as_str()) => ck.push(
                format!("{at}.device"),
                format!("'{}' is used by two disks", d.device),
            ),
            Ok(()) => {}
        }
        if d.fs_type.is_empty() || !d.fs_type.chars().all(|c| c.is_ascii_alphanumeric()) {
            ck.push(
                format!("{at}.fs_type"),
                format!("'{}' is not a filesystem type; use e.g. 'ext4'", d.fs_type),
            );
        } else if d.format_if_blank && !matches!(d.fs_type.as_str(), "ext2" | "ext3" | "ext4") {
            ck.push(
                format!("{at}.format_if_blank"),
                format!(
                    "the guest can only create ext2, ext3 or ext4 filesystems, not '{}'",
                    d.fs_type
                ),
            );
        }
        if !d.format_if_blank && (d.owner_uid.is_some() || d.owner_gid.is_some()) {
            ck.push(
                format!("{at}.owner_uid"),
                "an owner applies only to a file system guest-init creates; set format_if_blank to true or remove the owner",
            );
        }
        for (j, o) in d.options.iter().enumerate() {
            if o.is_empty() || o.contains(',') || o.chars().any(|c| c.is_whitespace() || c == '\0')
            {
                ck.push(
                    format!("{at}.options[{j}]"),
                    format!("'{o}' is not one mount option; give each option as its own list item"),
                );
            }
        }
    }
    for (i, t) in m.tmpfs.iter().enumerate() {
        let at = format!("mounts.tmpfs[{i}]");
        check_mount_point(
            ck,
            &format!("{at}.mount_point"),
            &t.mount_point,
            &mut points,
        );
        if t.size_mib == Some(0) {
            ck.push(
                format!("{at}.size_mib"),
                "must be at least 1, or left out for the kernel default",
            );
        }
        if let Some(mode) = &t.mode {
            ck.check(&format!("{at}.mode"), parse_mode(mode).map(|_| ()));
        }
    }
}

fn check_mount_point<'a>(ck: &mut Checker, path: &str, p: &'a str, seen: &mut BTreeSet<&'a str>) {
    if let Err(m) = check_abs_path(p) {
        ck.push(path, m);
    } else if SYSTEM_DIRS.contains(&p)
        || p.starts_with("/proc/")
        || p.starts_with("/sys/")
        || p.starts_with("/dev/")
    {
        ck.push(path, format!("'{p}' is a system directory that guest-init mounts itself; choose another, e.g. '/data'"));
    } else if p.starts_with("/run/") || p.starts_with("/tmp/") {
        // Fresh tmpfs mounts at boot: no directory of the image is there to mount on.
        ck.push(path, format!("'{p}' is inside {}, which guest-init mounts empty at boot, so nothing can be mounted there; choose a directory of the image, e.g. '/data'", &p[..4]));
    } else if !seen.insert(p) {
        ck.push(path, format!("'{p}' is used by two mounts"));
    }
}

/// Octal permission bits such as `"0644"` or `"1777"`.
pub fn parse_mode(mode: &str) -> Result<u32, String> {
    let ok = !mode.is_empty() && mode.len() <= 4 && mode.chars().all(|c| ('0'..='7').contains(&c));
    if !ok {
        return Err(format!(
            "'{mode}' is not an octal mode; use 3 or 4 octal digits, e.g. '0644'"
        ));
    }
    u32::from_str_radix(mode, 8).map_err(|e| e.to_string())
}

fn check_files(ck: &mut Checker, files: &[File]) {
    let mut seen = BTreeSet::new();
    for (i, f) in files.iter().enumerate() {
        let at = format!("files[{i}]");
        match check_abs_path(&f.path) {
            Err(m) => ck.push(format!("{at}.path"), m),
            Ok(()) if !f.path.starts_with("/run/") => ck.push(format!("{at}.path"), format!("'{}' is outside /run; the root is read-only, so files go under /run/ (link to them from the image)", f.path)),
            Ok(()) if f.path == RESERVED_RUN_DIR || f.path.starts_with(&format!("{RESERVED_RUN_DIR}/")) => {
                ck.push(format!("{at}.path"), format!("'{}' is inside {RESERVED_RUN_DIR}, which guest-init keeps for the contract itself", f.path))
            }
            Ok(()) if !seen.insert(f.path.as_str()) => ck.push(format!("{at}.path"), format!("'{}' is written twice", f.path)),
            Ok(()) => {}
        }
    }
    // A file cannot also be the directory of another one: guest-init would fail at boot.
    let index: std::collections::BTreeMap<&str, usize> = files
        .iter()
        .enumerate()
        .map(|(i, f)| (f.path.as_str(), i))
        .rev()
        .collect();
    for (i, f) in files.iter().enumerate() {
        let mut p = f.path.as_str();
        while let Some((parent, _)) = p.rsplit_once('/') {
            if parent.is_empty() {
                break;
            }
            if let Some(j) = index.get(parent) {
                ck.push(
                    format!("files[{i}].path"),
                    format!("'{}' is inside '{parent}', which files[{j}] writes as a file; a path cannot be both", f.path),
                );
                break;
            }
            p = parent;
        }
    }
    for (i, f) in files.iter().enumerate() {
        let at = format!("files[{i}]");
        ck.check(&format!("{at}.mode"), parse_mode(&f.mode).map(|_| ()));
        if f.encoding == FileEncoding::Base64 && crate::file_content(f).is_err() {
            ck.push(
                format!("{at}.content"),
                "is not valid base64 (standard alphabet, with padding)",
            );
        }
    }
}

fn check_sysctl(key: &str, value: &str) -> Result<(), String> {
    let key_ok = !key.is_empty()
        && key.split(['.', '/']).all(|c| !c.is_empty() && c != "..")
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c));
    if !key_ok {
        return Err(format!(
            "'{key}' is not a sysctl name; use the dotted form, e.g. 'net.ipv4.ip_forward'"
        ));
    }
    if value.is_empty() || value.contains(['\n', '\0']) {
        return Err("the value must be non-empty and on one line".into());
    }
    Ok(())
}
