//! Property tests of the two wire encodings: every valid contract survives both, and the block
//! device reader never panics and notices corruption.

use contract::names::{CAPABILITIES, FACILITIES, SIGNALS};
use contract::{blockdev, cmdline, validate};
use contract::{
    Contract, Disk, File, FileEncoding, Interface, Logging, Mounts, Network, Readiness,
    RemoteSyslog, Restart, RestartPolicy, Route, Service, SyslogFormat, Tmpfs, Transport,
};
use proptest::collection::{btree_map, btree_set, vec};
use proptest::option;
use proptest::prelude::*;
use proptest::sample::{select, subsequence};
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

// ---- generators of valid contracts ----

/// Text without NUL: any other character, including control characters, quotes, backslashes
/// and non-ASCII, which the JSON encoding must escape and restore.
fn text(max: usize) -> impl Strategy<Value = String> {
    vec(any::<char>().prop_filter("no NUL", |c| *c != '\0'), 0..=max)
        .prop_map(|cs| cs.into_iter().collect())
}

fn label() -> impl Strategy<Value = String> {
    "[A-Za-z0-9]([A-Za-z0-9-]{0,12}[A-Za-z0-9])?"
}

fn hostname() -> impl Strategy<Value = String> {
    vec(label(), 1..=3).prop_map(|ls| ls.join("."))
}

fn domain() -> impl Strategy<Value = String> {
    (vec(label(), 1..=4), any::<bool>()).prop_map(|(ls, dot)| {
        let mut d = ls.join(".");
        if dot {
            d.push('.');
        }
        d
    })
}

fn ip(v6: bool) -> BoxedStrategy<IpAddr> {
    if v6 {
        any::<Ipv6Addr>().prop_map(IpAddr::V6).boxed()
    } else {
        any::<Ipv4Addr>().prop_map(IpAddr::V4).boxed()
    }
}

fn any_ip() -> impl Strategy<Value = String> {
    any::<bool>().prop_flat_map(ip).prop_map(|a| a.to_string())
}

fn cidr(v6: bool) -> impl Strategy<Value = String> {
    let max = if v6 { 128u8 } else { 32 };
    (ip(v6), 0..=max).prop_map(|(a, p)| format!("{a}/{p}"))
}

/// A route destination: a CIDR with its host bits cleared, as validation requires.
fn network_cidr(v6: bool) -> impl Strategy<Value = String> {
    cidr(v6).prop_map(|c| match contract::addr::parse_cidr(&c) {
        Ok(parsed) => parsed.network().to_string(),
        Err(_) => c,
    })
}

fn mac() -> impl Strategy<Value = String> {
    (any::<[u8; 6]>(), any::<bool>()).prop_map(|(mut b, upper)| {
        b[0] &= 0xfe;
        let s = b
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect::<Vec<_>>()
            .join(":");
        if upper {
            s.to_uppercase()
        } else {
            s
        }
    })
}

fn interface(name: String) -> impl Strategy<Value = Interface> {
    (
        option::of(mac()),
        vec(any::<bool>().prop_flat_map(cidr), 0..4),
        option::of(1280u32..=65535),
    )
        .prop_map(move |(mac, addresses, mtu)| Interface {
            name: name.clone(),
            mac,
            addresses,
            mtu,
        })
}

fn route(ifaces: Vec<String>) -> impl Strategy<Value = Route> {
    let iface = if ifaces.is_empty() {
        Just(None).boxed()
    } else {
        option::of(select(ifaces)).boxed()
    };
    (
        any::<bool>(),
        any::<bool>(),
        iface,
        option::of(any::<u32>()),
    )
        .prop_flat_map(|(v6, gw, interface, metric)| {
            // A route needs a gateway, an interface, or both.
            let gateway = if gw || interface.is_none() {
                ip(v6).prop_map(|a| Some(a.to_string())).boxed()
            } else {
                Just(None).boxed()
            };
            (network_cidr(v6), gateway).prop_map(move |(destination, gateway)| Route {
                destination,
                gateway,
                interface: interface.clone(),
                metric,
            })
        })
}

