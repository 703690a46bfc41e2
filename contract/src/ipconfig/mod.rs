//! Import of the kernel's `ip=` boot parameter (alias `nfsaddrs=`), so that an image also boots
//! with the network settings operators already know.
//!
//! The syntax is the one of the kernel's `Documentation/admin-guide/nfs/nfsroot.rst`:
//!
//! ```text
//! ip=<client-ip>:<server-ip>:<gw-ip>:<netmask>:<hostname>:<device>:<autoconf>:<dns0-ip>:<dns1-ip>:<ntp0-ip>
//! ```
//!
//! Every field may be empty and trailing fields may be left out. The `<autoconf>` word may also
//! stand alone: `ip=off`/`ip=none` (no autoconfiguration) or `ip=on`/`any`/`dhcp`/`bootp`/
//! `rarp`/`both` (autoconfiguration), plus `ip=dhcp,<client-id-type>,<client-id-value>`.
//!
//! The rules follow the kernel (`net/ipv4/ipconfig.c`) where the document is silent:
//!
//! * An empty value (`ip=`) turns autoconfiguration off, like `ip=off`.
//! * `0.0.0.0` in an address field means "not given", as in the kernel.
//! * A client address makes the configuration static whatever the `<autoconf>` field says: the
//!   kernel only autoconfigures what is missing, and guest-init always names one device.
//! * Without a netmask, the netmask is derived from the class of the client address
//!   (A: `255.0.0.0`, B: `255.255.0.0`, C: `255.255.255.0`, E: `255.255.255.255`).
//! * In `<hostname>`, the part before the first '.' is the hostname and the rest the NIS domain.
//!
//! Where the kernel silently truncates or ignores, this module reports an error instead: a field
//! that is not what its position requires, more than ten fields, a hostname over 63 characters,
//! a device name over 15, a non-contiguous netmask, whitespace anywhere, a gateway outside the
//! client's network. Only IPv4 can be written here (the fields are ':'-separated).
//!
//! guest-init does no DHCP, BOOTP or RARP: [`IpConfig::to_network`] turns the static form into a
//! contract [`Network`] and reports the dynamic forms as an error that says what to write instead.

use crate::addr::netmask_to_prefix;
use crate::types::{Interface, Network, Route};
use crate::validate::{check_hostname, NameError};
use std::fmt;
use std::net::Ipv4Addr;

/// Interface used when `<device>` is empty: in a User-Mode Linux guest the vector network
/// driver (`vec0=...` on the UML command line) names its interfaces `vec0`, `vec1`, ...; there
/// is no `eth0` unless the host asks for the legacy `eth` driver, in which case the operator
/// names the device in the parameter.
pub const DEFAULT_DEVICE: &str = "vec0";

/// Maximum number of ':'-separated fields.
pub const MAX_FIELDS: usize = 10;

/// Longest hostname: one RFC 1123 label (the kernel itself would take 64 and truncate).
pub const MAX_HOSTNAME: usize = 63;

/// Longest NIS domain name (the kernel's `__NEW_UTS_LEN`).
pub const MAX_NIS_DOMAIN: usize = 64;

/// Longest interface name (`IFNAMSIZ` - 1).
pub const MAX_DEVICE: usize = 15;

/// Longest DHCP client identifier value the kernel keeps.
pub const MAX_CLIENT_ID: usize = 251;

const SYNTAX: &str = "<client-ip>:<server-ip>:<gw-ip>:<netmask>:<hostname>:<device>:<autoconf>:<dns0-ip>:<dns1-ip>:<ntp0-ip>";

const METHODS: &str = "off, none, on, any, dhcp, bootp, rarp or both";

const CLIENT_ID_USAGE: &str =
    "; the form is dhcp,<client-id-type>,<client-id-value>, e.g. 'dhcp,0,myclient'";

/// The `<autoconf>` method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Autoconf {
    /// `off` or `none` (or an empty `ip=`): no autoconfiguration.
    Off,
    /// `on` or `any`: every protocol the kernel has. The default when the field is empty.
    Any,
    /// `dhcp`.
    Dhcp,
    /// `bootp`.
    Bootp,
    /// `rarp`.
    Rarp,
    /// `both`: BOOTP and RARP but not DHCP (kept by the kernel for backwards compatibility).
    Both,
}

