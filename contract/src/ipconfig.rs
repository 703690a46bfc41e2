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
use crate::v1::{Interface, Network, Route};
use crate::validate::check_hostname;
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
        problem: String,
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
    // The kernel first tries the whole value as an autoconf method ("dhcp,..." may hold ':'
    // in its client identifier), then treats empty, "off" and "none" as no autoconfiguration.
    if value.is_empty() {
        return Ok(IpConfig {
            autoconf: Some(Autoconf::Off),
            ..IpConfig::default()
        });
    }
    if !value.contains(':') || value.starts_with("dhcp,") {
        if let Some(parsed) = parse_method(value) {
            let (method, id) =
                parsed.map_err(|problem| field_error(Field::Autoconf, value, problem))?;
            return Ok(IpConfig {
                autoconf: Some(method),
                dhcp_client_id: id,
                ..IpConfig::default()
            });
        }
    }

    let fields: Vec<&str> = value.split(':').collect();
    if fields.len() > MAX_FIELDS {
        return Err(IpParamError::TooManyFields {
            count: fields.len(),
        });
    }
    let mut cfg = IpConfig::default();
    for (&field, &text) in Field::ALL.iter().zip(&fields) {
        if text.is_empty() {
            continue;
        }
        let err = |problem: String| field_error(field, text, problem);
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(err(
                "contains whitespace or control characters, which ip= does not allow".into(),
            ));
        }
        match field {
            Field::ClientIp => {
                let ip = parse_v4(text).map_err(|problem| {
                    if fields.len() == 1 && !text.contains('.') {
                        format!(
                            "is neither an IPv4 client address nor an autoconf method ({METHODS})"
                        )
                    } else {
                        problem
                    }
                });
                let ip = ip.map_err(err)?;
                if let Some(ip) = ip {
                    check_client(ip).map_err(err)?;
                }
                cfg.client = ip;
            }
            Field::ServerIp => cfg.server = parse_v4(text).map_err(err)?,
            Field::GwIp => cfg.gateway = parse_v4(text).map_err(err)?,
            Field::Netmask => {
                let mask = parse_v4(text).map_err(err)?;
                if let Some(m) = mask {
                    if netmask_to_prefix(m).is_none() {
                        return Err(err(
                            "is not a contiguous netmask (expected e.g. '255.255.255.0')".into(),
                        ));
                    }
                }
                cfg.netmask = mask;
            }
            Field::Hostname => {
                let (host, domain) = parse_hostname(text).map_err(err)?;
                cfg.hostname = Some(host.to_string());
                cfg.nis_domain = domain.map(str::to_string);
            }
            Field::Device => {
                check_device(text).map_err(err)?;
                cfg.device = Some(text.to_string());
            }
            Field::Autoconf => {
                let (method, id) = parse_method(text)
                    .unwrap_or_else(|| Err(format!("is not an autoconf method; use {METHODS}")))
                    .map_err(err)?;
                cfg.autoconf = Some(method);
                cfg.dhcp_client_id = id;
            }
            Field::Dns0Ip | Field::Dns1Ip => cfg.dns.extend(parse_v4(text).map_err(err)?),
            Field::Ntp0Ip => cfg.ntp = parse_v4(text).map_err(err)?,
        }
    }

    if let (Some(client), Some(gw)) = (cfg.client, cfg.gateway) {
        let mask = cfg.effective_netmask().map_or(0, u32::from);
        if (u32::from(client) ^ u32::from(gw)) & mask != 0 {
            let prefix = netmask_to_prefix(Ipv4Addr::from(mask)).unwrap_or(0);
            let net = Ipv4Addr::from(u32::from(client) & mask);
            let gw_text = fields
                .get(Field::GwIp as usize)
                .copied()
                .unwrap_or_default();
            return Err(field_error(
                Field::GwIp,
                gw_text,
                format!(
                    "is not on the client's network {net}/{prefix} (from client-ip and netmask); \
                     give a gateway on that network or a wider netmask"
                ),
            ));
        }
    }
    // The contract's own rule for interface addresses (network, broadcast, ...), so that what
    // ip= configures is what a contract could say (found by fuzzing: ip=192.0.22.0:).
    if let Some(client) = cfg.client {
        let prefix = cfg
            .effective_netmask()
            .and_then(netmask_to_prefix)
            .unwrap_or(32);
        let cidr_text = format!("{client}/{prefix}");
        let cidr = crate::addr::Cidr {
            addr: client.into(),
            prefix,
        };
        if let Err(m) = crate::validate::check_host_address(&cidr_text, cidr) {
            let problem = m
                .strip_prefix(&format!("'{cidr_text}' "))
                .unwrap_or(&m)
                .to_string();
            let text = fields
                .get(Field::ClientIp as usize)
                .copied()
                .unwrap_or_default();
            return Err(field_error(
                Field::ClientIp,
                text,
                format!("{problem} (netmask from ip= or the address class)"),
            ));
        }
    }
    Ok(cfg)
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
            .ok_or_else(|| {
                field_error(
                    Field::Netmask,
                    "",
                    format!("is empty and no netmask can be derived from the class of {client}; give one"),
                )
            })?;
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