fn network() -> impl Strategy<Value = Network> {
    btree_set("[a-z][a-z0-9_.-]{0,14}", 0..4)
        .prop_flat_map(|names| {
            let names: Vec<String> = names.into_iter().collect();
            let ifaces: Vec<_> = names.iter().cloned().map(interface).collect();
            (
                ifaces,
                vec(route(names), 0..4),
                vec(any_ip(), 0..=3),
                vec(domain(), 0..=6),
            )
        })
        .prop_map(|(interfaces, routes, dns_servers, search_domains)| {
            make_reachable(Network {
                interfaces,
                routes,
                dns_servers,
                search_domains,
            })
        })
}

/// Keeps what validation accepts of random addresses and gateways: each interface address a
/// host address given once, each gateway on a subnet of the route's interface (an address of
/// that interface stands in for it), else the route on-link or left out.
fn make_reachable(mut net: Network) -> Network {
    use contract::addr::parse_cidr;
    let mut seen = std::collections::BTreeSet::new();
    for iface in &mut net.interfaces {
        iface.addresses.retain(|a| {
            parse_cidr(a).is_ok_and(|c| {
                contract::validate::check_host_address(a, c).is_ok() && seen.insert(c.addr)
            })
        });
    }
    let ifaces = net.interfaces.clone();
    net.routes.retain_mut(|r| {
        let Some(gw) = r.gateway.as_deref() else {
            return true;
        };
        let v6 = gw.contains(':');
        let on = ifaces
            .iter()
            .filter(|i| r.interface.as_deref().is_none_or(|n| n == i.name))
            .flat_map(|i| i.addresses.iter().map(move |a| (i, a)))
            .filter_map(|(i, a)| parse_cidr(a).ok().map(|c| (i, c)))
            .find(|(_, c)| c.is_ipv6() == v6);
        match on {
            Some((iface, c)) => {
                r.gateway = Some(c.addr.to_string());
                // A link-local gateway is on every link: the route must say which.
                let link_local = matches!(c.addr, std::net::IpAddr::V6(a) if (a.segments()[0] & 0xffc0) == 0xfe80);
                if link_local {
                    r.interface = Some(iface.name.clone());
                }
                true
            }
            None if r.interface.is_some() => {
                r.gateway = None;
                true
            }
            None => false,
        }
    });
    // The kernel refuses a second route to one destination with one metric (validation says
    // so); keep the first of each.
    let mut routes_seen = std::collections::BTreeSet::new();
    net.routes.retain(|r| {
        parse_cidr(&r.destination)
            .is_ok_and(|c| routes_seen.insert((c.network().addr, c.prefix, r.metric)))
    });
    net
}

fn logging() -> impl Strategy<Value = Logging> {
    let remote = (
        prop_oneof![Just(Transport::Udp), Just(Transport::Tcp)],
        any_ip(),
        1u16..,
        prop_oneof![Just(SyslogFormat::Rfc5424), Just(SyslogFormat::Rfc3164)],
        select(
            FACILITIES
                .iter()
                .map(|(n, _)| n.to_string())
                .collect::<Vec<_>>(),
        ),
    )
        .prop_map(|(transport, host, port, format, facility)| RemoteSyslog {
            transport,
            host,
            port,
            format,
            facility,
        });
    (option::of(remote), any::<bool>()).prop_map(|(remote, console)| Logging { remote, console })
}

fn abs_path() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("/".to_string()),
        vec("[A-Za-z0-9_][A-Za-z0-9._-]{0,10}", 1..4).prop_map(|cs| format!("/{}", cs.join("/"))),
    ]
}

fn capability() -> impl Strategy<Value = Vec<String>> {
    (subsequence(CAPABILITIES.to_vec(), 0..5), any::<u8>()).prop_map(|(caps, style)| {
        caps.into_iter()
            .enumerate()
            .map(|(i, c)| {
                // Both spellings the validator accepts: "CAP_NET_ADMIN" and "net_admin".
                if style >> (i % 8) & 1 == 1 {
                    c.trim_start_matches("CAP_").to_lowercase()
                } else {
                    c.to_string()
                }
            })
            .collect()
    })
}

