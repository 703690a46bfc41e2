//! Runs the real rtnetlink code of `guest_init::net` against the host kernel, each test in a
//! fresh network namespace of its own.
//!
//! How the namespace is made: each test spawns a thread that calls `unshare(CLONE_NEWNET)`.
//! A network namespace belongs to a task (thread), so only that thread moves; the rest of the
//! test process, and the host, stay in the host namespace. Everything namespace-bound then
//! happens on that thread: `configure` opens its netlink socket there (a socket is bound to
//! the namespace of the thread that creates it), and the `ip` commands used to create the
//! veth interface and to check the result are spawned from it (a child process inherits the
//! namespaces of the thread that forked it). When the thread ends, nothing refers to the
//! namespace any more and the kernel deletes it together with its interfaces: no cleanup
//! step can be forgotten, and the host namespace is never touched.
//!
//! The interface is one end of a veth pair whose other end stays in the same namespace, so
//! nothing sent can leave it; addresses come from the documentation ranges (192.0.2.0/24, 198.51.100.0/24, 2001:db8::/32). Needs root
//! (CAP_SYS_ADMIN and CAP_NET_ADMIN) and iproute2's `ip`; without the privilege the tests
//! fail and say why (a test that cannot run must not look green).

use contract::{Interface, Network, Route};
use guest_init::net::{self, NetError};
use nix::errno::Errno;
use serde_json::Value;
use std::collections::BTreeSet;
use std::process::Command;

const IFACE: &str = "e2e0";
const PEER: &str = "e2e1";
const MAC: &str = "02:00:00:00:e2:01";

/// Runs `f` on a new thread inside a new network namespace; `None` if we may not unshare.
/// The section typed as guest-init gets it from `contract::checked`.
fn typed(n: &Network) -> contract::checked::Network {
    contract::checked::network(n).expect("a network whose values parse")
}

