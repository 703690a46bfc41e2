//! The network boundary between appliances on routed TAP devices (issue 32, "past one
//! bridge": `network.host_address` instead of `network.bridge`, each TAP device a link of its
//! own with the host side and the guest in a /30), with real host-launch runs in the test's
//! own namespace, forwarding between the links on (`net.ipv4.ip_forward=1`, as a host that
//! routes clients to its appliances has it), so the appliances' policies are what holds:
//!
//! - attacker 198.18.0.2 (host side .1), neighbours b 198.18.0.6 (.5) and c 198.18.0.10 (.9),
//!   each serving 8080/tcp (declared), 8081/tcp (not) and logging what reaches 5555/udp
//!   (declared);
//! - from the namespace each answers on 8080 and is refused on 8081;
//! - the attacker (guest root with every capability, crafted frames from `net-attack`)
//!   cannot reach b at all, neither its declared ports nor 8081, sent to b's address or with a
//!   forged source (c's, the host's), while c, which its `network.egress` names, is reached on
//!   8080/tcp and 5555/udp from its own address (the control of the same routed path) and not
//!   with b's address as source; b and c answer the host every 250 ms meanwhile;
//! - forging b's or the host's address as its source towards the host, or taking b's MAC,
//!   gets nothing through (the host's listener sees only the control from the attacker's own
//!   address); a gratuitous ARP for b's address moves nothing, a router advertisement gives
//!   the namespace no route or address; the host's ports outside its
//!   egress (7777, and 7778 on b's host side) are not reached, 7778 on its own is;
//! - a stop removes the TAP device, its address and connected route and its chains, and the
//!   others keep answering; after the last, nothing of the test is left in the namespace.
//!
//! Not asserted, because it does not hold (the filter is stateless, as on a bridge: README,
//! "Network policy"): an appliance that declares a UDP port may send "replies" from it to
//! anyone, so with forwarding on it reaches a neighbour's declared UDP port (measured: b's
//! 5555 logged such datagrams from an attacker declaring 5555/udp).
//!
//! Needs root and busybox-static; fails, rather than skips, without them.

mod common;

use common::boundary::{
    assert_no_router_advertisement_taken, attacker_image, console, neighbour_image, nft_ruleset,
    sh, wait_console, HostSide, Prober,
};
use common::{host_launch, http_get, launch, temp_dir};
use e2e::NetNs;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

const ME_MAC: &str = "02:00:00:00:00:20";
const ME: &str = "198.18.0.2";
const ME_HOST: &str = "198.18.0.1";
/// The attacker's link-local address (modified EUI-64 of [`ME_MAC`]).
const ME_LL: &str = "fe80::ff:fe00:20";
const B: &str = "198.18.0.6";
const B_HOST: &str = "198.18.0.5";
const C: &str = "198.18.0.10";
const C_HOST: &str = "198.18.0.9";
/// The UDP port each neighbour logs, and the host side listens on.
const UDP: u16 = 5555;