fn restart() -> impl Strategy<Value = Restart> {
    (
        prop_oneof![
            Just(RestartPolicy::Never),
            Just(RestartPolicy::OnFailure),
            Just(RestartPolicy::Always)
        ],
        1u64..100_000,
        0u64..10_000_000,
    )
        .prop_map(|(policy, min, extra)| Restart {
            policy,
            backoff_min_ms: min,
            backoff_max_ms: min + extra,
        })
}

fn readiness() -> impl Strategy<Value = Readiness> {
    prop_oneof![
        Just(Readiness::None),
        (3u32..=1023).prop_map(|fd| Readiness::Notify { fd }),
        (1u16.., option::of(any_ip())).prop_map(|(port, address)| Readiness::Tcp { port, address }),
    ]
}

fn service() -> impl Strategy<Value = Service> {
    (
        option::of("[!-~]{1,48}"),
        (abs_path(), vec(text(20), 0..5)),
        btree_map("[A-Za-z_][A-Za-z0-9_]{0,12}", text(20), 0..5),
        option::of(abs_path()),
        (any::<u32>(), any::<u32>(), vec(any::<u32>(), 0..4)),
        capability(),
        restart(),
        select(
            SIGNALS
                .iter()
                .map(|(n, _)| n.to_string())
                .collect::<Vec<_>>(),
        ),
        1u64..=3_600_000,
        readiness(),
    )
        .prop_map(
            |(
                name,
                (a0, rest),
                env,
                workdir,
                (uid, gid, groups),
                capabilities,
                restart,
                stop_signal,
                stop_timeout_ms,
                readiness,
            )| {
                let mut argv = vec![a0];
                argv.extend(rest);
                Service {
                    name,
                    argv,
                    env,
                    workdir,
                    uid,
                    gid,
                    groups,
                    capabilities,
                    restart,
                    stop_signal,
                    stop_timeout_ms,
                    readiness,
                    liveness: None,
                    rlimits: BTreeMap::new(),
                    oom_score_adj: None,
                    no_new_privileges: true,
                    quiesce: None,
                }
            },
        )
}

/// A tmpfs directory's mode: any bits.
fn mode() -> impl Strategy<Value = String> {
    "[0-7]{3,4}"
}

/// A file's mode: permission bits only (no setuid, setgid or sticky under /run).
fn file_mode() -> impl Strategy<Value = String> {
    "0?[0-7]{3}"
}

fn disk(mount_point: String, letter: char) -> impl Strategy<Value = Disk> {
    (
        any::<bool>(),
        "[a-z0-9]{1,8}",
        prop_oneof![Just("ext2"), Just("ext3"), Just("ext4")],
        vec("[a-z0-9=_.-]{1,12}", 0..4),
        option::of((any::<u32>(), any::<u32>())),
    )
        .prop_map(move |(format_if_blank, any_fs, ext, options, owner)| Disk {
            device: format!("/dev/ubd{letter}"),
            mount_point: mount_point.clone(),
            // Only ext2/3/4 can be created by the guest.
            fs_type: if format_if_blank {
                ext.to_string()
            } else {
                any_fs
            },
            options,
            format_if_blank,
            // An owner applies only to a file system the guest creates.
            owner_uid: owner.filter(|_| format_if_blank).map(|o| o.0),
            owner_gid: owner.filter(|_| format_if_blank).map(|o| o.1),
        })
}

fn tmpfs(mount_point: String) -> impl Strategy<Value = Tmpfs> {
    (option::of(1u32..), option::of(mode())).prop_map(move |(size_mib, mode)| Tmpfs {
        mount_point: mount_point.clone(),
        size_mib,
        mode,
    })
}

fn mounts() -> impl Strategy<Value = Mounts> {
    // Distinct mount points outside the system directories.
    btree_set(
        "/(data|srv|var|opt|mnt|home)(/[a-z0-9][a-z0-9_-]{0,7}){0,2}",
        0..6,
    )
    .prop_flat_map(|points| {
        let n = points.len();
        (
            Just(points.into_iter().collect::<Vec<_>>()),
            vec(any::<bool>(), n),
        )
    })
    .prop_flat_map(|(points, is_disk)| {
        let mut disks = Vec::new();
        let mut tmpfses = Vec::new();
        let mut letters = 'b'..='z';
        for (p, d) in points.into_iter().zip(is_disk) {
            match (d, letters.next()) {
                (true, Some(l)) => disks.push(disk(p, l)),
                _ => tmpfses.push(tmpfs(p)),
            }
        }
        (disks, tmpfses).prop_map(|(disks, tmpfs)| Mounts { disks, tmpfs })
    })
}