fn in_fresh_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let worker = std::thread::spawn(move || {
        // SAFETY: unshare(2) has no memory-safety preconditions; with CLONE_NEWNET it only
        // moves the calling thread to a new, empty network namespace.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            // Not a skip: a test that cannot run must not look green. CI runs as root.
            let e = Errno::last();
            panic!(
                "unshare(CLONE_NEWNET) failed: {e}; these tests need root (run them as CI does)"
            );
        }
        assert_ne!(
            std::fs::read_link("/proc/thread-self/ns/net").unwrap(),
            std::fs::read_link("/proc/self/ns/net").unwrap(),
            "the test thread must not be in the process's (host) namespace"
        );
        Some(f())
    });
    match worker.join() {
        Ok(v) => v,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Runs `ip ARGS` (in the calling thread's namespace) and returns its stdout.
fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn ip_json(args: &[&str]) -> Value {
    let mut all = vec!["-j"];
    all.extend_from_slice(args);
    serde_json::from_str(&ip(&all)).unwrap()
}

/// Creates the interface under test, `e2e0`, as one end of a veth pair. (Dummy would be
/// simpler but is a module that minimal CI kernels lack; veth is nearly always there.) The
/// peer is brought up so that `e2e0` has carrier once up, as a guest's NIC has: without
/// carrier the kernel holds IPv6 addresses back as tentative.
fn add_link() {
    ip(&["link", "add", IFACE, "type", "veth", "peer", "name", PEER]);
    ip(&["link", "set", PEER, "up"]);
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn route(dest: &str, gw: Option<&str>, dev: Option<&str>, metric: Option<u32>) -> Route {
    Route {
        destination: dest.into(),
        gateway: gw.map(str::to_string),
        interface: dev.map(str::to_string),
        metric,
    }
}

fn full_network() -> Network {
    Network {
        interfaces: vec![Interface {
            name: IFACE.into(),
            mac: Some(MAC.into()),
            addresses: strings(&["192.0.2.10/24", "2001:db8::10/64"]),
            mtu: Some(1400),
        }],
        routes: vec![
            route("0.0.0.0/0", Some("192.0.2.1"), None, None),
            route("::/0", Some("2001:db8::1"), Some(IFACE), None),
            route(
                "198.51.100.0/25",
                Some("192.0.2.254"),
                Some(IFACE),
                Some(50),
            ),
            route("198.51.100.128/25", None, Some(IFACE), Some(10)),
            route("2001:db8:1::/48", Some("2001:db8::1"), None, Some(20)),
        ],
        dns_servers: strings(&["192.0.2.53"]),
        search_domains: vec![],
    }
}

/// The `proto static` routes of the main table as `dst|gateway|dev|metric|scope` lines.
fn static_routes(family: &str) -> BTreeSet<String> {
    let routes = ip_json(&[family, "route", "show", "table", "main"]);
    let field = |r: &Value, k: &str| match &r[k] {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    routes
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["protocol"] == "static")
        .map(|r| {
            ["dst", "gateway", "dev", "metric", "scope"]
                .map(|k| field(r, k))
                .join("|")
        })
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn check_link() {
    let link = &ip_json(&["link", "show", "dev", IFACE])[0];
    assert_eq!(link["address"], MAC);
    assert_eq!(link["mtu"], 1400);
    let flags: Vec<&str> = link["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert!(flags.contains(&"UP"), "{IFACE} is not up: {flags:?}");
    let lo = &ip_json(&["link", "show", "dev", "lo"])[0];
    assert!(
        lo["flags"].as_array().unwrap().iter().any(|f| f == "UP"),
        "lo is not up"
    );
}

fn check_addresses() {
    let info = ip_json(&["addr", "show", "dev", IFACE]);
    let addrs = info[0]["addr_info"].as_array().unwrap();
    // Only our addresses have global scope; the kernel adds an fe80:: link-local one itself.
    let global: Vec<&Value> = addrs.iter().filter(|a| a["scope"] == "global").collect();
    assert_eq!(global.len(), 2, "{addrs:?}");
    let v4 = global.iter().find(|a| a["family"] == "inet").unwrap();
    assert_eq!(v4["local"], "192.0.2.10");
    assert_eq!(v4["prefixlen"], 24);
    assert_eq!(v4["broadcast"], "192.0.2.255");
    let v6 = global.iter().find(|a| a["family"] == "inet6").unwrap();
    assert_eq!(v6["local"], "2001:db8::10");
    assert_eq!(v6["prefixlen"], 64);
    assert_eq!(v6["nodad"], true, "IPv6 address without nodad: {v6}");
    assert!(
        v6.get("tentative").is_none(),
        "IPv6 address is tentative: {v6}"
    );
}

fn check_routes() {
    assert_eq!(
        static_routes("-4"),
        set(&[
            "default|192.0.2.1|e2e0|-|-",
            "198.51.100.0/25|192.0.2.254|e2e0|50|-",
            "198.51.100.128/25|-|e2e0|10|link",
        ])
    );
    // IPv6 routes without a metric get the kernel's default of 1024.
    assert_eq!(
        static_routes("-6"),
        set(&[
            "default|2001:db8::1|e2e0|1024|-",
            "2001:db8:1::/48|2001:db8::1|e2e0|20|-",
        ])
    );
}

#[test]
fn configure_sets_everything_the_contract_asks() {
    in_fresh_netns(|| {
        add_link();
        let report = net::configure(&typed(&full_network())).expect("configure");
        check_link();
        check_addresses();
        check_routes();
        assert_eq!(
            report.links,
            strings(&["e2e0 mac 02:00:00:00:e2:01 mtu 1400"])
        );
        assert_eq!(
            report.addresses,
            strings(&["e2e0 192.0.2.10/24", "e2e0 2001:db8::10/64"])
        );
        assert_eq!(report.routes.len(), 5);
        assert_eq!(
            report.routes[2],
            "198.51.100.0/25 via 192.0.2.254 dev e2e0 metric 50"
        );

        // A second run (e.g. over what the kernel's ip= autoconfig set) changes nothing
        // and is not an error.
        net::configure(&typed(&full_network())).expect("configure again");
        check_link();
        check_addresses();
        check_routes();
    });
}

#[test]
fn mac_is_set_even_when_the_link_is_already_up() {
    in_fresh_netns(|| {
        add_link();
        ip(&["link", "set", IFACE, "up"]);
        let n = Network {
            interfaces: vec![Interface {
                name: IFACE.into(),
                mac: Some(MAC.into()),
                addresses: vec![],
                mtu: None,
            }],
            ..Network::default()
        };
        net::configure(&typed(&n)).expect("configure");
        let link = &ip_json(&["link", "show", "dev", IFACE])[0];
        assert_eq!(link["address"], MAC);
        assert!(link["flags"].as_array().unwrap().iter().any(|f| f == "UP"));
    });
}

#[test]
fn loopback_up_alone() {
    in_fresh_netns(|| {
        let lo = &ip_json(&["link", "show", "dev", "lo"])[0];
        assert!(!lo["flags"].as_array().unwrap().iter().any(|f| f == "UP"));
        net::loopback_up().expect("loopback up");
        let lo = &ip_json(&["link", "show", "dev", "lo"])[0];
        assert!(lo["flags"].as_array().unwrap().iter().any(|f| f == "UP"));
    });
}

#[test]
fn missing_interface_is_named_with_the_existing_ones() {
    in_fresh_netns(|| {
        add_link();
        let mut n = full_network();
        n.interfaces.push(Interface {
            name: "nope0".into(),
            mac: None,
            addresses: strings(&["198.51.100.10/24"]),
            mtu: None,
        });
        let err = net::configure(&typed(&n)).unwrap_err();
        assert!(matches!(err, NetError::NoSuchInterface { .. }), "{err:?}");
        assert_eq!(err.path(), Some("network.interfaces[1].name"));
        let text = err.to_string();
        assert!(
            text.starts_with(
                "network.interfaces[1].name: the guest has no interface 'nope0' (it has: lo, "
            ),
            "{text}"
        );
        assert!(text.contains(IFACE) && text.contains(PEER), "{text}");
        // Interfaces are all looked up first: nothing was configured.
        let info = ip_json(&["addr", "show", "dev", IFACE]);
        assert_eq!(info[0]["addr_info"].as_array().unwrap().len(), 0);
    });
}

#[test]
fn unreachable_gateway_is_the_kernels_refusal_naming_the_route() {
    in_fresh_netns(|| {
        add_link();
        let mut n = full_network();
        // No address of ours is in 198.51.100.0/24, so this gateway is not on any link.
        n.routes = vec![
            route("0.0.0.0/0", Some("192.0.2.1"), None, None),
            route("198.51.100.0/24", Some("198.51.100.1"), None, Some(5)),
        ];
        let err = net::configure(&typed(&n)).unwrap_err();
        let NetError::Refused { errno, .. } = &err else {
            panic!("not a refusal: {err:?}");
        };
        assert_eq!(*errno, Errno::ENETUNREACH);
        assert_eq!(err.path(), Some("network.routes[1]"));
        let text = err.to_string();
        assert!(
            text.starts_with(
                "network.routes[1] 198.51.100.0/24 via 198.51.100.1 metric 5: the kernel \
                 refused: Network is unreachable (ENETUNREACH)"
            ),
            "{text}"
        );
        eprintln!("kernel's refusal as reported: {text}");
    });
}

#[test]
fn ipv6_address_refused_on_small_mtu_names_the_address() {
    in_fresh_netns(|| {
        add_link();
        let mut n = full_network();
        n.routes.clear();
        // An MTU below IPv6's minimum of 1280 (validation rejects it together with an IPv6
        // address; here we go around it): the kernel then refuses the IPv6 address, and the
        // error must name that address, not the MTU that was accepted.
        n.interfaces[0].mtu = Some(1000);
        let err = net::configure(&typed(&n)).unwrap_err();
        eprintln!("kernel's refusal as reported: {err}");
        assert_eq!(
            err.path(),
            Some("network.interfaces[0].addresses[1]"),
            "{err}"
        );
    });
}

/// A per-interface IPv6 sysctl of the calling thread's namespace.
fn ipv6_conf(key: &str) -> String {
    std::fs::read_to_string(format!("/proc/sys/net/ipv6/conf/{IFACE}/{key}"))
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn an_ipv4_only_interface_gets_no_ipv6_at_all() {
    in_fresh_netns(|| {
        add_link();
        let net = Network {
            interfaces: vec![Interface {
                name: IFACE.into(),
                mac: None,
                addresses: strings(&["192.0.2.10/24"]),
                mtu: None,
            }],
            routes: vec![route("0.0.0.0/0", Some("192.0.2.1"), None, None)],
            dns_servers: vec![],
            search_domains: vec![],
        };
        assert_eq!(ipv6_conf("disable_ipv6"), "0", "the kernel's default");
        let report = net::configure(&typed(&net)).expect("configure");
        assert_eq!(report.links, strings(&["e2e0 ipv6 off"]));
        assert_eq!(ipv6_conf("disable_ipv6"), "1");
        // Up, with carrier, and still no address of IPv6: not even a link-local one, so
        // nothing of duplicate address detection, router solicitation or MLD is sent.
        let addrs = ip_json(&["-6", "addr", "show", "dev", IFACE]);
        assert!(
            addrs
                .as_array()
                .unwrap()
                .iter()
                .all(|a| a["addr_info"].as_array().is_none_or(|i| i.is_empty())),
            "{addrs}"
        );
        let v4 = ip_json(&["-4", "addr", "show", "dev", IFACE]);
        assert_eq!(v4[0]["addr_info"][0]["local"], "192.0.2.10");
    });
}

#[test]
fn an_ipv6_interface_takes_no_router_advertisements() {
    in_fresh_netns(|| {
        add_link();
        assert_eq!(ipv6_conf("accept_ra"), "1", "the kernel's default");
        net::configure(&typed(&full_network())).expect("configure");
        assert_eq!(ipv6_conf("accept_ra"), "0");
        assert_eq!(ipv6_conf("disable_ipv6"), "0");
        check_addresses();
    });
}