/// Each attack after its control; every line it prints reaches the console. The host side's
/// MAC (the TAP device's) is read from the guest's ARP table once the control reached it.
fn attack_script(b_mac: &str) -> String {
    format!(
        r#"A="/bin/net-attack vec0"
httpd -p 8080 -h /www
httpd -p 8081 -h /www
sleep 1
echo x | nc -w 3 {ME_HOST} 7778
HM=$(awk '$1 == "{ME_HOST}" {{print $4}}' /proc/net/arp)
echo "attack: start, the host side at $HM"
$A udp4 {ME_MAC} $HM {ME} {ME_HOST} 4000 {UDP} control-host
$A udp4 {ME_MAC} $HM {B} {ME_HOST} 4000 {UDP} forged-b-to-host
$A udp4 {ME_MAC} $HM {B_HOST} {ME_HOST} 4000 {UDP} forged-host-to-host
$A udp4 {ME_MAC} $HM {ME} {C} 4000 {UDP} control-c
$A udp4 {ME_MAC} $HM {B} {C} 4000 {UDP} forged-b-to-c
$A udp4 {ME_MAC} $HM {ME} {B} 4000 {UDP} direct-b
$A udp4 {ME_MAC} $HM {C} {B} 4000 {UDP} forged-c-to-b
$A udp4 {ME_MAC} $HM {B_HOST} {B} 4000 {UDP} forged-host-to-b
$A udp4 {ME_MAC} $HM {ME_HOST} {B} 4000 {UDP} forged-myhost-to-b
$A --count 5 garp {ME_MAC} {B}
$A ra {ME_MAC} {ME_LL} 2001:db8:bad::
for t in "c {C} 8080" "c {C} 8081" "b {B} 8080" "b {B} 8081"; do
    set -- $t
    (case "$(echo GET / HTTP/1.0 | nc -w 3 $2 $3)" in
     *neighbour*) echo "attack: $1 $3 ok" ;;
     *) echo "attack: $1 $3 failed" ;;
     esac) &
done
echo x | nc -w 3 {ME_HOST} 7777 &
echo x | nc -w 3 {B_HOST} 7777 &
echo x | nc -w 3 {B_HOST} 7778 &
wait
mac() {{ ip link set vec0 down; ip link set vec0 address $1; ip link set vec0 up; }}
mac {b_mac}
$A udp4 {b_mac} $HM {ME} {ME_HOST} 4000 {UDP} stolen-mac
mac {ME_MAC}
echo "attack: done"
exec sleep 100000
"#
    )
}

/// Appliance `name`'s spec on its routed TAP device `tap`: host side `host`/30, guest
/// `guest`/30, the default route through the host side.
fn spec(
    dir: &Path,
    name: &str,
    image: &Path,
    ns: &NetNs,
    tap: &str,
    (host, guest): (&str, &str),
) -> PathBuf {
    let mut network = serde_json::json!({
        "tap": tap, "netns": ns.name(), "host_address": format!("{host}/30"),
        "addresses": [format!("{guest}/30")],
        "routes": [{"destination": "0.0.0.0/0", "gateway": host}],
    });
    let mut s = serde_json::json!({"name": name, "image": image, "memory_mib": 48});
    if name == "attacker" {
        network["mac"] = ME_MAC.into();
        network["egress"] = serde_json::json!([
            {"to": ME_HOST, "protocol": "udp", "port": UDP},
            {"to": ME_HOST, "protocol": "tcp", "port": 7778},
            {"to": C, "protocol": "tcp", "port": 8080},
            {"to": C, "protocol": "udp", "port": UDP},
        ]);
        s["files"] = serde_json::json!([{"path": "/run/attack.sh", "mode": "0755",
            "content": attack_script(&appliance::merge::derived_mac("b"))}]);
    }
    s["network"] = network;
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, s.to_string()).unwrap();
    path
}

/// Sends `text` from the namespace to `to`:UDP until the appliance's console shows it
/// (from `from`): the control that the host reaches that port.
fn host_datagram_arrives(ns: &NetNs, state: &Path, name: &str, to: &str, text: &str, from: &str) {
    let to: std::net::SocketAddr = format!("{to}:{UDP}").parse().unwrap();
    let want = format!("udp-log: {text} from {from}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let payload = text.as_bytes().to_vec();
        ns.enter(move || UdpSocket::bind("0.0.0.0:0")?.send_to(&payload, to))
            .unwrap()
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let console = console(state, name);
        if console.contains(&want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} never logged {want:?}:\n{console}"
        );
    }
}

/// The datagrams `name`'s udp-log printed, as "TEXT from IP".
fn logged(state: &Path, name: &str) -> Vec<String> {
    console(state, name)
        .lines()
        .filter_map(|l| l.split("udp-log: ").nth(1))
        .filter(|l| !l.starts_with("listening"))
        .map(str::to_string)
        .collect()
}