fn file(path: String) -> impl Strategy<Value = File> {
    use base64::Engine;
    let content = prop_oneof![
        text(200).prop_map(|t| (t, FileEncoding::Utf8)),
        vec(any::<u8>(), 0..200).prop_map(|b| (
            base64::engine::general_purpose::STANDARD.encode(b),
            FileEncoding::Base64
        )),
    ];
    (file_mode(), any::<u32>(), any::<u32>(), content).prop_map(
        move |(mode, uid, gid, (content, encoding))| File {
            path: path.clone(),
            mode,
            uid,
            gid,
            content,
            encoding,
        },
    )
}

fn files() -> impl Strategy<Value = Vec<File>> {
    btree_set(
        "/run/(app|svc|cfg)[a-z0-9]{0,6}(/[a-z0-9][a-z0-9._-]{0,7}){0,2}",
        0..4,
    )
    .prop_map(|paths| {
        // A file cannot also be another one's directory: keep the deepest paths.
        let all = paths.clone();
        paths
            .into_iter()
            .filter(|p| !all.iter().any(|o| o.starts_with(&format!("{p}/"))))
            .collect::<Vec<_>>()
    })
    .prop_flat_map(|paths| paths.into_iter().map(file).collect::<Vec<_>>())
}

fn sysctl() -> impl Strategy<Value = BTreeMap<String, String>> {
    btree_map(
        "[a-z0-9_]{1,8}([./][a-z0-9_-]{1,8}){0,3}",
        "[^\n\u{0}]{1,16}",
        0..4,
    )
}

/// JSON values that survive a trip through text unchanged: integers, strings, booleans,
/// null, and floats with a short exact decimal form. (Arbitrary floats do not: serde_json
/// without its `float_roundtrip` feature may read e.g. 2.062694243400714e-240 back one bit
/// off, whichever encoding carried it.)
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1_000_000i32..1_000_000).prop_map(|n| Value::from(f64::from(n) / 64.0)),
        text(16).prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..5).prop_map(Value::Array),
            btree_map(text(8), inner, 0..5).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// `extra` is never `null`: `"extra": null` reads back as an absent `extra`.
fn extra() -> impl Strategy<Value = Option<Value>> {
    option::of(json_value().prop_filter("null reads back as None", |v| !v.is_null()))
}

fn contract() -> impl Strategy<Value = Contract> {
    (
        hostname(),
        option::of(network()),
        logging(),
        service(),
        mounts(),
        files(),
        sysctl(),
        extra(),
    )
        .prop_map(
            |(hostname, network, logging, service, mounts, files, sysctl, extra)| Contract {
                version: contract::VERSION,
                hostname,
                network,
                logging,
                service,
                mounts,
                files,
                sysctl,
                extra,
            },
        )
}

// ---- properties ----

fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'='
}