impl Autoconf {
    /// The canonical word, as written in `ip=`.
    pub fn as_str(self) -> &'static str {
        match self {
            Autoconf::Off => "off",
            Autoconf::Any => "any",
            Autoconf::Dhcp => "dhcp",
            Autoconf::Bootp => "bootp",
            Autoconf::Rarp => "rarp",
            Autoconf::Both => "both",
        }
    }
}

impl fmt::Display for Autoconf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The client identifier of `dhcp,<client-id-type>,<client-id-value>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpClientId {
    pub id_type: u8,
    pub value: String,
}

/// The ten positions of `ip=`, numbered from 1 in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    ClientIp,
    ServerIp,
    GwIp,
    Netmask,
    Hostname,
    Device,
    Autoconf,
    Dns0Ip,
    Dns1Ip,
    Ntp0Ip,
}

impl Field {
    const ALL: [Field; MAX_FIELDS] = [
        Field::ClientIp,
        Field::ServerIp,
        Field::GwIp,
        Field::Netmask,
        Field::Hostname,
        Field::Device,
        Field::Autoconf,
        Field::Dns0Ip,
        Field::Dns1Ip,
        Field::Ntp0Ip,
    ];

    /// Position, counting from 1.
    pub fn number(self) -> usize {
        self as usize + 1
    }

    /// Name as in the kernel documentation, e.g. `gw-ip`.
    pub fn name(self) -> &'static str {
        match self {
            Field::ClientIp => "client-ip",
            Field::ServerIp => "server-ip",
            Field::GwIp => "gw-ip",
            Field::Netmask => "netmask",
            Field::Hostname => "hostname",
            Field::Device => "device",
            Field::Autoconf => "autoconf",
            Field::Dns0Ip => "dns0-ip",
            Field::Dns1Ip => "dns1-ip",
            Field::Ntp0Ip => "ntp0-ip",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "field {} ({})", self.number(), self.name())
    }
}

/// Why an `ip=` value could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpParamError {
    /// More than [`MAX_FIELDS`] ':'-separated fields.
    TooManyFields { count: usize },
    /// One field is not what its position requires; `problem` completes "'<value>' ...".
    Field {
        field: Field,
        value: String,
        problem: FieldProblem,
    },
    /// The value asks for DHCP, BOOTP or RARP, which guest-init does not do. `defaulted` is true
    /// when no method was written and the kernel's default (`any`) applies because the client
    /// address is missing.
    Autoconf { method: Autoconf, defaulted: bool },
}

impl fmt::Display for IpParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpParamError::TooManyFields { count } => write!(
                f,
                "ip=: {count} ':'-separated fields given, but ip= has at most {MAX_FIELDS}: {SYNTAX}"
            ),
            IpParamError::Field {
                field,
                value,
                problem,
            } => write!(f, "ip=: {field} '{}' {problem}", value.escape_debug()),
            IpParamError::Autoconf { method, defaulted } => {
                if *defaulted {
                    write!(
                        f,
                        "ip=: no client address ({}) is given, so the kernel would autoconfigure the network (method 'any')",
                        Field::ClientIp
                    )?;
                } else {
                    write!(
                        f,
                        "ip=: '{method}' asks for network autoconfiguration"
                    )?;
                }
                write!(
                    f,
                    ", but guest-init supports only static ip= settings; give the addresses in the contract's network section, \
                     or use the static form ip=<client-ip>::<gw-ip>:<netmask>:<hostname>:<device>:off \
                     (e.g. ip=192.0.2.10::192.0.2.1:255.255.255.0::{DEFAULT_DEVICE}:off), or ip=off for no network"
                )
            }
        }
    }
}

impl std::error::Error for IpParamError {}

/// What is wrong with one field; the text completes "ip=: field N (name) '<value>' ...".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldProblem {
    #[error("contains whitespace or control characters, which ip= does not allow")]
    Whitespace,
    #[error("is not an IPv4 address (expected e.g. '192.0.2.10'; ip= takes IPv4 only)")]
    NotIpv4,
    #[error("is neither an IPv4 client address nor an autoconf method ({METHODS})")]
    NotAddressOrMethod,
    /// `what` names the kind of address, e.g. "a multicast address".
    #[error("is {what}; the client needs a unicast address such as '192.0.2.10'")]
    NotUnicast { what: &'static str },
    #[error("is not a contiguous netmask (expected e.g. '255.255.255.0')")]
    NotContiguousNetmask,
    #[error("is empty and no netmask can be derived from the class of {client}; give one")]
    NoNetmask { client: Ipv4Addr },
    #[error("has nothing before the first '.'; the hostname is the part before it")]
    NoHostname,
    #[error("has a hostname of {len} characters; at most {MAX_HOSTNAME} are allowed (one RFC 1123 label)")]
    HostnameTooLong { len: usize },
    #[error("is not a valid hostname: {0}")]
    InvalidHostname(NameError),
    #[error("has NIS domain '{domain}' (after the first '.'), which must be 1 to {MAX_NIS_DOMAIN} printable ASCII characters")]
    BadNisDomain { domain: String },
    #[error("is not an interface name (1 to {MAX_DEVICE} printable characters without '/', e.g. '{DEFAULT_DEVICE}')")]
    NotDevice,
    #[error("is not an autoconf method; use {METHODS}")]
    NotMethod,
    #[error("has no client identifier value{CLIENT_ID_USAGE}")]
    NoClientIdValue,
    #[error("has client identifier type '{id_type}', which is not a number from 0 to 255{CLIENT_ID_USAGE}")]
    BadClientIdType { id_type: String },
    #[error("has a client identifier value that is not 1 to {MAX_CLIENT_ID} printable ASCII characters{CLIENT_ID_USAGE}")]
    BadClientIdValue,
    #[error("is not on the client's network {net}/{prefix} (from client-ip and netmask); give a gateway on that network or a wider netmask")]
    GatewayOffNetwork { net: Ipv4Addr, prefix: u8 },
    /// `reason` is the contract's rule for interface addresses, without its leading address.
    #[error("{reason} (netmask from ip= or the address class)")]
    BadHostAddress { reason: String },
}

/// A parsed `ip=` value. Absent fields are `None` (or empty); see the module documentation for
/// how defaults apply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpConfig {
    pub client: Option<Ipv4Addr>,
    /// The NFS (boot) server; guest-init has no use for it but keeps it.
    pub server: Option<Ipv4Addr>,
    pub gateway: Option<Ipv4Addr>,
    /// The netmask as written; see [`IpConfig::effective_netmask`] for the classful default.
    pub netmask: Option<Ipv4Addr>,
    /// The part of `<hostname>` before the first '.'.
    pub hostname: Option<String>,
    /// The part of `<hostname>` after the first '.', which the kernel sets as NIS domain name.
    pub nis_domain: Option<String>,
    pub device: Option<String>,
    /// The method as written; `None` when the field is empty (the kernel then uses `any`).
    pub autoconf: Option<Autoconf>,
    /// Only with `dhcp,<client-id-type>,<client-id-value>`.
    pub dhcp_client_id: Option<DhcpClientId>,
    /// `<dns0-ip>` and `<dns1-ip>`, those given, in that order.
    pub dns: Vec<Ipv4Addr>,
    /// The NTP server; the contract has no place for it, so it is only kept here.
    pub ntp: Option<Ipv4Addr>,
}

/// Parses the value of an `ip=` (or `nfsaddrs=`) parameter, i.e. what follows the '='.
pub fn parse(value: &str) -> Result<IpConfig, IpParamError> {
    if let Some(cfg) = parse_method_only(value)? {
        return Ok(cfg);
    }
    let fields: Vec<&str> = value.split(':').collect();
    if fields.len() > MAX_FIELDS {
        return Err(IpParamError::TooManyFields {
            count: fields.len(),
        });
    }
    let mut cfg = IpConfig::default();
    for (&field, &text) in Field::ALL.iter().zip(&fields) {
        if !text.is_empty() {
            set_field(&mut cfg, field, text, fields.len())
                .map_err(|problem| field_error(field, text, problem))?;
        }
    }
    check_gateway(&cfg, &fields)?;
    check_client_address(&cfg, &fields)?;
    Ok(cfg)
}

/// The forms without ':' fields: empty, a lone method, or `dhcp,<type>,<value>`; `None` when
/// `value` is the ':'-separated form.
fn parse_method_only(value: &str) -> Result<Option<IpConfig>, IpParamError> {
    // The kernel first tries the whole value as an autoconf method ("dhcp,..." may hold ':'
    // in its client identifier), then treats empty, "off" and "none" as no autoconfiguration.
    if value.is_empty() {
        return Ok(Some(IpConfig {
            autoconf: Some(Autoconf::Off),
            ..IpConfig::default()
        }));
    }
    if value.contains(':') && !value.starts_with("dhcp,") {
        return Ok(None);
    }
    let Some(parsed) = parse_method(value) else {
        return Ok(None);
    };
    let (method, id) = parsed.map_err(|problem| field_error(Field::Autoconf, value, problem))?;
    Ok(Some(IpConfig {
        autoconf: Some(method),
        dhcp_client_id: id,
        ..IpConfig::default()
    }))
}

/// Parses one non-empty field into `cfg`; `count` is the number of fields written.
fn set_field(
    cfg: &mut IpConfig,
    field: Field,
    text: &str,
    count: usize,
) -> Result<(), FieldProblem> {
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(FieldProblem::Whitespace);
    }
    match field {
        Field::ClientIp => cfg.client = parse_client(text, count)?,
        Field::ServerIp => cfg.server = parse_v4(text)?,
        Field::GwIp => cfg.gateway = parse_v4(text)?,
        Field::Netmask => cfg.netmask = parse_netmask(text)?,
        Field::Hostname => {
            let (host, domain) = parse_hostname(text)?;
            cfg.hostname = Some(host.to_string());
            cfg.nis_domain = domain.map(str::to_string);
        }
        Field::Device => {
            check_device(text)?;
            cfg.device = Some(text.to_string());
        }
        Field::Autoconf => {
            let (method, id) = parse_method(text).unwrap_or(Err(FieldProblem::NotMethod))?;
            cfg.autoconf = Some(method);
            cfg.dhcp_client_id = id;
        }
        Field::Dns0Ip | Field::Dns1Ip => cfg.dns.extend(parse_v4(text)?),
        Field::Ntp0Ip => cfg.ntp = parse_v4(text)?,
    }
    Ok(())
}

/// `<client-ip>`; a lone word without '.' was most likely meant as a method, so the message
/// names both readings.
fn parse_client(text: &str, count: usize) -> Result<Option<Ipv4Addr>, FieldProblem> {
    let ip = parse_v4(text).map_err(|problem| {
        if count == 1 && !text.contains('.') {
            FieldProblem::NotAddressOrMethod
        } else {
            problem
        }
    })?;
    if let Some(ip) = ip {
        check_client(ip)?;
    }
    Ok(ip)
}

fn parse_netmask(text: &str) -> Result<Option<Ipv4Addr>, FieldProblem> {
    let mask = parse_v4(text)?;
    match mask {
        Some(m) if netmask_to_prefix(m).is_none() => Err(FieldProblem::NotContiguousNetmask),
        _ => Ok(mask),
    }
}

/// The gateway must be on the client's network, else the kernel's route would not work.
fn check_gateway(cfg: &IpConfig, fields: &[&str]) -> Result<(), IpParamError> {
    let (Some(client), Some(gw)) = (cfg.client, cfg.gateway) else {
        return Ok(());
    };
    let mask = cfg.effective_netmask().map_or(0, u32::from);
    if (u32::from(client) ^ u32::from(gw)) & mask == 0 {
        return Ok(());
    }
    let prefix = netmask_to_prefix(Ipv4Addr::from(mask)).unwrap_or(0);
    let net = Ipv4Addr::from(u32::from(client) & mask);
    let gw_text = fields
        .get(Field::GwIp as usize)
        .copied()
        .unwrap_or_default();
    Err(field_error(
        Field::GwIp,
        gw_text,
        FieldProblem::GatewayOffNetwork { net, prefix },
    ))
}

/// The contract's own rule for interface addresses (network, broadcast, ...), so that what
/// ip= configures is what a contract could say (found by fuzzing: ip=192.0.22.0:).
fn check_client_address(cfg: &IpConfig, fields: &[&str]) -> Result<(), IpParamError> {
    let Some(client) = cfg.client else {
        return Ok(());
    };
    let prefix = cfg
        .effective_netmask()
        .and_then(netmask_to_prefix)
        .unwrap_or(32);
    let cidr_text = format!("{client}/{prefix}");
    let cidr = crate::addr::Cidr {
        addr: client.into(),
        prefix,
    };
    let Err(m) = crate::validate::check_host_address(&cidr_text, cidr) else {
        return Ok(());
    };
    let m = m.to_string();
    let reason = m
        .strip_prefix(&format!("'{cidr_text}' "))
        .unwrap_or(&m)
        .to_string();
    let text = fields
        .get(Field::ClientIp as usize)
        .copied()
        .unwrap_or_default();
    Err(field_error(
        Field::ClientIp,
        text,
        FieldProblem::BadHostAddress { reason },
    ))
}

impl IpConfig {
    /// The hostname (without the NIS domain), if given.
    pub fn hostname(&self) -> Option<&str> {
        self.hostname.as_deref()
    }

    /// The netmask as written or, if absent, derived from the class of the client address.
    pub fn effective_netmask(&self) -> Option<Ipv4Addr> {
        self.netmask
            .or_else(|| self.client.and_then(classful_netmask))
    }

    /// The method that applies: `None` when the configuration is static (a client address is
    /// given), else the method written or the kernel's default `any`.
    pub fn dynamic_method(&self) -> Option<Autoconf> {
        match self.client {
            Some(_) => None,
            None => Some(self.autoconf.unwrap_or(Autoconf::Any)),
        }
    }

    /// The contract network this value stands for: one interface (`<device>`, else
    /// [`DEFAULT_DEVICE`]) with the client address and prefix, a default route via the gateway
    /// if one is given, and the resolvers from `<dns0-ip>` and `<dns1-ip>`.
    ///
    /// `Ok(None)` means no network configuration (`ip=off`, `ip=none`, `ip=`, or no client
    /// address with autoconf `off`). Autoconfiguration is an error: guest-init does no DHCP.
    pub fn to_network(&self) -> Result<Option<Network>, IpParamError> {
        let Some(client) = self.client else {
            return match self.autoconf.unwrap_or(Autoconf::Any) {
                Autoconf::Off => Ok(None),
                method => Err(IpParamError::Autoconf {
                    method,
                    defaulted: self.autoconf.is_none(),
                }),
            };
        };
        let prefix = self
            .effective_netmask()
            .and_then(netmask_to_prefix)
            .ok_or_else(|| field_error(Field::Netmask, "", FieldProblem::NoNetmask { client }))?;
        let name = self.device.as_deref().unwrap_or(DEFAULT_DEVICE).to_string();
        let routes = self
            .gateway
            .map(|gw| Route {
                destination: "0.0.0.0/0".into(),
                gateway: Some(gw.to_string()),
                interface: Some(name.clone()),
                metric: None,
            })
            .into_iter()
            .collect();
        Ok(Some(Network {
            interfaces: vec![Interface {
                name,
                mac: None,
                addresses: vec![format!("{client}/{prefix}")],
                mtu: None,
            }],
            routes,
            dns_servers: self.dns.iter().map(Ipv4Addr::to_string).collect(),
            search_domains: Vec::new(),
        }))
    }
}

fn field_error(field: Field, value: &str, problem: FieldProblem) -> IpParamError {
    IpParamError::Field {
        field,
        value: value.to_string(),
        problem,
    }
}

/// A dotted-quad IPv4 address; `0.0.0.0` means "not given", as in the kernel.
fn parse_v4(text: &str) -> Result<Option<Ipv4Addr>, FieldProblem> {
    let ip: Ipv4Addr = text.parse().map_err(|_| FieldProblem::NotIpv4)?;
    Ok((!ip.is_unspecified()).then_some(ip))
}

fn check_client(ip: Ipv4Addr) -> Result<(), FieldProblem> {
    let what = if ip.is_broadcast() {
        "the broadcast address"
    } else if ip.is_multicast() {
        "a multicast address"
    } else if ip.is_loopback() {
        "a loopback address"
    } else {
        return Ok(());
    };
    Err(FieldProblem::NotUnicast { what })
}

/// The netmask of the address class (RFC 791), as the kernel derives it; `None` for class D.
pub fn classful_netmask(ip: Ipv4Addr) -> Option<Ipv4Addr> {
    let prefix = match ip.octets()[0] {
        0..=127 => 8,
        128..=191 => 16,
        192..=223 => 24,
        224..=239 => return None,
        240..=255 => 32,
    };
    Some(Ipv4Addr::from(u32::MAX << (32 - prefix)))
}

/// Splits `host[.nis-domain]` and checks both parts.
fn parse_hostname(text: &str) -> Result<(&str, Option<&str>), FieldProblem> {
    let (host, domain) = match text.split_once('.') {
        Some((h, d)) => (h, (!d.is_empty()).then_some(d)),
        None => (text, None),
    };
    if host.is_empty() {
        return Err(FieldProblem::NoHostname);
    }
    if host.len() > MAX_HOSTNAME {
        return Err(FieldProblem::HostnameTooLong { len: host.len() });
    }
    check_hostname(host).map_err(FieldProblem::InvalidHostname)?;
    if let Some(d) = domain {
        if d.len() > MAX_NIS_DOMAIN || !d.chars().all(|c| c.is_ascii_graphic()) {
            return Err(FieldProblem::BadNisDomain {
                domain: d.to_string(),
            });
        }
    }
    Ok((host, domain))
}

/// The rules of the contract's interface names (Linux: at most 15 characters, no '/').
fn check_device(name: &str) -> Result<(), FieldProblem> {
    let ok = name.len() <= MAX_DEVICE
        && name != "."
        && name != ".."
        && name.chars().all(|c| c.is_ascii_graphic() && c != '/');
    if ok {
        Ok(())
    } else {
        Err(FieldProblem::NotDevice)
    }
}

/// An autoconf method; `None` if `text` is not one at all, `Some(Err)` for a malformed
/// `dhcp,<client-id-type>,<client-id-value>`.
fn parse_method(text: &str) -> Option<Result<(Autoconf, Option<DhcpClientId>), FieldProblem>> {
    let method = match text {
        "off" | "none" => Autoconf::Off,
        "on" | "any" => Autoconf::Any,
        "dhcp" => Autoconf::Dhcp,
        "bootp" => Autoconf::Bootp,
        "rarp" => Autoconf::Rarp,
        "both" => Autoconf::Both,
        _ => {
            let rest = text.strip_prefix("dhcp,")?;
            return Some(parse_client_id(rest).map(|id| (Autoconf::Dhcp, Some(id))));
        }
    };
    Some(Ok((method, None)))
}

fn parse_client_id(rest: &str) -> Result<DhcpClientId, FieldProblem> {
    let (id_type, value) = rest.split_once(',').ok_or(FieldProblem::NoClientIdValue)?;
    // The kernel reads the type with kstrtou8(.., 0): decimal, 0x-hex or 0-octal.
    let parsed = if let Some(hex) = id_type
        .strip_prefix("0x")
        .or_else(|| id_type.strip_prefix("0X"))
    {
        u8::from_str_radix(hex, 16)
    } else if id_type.len() > 1 && id_type.starts_with('0') {
        u8::from_str_radix(&id_type[1..], 8)
    } else {
        id_type.parse()
    };
    let id_type = parsed
        .ok()
        .filter(|_| !id_type.starts_with('+'))
        .ok_or_else(|| FieldProblem::BadClientIdType {
            id_type: id_type.to_string(),
        })?;
    if value.is_empty()
        || value.len() > MAX_CLIENT_ID
        || !value.chars().all(|c| c.is_ascii_graphic())
    {
        return Err(FieldProblem::BadClientIdValue);
    }
    Ok(DhcpClientId {
        id_type,
        value: value.to_string(),
    })
}

#[cfg(test)]
mod tests;