/// What the namespace has of the /30 block whose host side is `host`: the address and the
/// connected route.
fn block_left(ns: &NetNs, host: &str) -> Vec<String> {
    let host: std::net::Ipv4Addr = host.parse().unwrap();
    let block = std::net::Ipv4Addr::from(u32::from(host) & !3);
    let (addrs, routes) = (
        sh(ns, "ip", &["-4", "addr", "show"]),
        sh(ns, "ip", &["-4", "route", "show"]),
    );
    addrs
        .lines()
        .chain(routes.lines())
        .filter(|l| l.contains(&format!("{host}/30")) || l.contains(&format!("{block}/30")))
        .map(str::to_string)
        .collect()
}

#[test]
fn appliances_on_routed_tap_devices_cannot_reach_or_spoof_each_other() {
    common::require_root_and_busybox();
    let dir = temp_dir("routed-boundary");
    let state = dir.join("state");
    let ns = Arc::new(common::netns(false));
    ns.run("sysctl", &["-w", "net.ipv4.ip_forward=1"])
        .expect("turning IPv4 forwarding on in the test's namespace");
    let (tap_a, tap_b, tap_c) = (
        common::tap_name("a"),
        common::tap_name("b"),
        common::tap_name("c"),
    );

    let b_image = neighbour_image(dir.path(), "b.img", "neighbour b\n", Some(UDP));
    let c_image = neighbour_image(dir.path(), "c.img", "neighbour c\n", Some(UDP));
    let b = spec(dir.path(), "b", &b_image, &ns, &tap_b, (B_HOST, B));
    let c = spec(dir.path(), "c", &c_image, &ns, &tap_c, (C_HOST, C));
    let attacker = spec(
        dir.path(),
        "attacker",
        &attacker_image(dir.path()),
        &ns,
        &tap_a,
        (ME_HOST, ME),
    );

    let mut b_run = launch(&b, "b", &state);
    let mut c_run = launch(&c, "c", &state);
    b_run.wait_ready(Duration::from_secs(60)).unwrap();
    c_run.wait_ready(Duration::from_secs(60)).unwrap();
    // From the host side: the declared ports answer (TCP and UDP), the undeclared one not.
    for (name, addr, host) in [("b", B, B_HOST), ("c", C, C_HOST)] {
        let body = http_get(&ns, &format!("{addr}:8080")).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            body.contains(&format!("neighbour {name}")),
            "{name}: {body}"
        );
        assert!(
            http_get(&ns, &format!("{addr}:8081")).is_err(),
            "{name}'s undeclared 8081 answered the host"
        );
        host_datagram_arrives(&ns, &state, name, addr, &format!("host-to-{name}"), host);
    }
    let b_mac = appliance::merge::derived_mac("b");
    let neigh = sh(&ns, "ip", &["neigh", "show", B]);
    assert!(
        neigh.contains(&format!("dev {tap_b} lladdr {b_mac}")),
        "ARP before: {neigh}"
    );

    // The host side's listeners, and b and c asked every 250 ms from here on.
    // (Listening on every address of the host side: the attacker also tries b's host side.)
    let host = HostSide::listen(
        &ns,
        &[&format!("0.0.0.0:{UDP}")],
        "0.0.0.0:7778",
        "0.0.0.0:7777",
    );
    let prober = Prober::start(
        ns.clone(),
        vec![format!("{B}:8080"), format!("{C}:8080")],
        host.stop.clone(),
    );

    let mut attacker_run = launch(&attacker, "attacker", &state);
    attacker_run.wait_ready(Duration::from_secs(60)).unwrap();
    let console_a = wait_console(&state, "attacker", "attack: done", Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(500));

    // b got nothing from the attacker; c only the control from the attacker's own address.
    let b_got = logged(&state, "b");
    assert!(
        b_got
            .iter()
            .all(|g| g == &format!("host-to-b from {B_HOST}")),
        "the attacker reached b's declared UDP port: {b_got:?}"
    );
    let c_got = logged(&state, "c");
    assert!(
        c_got.contains(&format!("control-c from {ME}")),
        "the control to c (its egress) did not arrive: {c_got:?}\n{console_a}"
    );
    let c_want = [
        format!("host-to-c from {C_HOST}"),
        format!("control-c from {ME}"),
    ];
    assert!(
        c_got.iter().all(|g| c_want.contains(g)),
        "a forged datagram reached c: {c_got:?}"
    );
    for want in [
        "attack: c 8080 ok",
        "attack: c 8081 failed",
        "attack: b 8080 failed",
        "attack: b 8081 failed",
    ] {
        assert!(console_a.contains(want), "no {want:?}:\n{console_a}");
    }
    // The host's listener: the control only (no forged source, no stolen MAC).
    let got = host.datagrams();
    assert!(
        got.contains(&format!("control-host from {ME}")),
        "the control to the host did not arrive: {got:?}\n{console_a}"
    );
    assert!(
        got.iter().all(|g| g == &format!("control-host from {ME}")),
        "a forged datagram reached the host: {got:?}"
    );
    // 7778 on its own host side once (the control), never on b's (.5, not in its egress).
    host.assert_connections(1);
    let neigh = sh(&ns, "ip", &["neigh", "show", B]);
    assert!(
        neigh.contains(&format!("dev {tap_b} lladdr {b_mac}")) && !neigh.contains(ME_MAC),
        "a gratuitous ARP moved b's address: {neigh}"
    );
    // A router advertisement on the attacker's link (the namespace takes them: IPv6
    // forwarding is off) gave no route or address.
    assert_no_router_advertisement_taken(&ns, "2001:db8:bad");
    host.stop.store(true, Ordering::Relaxed);
    prober.assert_all_answered(10, "at b and c during the attacks");

    // The attacker too answers the host on its declared port only.
    let body = http_get(&ns, &format!("{ME}:8080")).unwrap_or_else(|e| panic!("attacker: {e}"));
    assert!(body.contains("attacker"), "{body}");
    assert!(
        http_get(&ns, &format!("{ME}:8081")).is_err(),
        "the attacker's undeclared 8081 answered"
    );

    // A stop takes its TAP device, address, route and chains; the others keep answering.
    assert!(
        block_left(&ns, ME_HOST).len() >= 2,
        "no address and route while it runs"
    );
    let (code, _) = attacker_run.stop();
    assert_eq!(code, Some(0));
    assert!(!ns.has_link(&tap_a), "the attacker's TAP device was left");
    let left = block_left(&ns, ME_HOST);
    assert!(left.is_empty(), "the attacker's block was left: {left:?}");
    let rules = nft_ruleset(&ns);
    assert!(
        !rules.contains("_attacker"),
        "its chains were left: {rules}"
    );
    for (name, addr) in [("b", B), ("c", C)] {
        assert!(
            rules.contains(&format!("chain from_guest_{name} {{")),
            "{name}: {rules}"
        );
        let body = http_get(&ns, &format!("{addr}:8080")).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            body.contains(&format!("neighbour {name}")),
            "{name}: {body}"
        );
    }
    let out = host_launch(&state, &["stop", "b", "c"]).output().unwrap();
    assert!(
        out.status.success(),
        "stop: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = (b_run.child.wait(), c_run.child.wait());
    for (tap, host) in [(&tap_b, B_HOST), (&tap_c, C_HOST)] {
        assert!(!ns.has_link(tap), "{tap} was left");
        let left = block_left(&ns, host);
        assert!(left.is_empty(), "{host}'s block was left: {left:?}");
    }
    // (The empty table stays: deleting it could race another appliance's start.)
    let left = nft_ruleset(&ns);
    assert!(!left.contains("chain"), "rules left behind: {left}");
}