proptest! {
    // Failures are shrunk and printed; no regression files are written into the tree.
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn generated_contracts_are_valid(c in contract()) {
        if let Err(p) = validate(&c) {
            return Err(TestCaseError::fail(format!("generator made an invalid contract:\n{p}\n{c:#?}")));
        }
    }

    #[test]
    fn cmdline_round_trip(c in contract(), before in "[a-z]{1,8}=[a-z0-9]{0,8}", after in "[a-z]{1,8}") {
        prop_assert!(validate(&c).is_ok());
        let token = cmdline::encode(&c);
        prop_assert!(token.bytes().all(is_token_char), "token has other characters: {}", token);
        prop_assert!(token.starts_with("hostcontract="));
        let line = format!("{before} {token} {after}\n");
        let value = cmdline::find(&line, cmdline::PARAM);
        prop_assert_eq!(value, token.strip_prefix("hostcontract="));
        let back = cmdline::decode(value.unwrap_or_default());
        prop_assert_eq!(back, Ok(c.clone()));
        match cmdline::encode_within(&c, 100) {
            Ok(t) => {
                prop_assert_eq!(&t, &token);
                prop_assert!(100 + 1 + token.len() < contract::uml::COMMAND_LINE_SIZE);
            }
            Err(e) => {
                prop_assert!(100 + 1 + token.len() >= contract::uml::COMMAND_LINE_SIZE);
                prop_assert!(e.to_string().contains("hostcontract_dev"));
            }
        }
    }

    #[test]
    fn blockdev_round_trip(c in contract(), trailing in vec(any::<u8>(), 0..1024)) {
        prop_assert!(validate(&c).is_ok());
        let mut img = blockdev::encode(&c);
        prop_assert_eq!(img.len() % blockdev::SECTOR, 0);
        let json_len = contract::to_json(&c).len();
        prop_assert_eq!(blockdev::header_payload_len(&img[..blockdev::SECTOR]), Ok(json_len));
        prop_assert_eq!(img.len(), blockdev::image_len(json_len));
        prop_assert_eq!(blockdev::decode(&img), Ok(c.clone()));
        // Read from a device larger than the image.
        img.extend_from_slice(&trailing);
        prop_assert_eq!(blockdev::decode(&img), Ok(c));
    }

    #[test]
    fn blockdev_detects_flipped_bytes(
        c in contract(),
        at in any::<prop::sample::Index>(),
        in_header in any::<bool>(),
        bit in 0u8..8,
    ) {
        let mut img = blockdev::encode(&c);
        let json_len = contract::to_json(&c).len();
        let i = if in_header || json_len == 0 {
            at.index(blockdev::SECTOR)
        } else {
            blockdev::SECTOR + at.index(json_len)
        };
        img[i] ^= 1 << bit;
        let r = blockdev::decode(&img);
        prop_assert!(r.is_err(), "flipping bit {} of byte {} went unnoticed", bit, i);
        if i >= blockdev::SECTOR {
            let is_payload_checksum = matches!(r, Err(blockdev::DecodeError::PayloadChecksum { .. }));
            prop_assert!(is_payload_checksum, "{:?}", r);
        }
    }

    #[test]
    fn blockdev_detects_truncation(c in contract(), cut in any::<prop::sample::Index>()) {
        let img = blockdev::encode(&c);
        let needed = blockdev::SECTOR + contract::to_json(&c).len();
        let len = cut.index(needed);
        prop_assert!(blockdev::decode(&img[..len]).is_err());
    }

    #[test]
    fn blockdev_never_panics_on_arbitrary_bytes(bytes in vec(any::<u8>(), 0..2048)) {
        let _ = blockdev::decode(&bytes);
        let _ = blockdev::header_payload_len(&bytes);
    }

    #[test]
    fn blockdev_never_panics_on_mutated_images(
        c in contract(),
        edits in vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
        reseal in any::<bool>(),
    ) {
        let mut img = blockdev::encode(&c);
        for (at, b) in edits {
            let i = at.index(img.len());
            img[i] = b;
        }
        if reseal {
            // Make the header checksum match again so the later checks are reached.
            let crc = crc32fast::hash(&img[..28]);
            img[28..32].copy_from_slice(&crc.to_le_bytes());
        }
        let len = cut.index(img.len() + 1);
        let _ = blockdev::decode(&img[..len]);
        let _ = blockdev::header_payload_len(&img[..len]);
        if let Err(e) = blockdev::decode(&img) {
            prop_assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn cmdline_find_and_decode_never_panic(line in text(300), param in "[a-z_]{1,16}") {
        if let Some(v) = cmdline::find(&line, &param) {
            prop_assert!(line.contains(v));
            let _ = cmdline::decode(v);
        }
        let _ = cmdline::decode(&line);
    }
}

/// The kernel-side token's length for the full example, printed for the record.
#[test]
fn full_example_token_size() {
    let c = contract::parse_json(include_bytes!("../examples/full.json")).unwrap();
    let token = cmdline::encode(&c);
    let json = contract::to_json(&c);
    println!(
        "full.json: compact JSON {} bytes, hostcontract token {} bytes",
        json.len(),
        token.len()
    );
    assert_eq!(
        token.len(),
        "hostcontract=".len() + (json.len() * 4).div_ceil(3)
    );
}
