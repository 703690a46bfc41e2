//! Tests of the `ip=` import: every field, the kernel's rules, and the errors.

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
    assert!(e.to_string().starts_with(
        "ip=: no client address (field 1 (client-ip)) is given, so the kernel would autoconfigure"
    ));
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