fn field_error(field: Field, value: &str, problem: String) -> IpParamError {
    IpParamError::Field {
        field,
        value: value.to_string(),
        problem,
    }
}

/// A dotted-quad IPv4 address; `0.0.0.0` means "not given", as in the kernel.
fn parse_v4(text: &str) -> Result<Option<Ipv4Addr>, String> {
    let ip: Ipv4Addr = text.parse().map_err(|_| {
        "is not an IPv4 address (expected e.g. '192.0.2.10'; ip= takes IPv4 only)".to_string()
    })?;
    Ok((!ip.is_unspecified()).then_some(ip))
}

fn check_client(ip: Ipv4Addr) -> Result<(), String> {
    let what = if ip.is_broadcast() {
        "the broadcast address"
    } else if ip.is_multicast() {
        "a multicast address"
    } else if ip.is_loopback() {
        "a loopback address"
    } else {
        return Ok(());
    };
    Err(format!(
        "is {what}; the client needs a unicast address such as '192.0.2.10'"
    ))
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
fn parse_hostname(text: &str) -> Result<(&str, Option<&str>), String> {
    let (host, domain) = match text.split_once('.') {
        Some((h, d)) => (h, (!d.is_empty()).then_some(d)),
        None => (text, None),
    };
    if host.is_empty() {
        return Err("has nothing before the first '.'; the hostname is the part before it".into());
    }
    if host.len() > MAX_HOSTNAME {
        return Err(format!(
            "has a hostname of {} characters; at most {MAX_HOSTNAME} are allowed (one RFC 1123 label)",
            host.len()
        ));
    }
    check_hostname(host).map_err(|m| format!("is not a valid hostname: {m}"))?;
    if let Some(d) = domain {
        if d.len() > MAX_NIS_DOMAIN || !d.chars().all(|c| c.is_ascii_graphic()) {
            return Err(format!(
                "has NIS domain '{d}' (after the first '.'), which must be 1 to {MAX_NIS_DOMAIN} printable ASCII characters"
            ));
        }
    }
    Ok((host, domain))
}

/// The rules of the contract's interface names (Linux: at most 15 characters, no '/').
fn check_device(name: &str) -> Result<(), String> {
    let ok = name.len() <= MAX_DEVICE
        && name != "."
        && name != ".."
        && name.chars().all(|c| c.is_ascii_graphic() && c != '/');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "is not an interface name (1 to {MAX_DEVICE} printable characters without '/', e.g. '{DEFAULT_DEVICE}')"
        ))
    }
}

/// An autoconf method; `None` if `text` is not one at all, `Some(Err)` for a malformed
/// `dhcp,<client-id-type>,<client-id-value>`.
fn parse_method(text: &str) -> Option<Result<(Autoconf, Option<DhcpClientId>), String>> {
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

fn parse_client_id(rest: &str) -> Result<DhcpClientId, String> {
    let usage = "; the form is dhcp,<client-id-type>,<client-id-value>, e.g. 'dhcp,0,myclient'";
    let (id_type, value) = rest
        .split_once(',')
        .ok_or_else(|| format!("has no client identifier value{usage}"))?;
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
        .ok_or_else(|| format!("has client identifier type '{id_type}', which is not a number from 0 to 255{usage}"))?;
    if value.is_empty()
        || value.len() > MAX_CLIENT_ID
        || !value.chars().all(|c| c.is_ascii_graphic())
    {
        return Err(format!(
            "has a client identifier value that is not 1 to {MAX_CLIENT_ID} printable ASCII characters{usage}"
        ));
    }
    Ok(DhcpClientId {
        id_type,
        value: value.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn err(value: &str) -> String {
        parse(value).unwrap_err().to_string()
    }

    // --- Every concrete form nfsroot.rst shows ---

    #[test]
    fn doc_short_forms_off_and_none() {
        for v in ["off", "none"] {
            let c = parse(v).unwrap();
            assert_eq!(c.autoconf, Some(Autoconf::Off));
            assert_eq!(c.to_network().unwrap(), None);
        }
    }

    #[test]
    fn doc_short_forms_request_autoconfiguration() {
        let cases = [
            ("on", Autoconf::Any),
            ("any", Autoconf::Any),
            ("dhcp", Autoconf::Dhcp),
            ("bootp", Autoconf::Bootp),
            ("rarp", Autoconf::Rarp),
            ("both", Autoconf::Both),
        ];
        for (v, method) in cases {
            let c = parse(v).unwrap();
            assert_eq!(
                c,
                IpConfig {
                    autoconf: Some(method),
                    ..IpConfig::default()
                }
            );
            assert_eq!(
                c.to_network().unwrap_err(),
                IpParamError::Autoconf {
                    method,
                    defaulted: false
                }
            );
        }
    }

    #[test]
    fn doc_most_common_ip_dhcp_is_a_clear_error() {
        let e = parse("dhcp").unwrap().to_network().unwrap_err().to_string();
        assert!(e.starts_with("ip=: 'dhcp' asks for network autoconfiguration, but guest-init supports only static ip= settings"), "{e}");
        assert!(e.contains("contract's network section"), "{e}");
        assert!(
            e.contains("ip=192.0.2.10::192.0.2.1:255.255.255.0::vec0:off"),
            "{e}"
        );
    }

    #[test]
    fn doc_dhcp_client_identifier_form() {
        let c = parse("dhcp,1,client-id-value").unwrap();
        assert_eq!(c.autoconf, Some(Autoconf::Dhcp));
        assert_eq!(
            c.dhcp_client_id,
            Some(DhcpClientId {
                id_type: 1,
                value: "client-id-value".into()
            })
        );
        // A MAC-like identifier holds ':' and is still the short form, as in the kernel.
        let c = parse("dhcp,0x01,02:00:00:00:00:01").unwrap();
        assert_eq!(c.dhcp_client_id.unwrap().id_type, 1);
        // In the autoconf field too.
        let c = parse("::::::dhcp,010,abc").unwrap();
        assert_eq!(c.dhcp_client_id.unwrap().id_type, 8);
        assert!(err("dhcp,1").contains("has no client identifier value"));
        assert!(err("dhcp,300,x").contains("type '300', which is not a number from 0 to 255"));
        assert!(err("dhcp,1,").contains("client identifier value"));
    }

    #[test]
    fn doc_full_template_with_every_field() {
        let c = parse("192.168.1.10:192.168.1.1:192.168.1.1:255.255.255.0:myhost.nis:eth0:off:192.168.1.53:192.168.1.54:192.168.1.123").unwrap();
        assert_eq!(
            c,
            IpConfig {
                client: Some(ip("192.168.1.10")),
                server: Some(ip("192.168.1.1")),
                gateway: Some(ip("192.168.1.1")),
                netmask: Some(ip("255.255.255.0")),
                hostname: Some("myhost".into()),
                nis_domain: Some("nis".into()),
                device: Some("eth0".into()),
                autoconf: Some(Autoconf::Off),
                dhcp_client_id: None,
                dns: vec![ip("192.168.1.53"), ip("192.168.1.54")],
                ntp: Some(ip("192.168.1.123")),
            }
        );
        assert_eq!(c.hostname(), Some("myhost"));
        let net = c.to_network().unwrap().unwrap();
        assert_eq!(net.interfaces.len(), 1);
        assert_eq!(net.interfaces[0].name, "eth0");
        assert_eq!(net.interfaces[0].addresses, ["192.168.1.10/24"]);
        assert_eq!(
            net.routes,
            [Route {
                destination: "0.0.0.0/0".into(),
                gateway: Some("192.168.1.1".into()),
                interface: Some("eth0".into()),
                metric: None,
            }]
        );
        assert_eq!(net.dns_servers, ["192.168.1.53", "192.168.1.54"]);
    }

    #[test]
    fn doc_parameter_missing_means_all_fields_empty_and_autoconfiguration() {
        let c = parse(":::::::::").unwrap();
        assert_eq!(c, IpConfig::default());
        let e = c.to_network().unwrap_err();
        assert_eq!(
            e,
            IpParamError::Autoconf {
                method: Autoconf::Any,
                defaulted: true
            }
        );
        assert!(e.to_string().starts_with("ip=: no client address (field 1 (client-ip)) is given, so the kernel would autoconfigure"));
    }

    #[test]
    fn doc_autoconf_field_with_empty_fields_before_it() {
        assert_eq!(parse("::::::dhcp").unwrap().autoconf, Some(Autoconf::Dhcp));
        assert!(parse("::::::dhcp").unwrap().to_network().is_err());
        assert!(parse("::::::any").unwrap().to_network().is_err());
        // Without a client address, "off" means no configuration at all; the hostname stays.
        let c = parse("::::myhost::off").unwrap();
        assert_eq!(c.to_network().unwrap(), None);
        assert_eq!(c.hostname(), Some("myhost"));
    }

    #[test]
    fn doc_default_netmask_is_classful() {
        let prefix = |v: &str| {
            parse(v).unwrap().to_network().unwrap().unwrap().interfaces[0].addresses[0].clone()
        };
        assert_eq!(prefix("10.1.2.3"), "10.1.2.3/8");
        assert_eq!(prefix("172.16.5.4"), "172.16.5.4/16");
        assert_eq!(prefix("192.168.1.10"), "192.168.1.10/24");
        assert_eq!(prefix("240.0.0.1"), "240.0.0.1/32");
        // 0.0.0.0 is "not given", as in the kernel.
        assert_eq!(prefix("10.1.2.3:::0.0.0.0"), "10.1.2.3/8");
        assert_eq!(prefix("10.1.2.3:::255.255.0.0"), "10.1.2.3/16");
        assert_eq!(classful_netmask(ip("224.0.0.1")), None);
    }

    #[test]
    fn doc_default_device_and_fewer_fields() {
        // The form operators commonly copy, without autoconf field (so "any", but static
        // because the client address is given).
        let c = parse("192.168.1.55:192.168.1.254:192.168.1.254:255.255.255.0::eth0").unwrap();
        assert_eq!(c.autoconf, None);
        assert_eq!(c.to_network().unwrap().unwrap().interfaces[0].name, "eth0");
        let net = parse("192.0.2.10::192.0.2.1:255.255.255.0")
            .unwrap()
            .to_network()
            .unwrap()
            .unwrap();
        assert_eq!(net.interfaces[0].name, DEFAULT_DEVICE);
        assert_eq!(net.routes[0].interface.as_deref(), Some("vec0"));
        // No gateway: no route; no dns: none.
        let net = parse("192.0.2.10").unwrap().to_network().unwrap().unwrap();
        assert!(net.routes.is_empty());
        assert!(net.dns_servers.is_empty());
        // A trailing ':' is an empty field.
        assert_eq!(parse("192.0.2.10:").unwrap().client, Some(ip("192.0.2.10")));
    }

    #[test]
    fn client_address_makes_it_static_whatever_autoconf_says() {
        let net = parse("192.0.2.10::::::dhcp")
            .unwrap()
            .to_network()
            .unwrap()
            .unwrap();
        assert_eq!(net.interfaces[0].addresses, ["192.0.2.10/24"]);
    }

    #[test]
    fn empty_value_is_off_as_in_the_kernel() {
        let c = parse("").unwrap();
        assert_eq!(c.autoconf, Some(Autoconf::Off));
        assert_eq!(c.to_network().unwrap(), None);
    }

    #[test]
    fn dns1_alone_and_ntp() {
        let c = parse("192.0.2.10::::::off::192.0.2.53:192.0.2.123").unwrap();
        assert_eq!(c.dns, [ip("192.0.2.53")]);
        assert_eq!(c.ntp, Some(ip("192.0.2.123")));
    }

    // --- Errors ---

    #[test]
    fn bad_ip_in_each_position_names_the_field() {
        let cases = [
            ("300.1.1.1", "field 1 (client-ip) '300.1.1.1'"),
            ("10.0.0.1:x", "field 2 (server-ip) 'x'"),
            ("10.0.0.1::10.0.0.256", "field 3 (gw-ip) '10.0.0.256'"),
            ("10.0.0.1:::255.255.255", "field 4 (netmask) '255.255.255'"),
            ("10.0.0.1:::::::1.2.3", "field 8 (dns0-ip) '1.2.3'"),
            ("10.0.0.1::::::::dns", "field 9 (dns1-ip) 'dns'"),
            (
                "10.0.0.1:::::::::ntp.example",
                "field 10 (ntp0-ip) 'ntp.example'",
            ),
        ];
        for (v, start) in cases {
            let e = err(v);
            assert!(
                e.starts_with(&format!("ip=: {start} is not an IPv4 address")),
                "{v}: {e}"
            );
        }
    }

    #[test]
    fn bad_client_addresses() {
        assert!(err("255.255.255.255").contains("is the broadcast address"));
        assert!(err("224.0.0.1").contains("is a multicast address"));
        assert!(err("127.0.0.1").contains("is a loopback address"));
        assert_eq!(
            err("dhcpp"),
            "ip=: field 1 (client-ip) 'dhcpp' is neither an IPv4 client address nor an autoconf method (off, none, on, any, dhcp, bootp, rarp or both)"
        );
    }

    #[test]
    fn ipv6_is_reported_as_not_ipv4() {
        assert!(err("2001:db8::10").contains("ip= takes IPv4 only"));
    }

    #[test]
    fn bad_autoconf_word() {
        assert_eq!(
            err("10.0.0.1::::::dhcpv6"),
            "ip=: field 7 (autoconf) 'dhcpv6' is not an autoconf method; use off, none, on, any, dhcp, bootp, rarp or both"
        );
        // The words are lower case, as in the kernel.
        assert!(err("::::::DHCP").contains("is not an autoconf method"));
    }

    #[test]
    fn too_many_fields() {
        assert_eq!(
            err("10.0.0.1::::::off::::"),
            "ip=: 11 ':'-separated fields given, but ip= has at most 10: <client-ip>:<server-ip>:<gw-ip>:<netmask>:<hostname>:<device>:<autoconf>:<dns0-ip>:<dns1-ip>:<ntp0-ip>"
        );
    }

    #[test]
    fn non_contiguous_netmask() {
        assert_eq!(
            err("10.0.0.1:::255.0.255.0"),
            "ip=: field 4 (netmask) '255.0.255.0' is not a contiguous netmask (expected e.g. '255.255.255.0')"
        );
    }

    #[test]
    fn hostname_rules() {
        let long = "a".repeat(64);
        assert_eq!(
            err(&format!("::::{long}")),
            format!("ip=: field 5 (hostname) '{long}' has a hostname of 64 characters; at most 63 are allowed (one RFC 1123 label)")
        );
        assert_eq!(
            parse(&format!("::::{}", "a".repeat(63)))
                .unwrap()
                .hostname()
                .map(str::len),
            Some(63)
        );
        assert!(err("::::my_host").contains("is not a valid hostname"));
        assert!(err("::::.nis").contains("nothing before the first '.'"));
        assert!(err(&format!("::::h.{}", "d".repeat(65))).contains("NIS domain"));
        let c = parse("::::h.").unwrap();
        assert_eq!((c.hostname(), c.nis_domain.as_deref()), (Some("h"), None));
    }

    #[test]
    fn device_rules() {
        assert!(err(":::::averyveryverylongname")
            .contains("field 6 (device) 'averyveryverylongname' is not an interface name"));
        assert!(err(":::::a/b").contains("is not an interface name"));
        assert_eq!(parse(":::::eth1").unwrap().device.as_deref(), Some("eth1"));
    }

    #[test]
    fn whitespace_is_rejected() {
        assert_eq!(
            err("::::my host"),
            "ip=: field 5 (hostname) 'my host' contains whitespace or control characters, which ip= does not allow"
        );
        assert!(err("10.0.0.1 ").contains("field 1 (client-ip) '10.0.0.1 ' contains whitespace"));
        assert!(err("dhcp\t").contains("'dhcp\\t' contains whitespace"));
    }

    #[test]
    fn gateway_must_be_on_the_client_network() {
        assert_eq!(
            err("192.0.2.10::198.51.100.1:255.255.255.0"),
            "ip=: field 3 (gw-ip) '198.51.100.1' is not on the client's network 192.0.2.0/24 (from client-ip and netmask); give a gateway on that network or a wider netmask"
        );
        // With the classful default, 10/8 holds the gateway.
        assert!(parse("10.1.0.5::10.2.0.1").is_ok());
    }

    #[test]
    fn resulting_network_passes_contract_validation() {
        let mut c =
            crate::parse_json(br#"{"version":1,"hostname":"h","service":{"argv":["/bin/true"]}}"#)
                .unwrap();
        for v in [
            "192.168.1.10:192.168.1.1:192.168.1.1:255.255.255.0:myhost:eth0:off:192.168.1.53:192.168.1.54:192.168.1.123",
            "192.0.2.10::192.0.2.1:255.255.255.0::vec0:off",
            "10.0.0.2",
            "172.16.0.9::172.16.0.1::::none::8.8.8.8",
            "192.0.2.10:::255.255.255.255",
        ] {
            let cfg = parse(v).unwrap();
            c.network = cfg.to_network().unwrap();
            assert!(c.network.is_some());
            if let Some(h) = cfg.hostname() {
                c.hostname = h.to_string();
            }
            crate::validate(&c).unwrap_or_else(|p| panic!("{v}: {p}"));
        }
    }

    /// Found by fuzzing (fuzz/fuzz_targets/ipconfig.rs): a client address that is its
    /// network's own address was accepted here and refused by the contract's validation.
    #[test]
    fn fuzz_regression_network_or_broadcast_client_address() {
        for (value, what) in [
            ("192.0.22.0:", "network"),
            ("192.0.2.255::::::off", "broadcast"),
            ("10.0.0.0:::255.255.0.0", "network"),
        ] {
            let e = parse(value).unwrap_err().to_string();
            assert!(e.starts_with("ip=: field 1 (client-ip)"), "{value}: {e}");
            assert!(
                e.contains(&format!("is the {what} address")),
                "{value}: {e}"
            );
        }
        assert!(parse("192.0.2.0::::::off:").is_err());
        assert!(parse("192.0.2.1::::::off").is_ok());
        assert!(
            parse("10.0.0.0:::255.255.255.254").is_ok(),
            "a /31 has no network address"
        );
    }
}
