//! The network boundary between appliances, with real host-launch runs on one bridge in the
//! test's own namespace: a hostile appliance (guest root with every capability, its attacks in
//! a contract file, crafted frames from `net-attack` on a packet socket) tries each attack of
//! issue 25 while its neighbour keeps answering over IPv4 and IPv6, each attack beside a
//! control that shows the same path works when the policy allows it:
//!
//! - a gratuitous ARP claiming the neighbour's IPv4 address: the namespace's ARP entry stays;
//! - taking the neighbour's MAC: the bridge keeps it on the neighbour's port, nothing sent with
//!   it arrives;
//! - forged IPv4 and IPv6 sources: the host's listener gets the controls (own addresses) only;
//! - a neighbour advertisement for the neighbour's IPv6 address: the entry stays;
//! - a router advertisement and a DHCP offer: no route, no address, nothing on port 68;
//! - the neighbour's undeclared port (8081; 8080 declared): refused from the attacker and the
//!   host, 8080 answers;
//! - the host side on a port not in its spec (7777; 7778 in `network.egress`).
//!
//! And: three appliances declaring the same port work together, one of them IPv6-only and one
//! dual-stack; `status` shows the installed tables; an upgrade keeps the policy; a stop leaves
//! no rule behind; a policy that cannot be installed refuses the start (122) and leaves
//! nothing behind. Needs root and busybox-static; fails, rather than skips, without them.

mod common;

use common::boundary::{
    assert_no_router_advertisement_taken, attacker_image, neighbour_image, nft_ruleset, sh,
    udp_listener, wait_console, HostSide, Prober,
};
use common::{host_launch, http_get, launch, temp_dir};
use e2e::NetNs;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const HOST_MAC: &str = "02:00:00:00:00:01";
const NB4: &str = "192.0.2.10";
const NB6: &str = "2001:db8::10";
const ONLY6: &str = "2001:db8::30";
const ME_MAC: &str = "02:00:00:00:00:20";
const ME4: &str = "192.0.2.20";
const ME6: &str = "2001:db8::20";
/// The attacker's link-local address (modified EUI-64 of [`ME_MAC`]).
const ME_LL: &str = "fe80::ff:fe00:20";

/// Each attack after its control; every line it prints reaches the console.
fn attack_script(nb_mac: &str) -> String {
    format!(
        r#"A="/bin/net-attack vec0"
httpd -p 8080 -h /www
sleep 1
echo "attack: start"
$A udp4 {ME_MAC} {HOST_MAC} {ME4} 192.0.2.1 4000 5555 control-v4
$A udp6 {ME_MAC} {HOST_MAC} {ME6} 2001:db8::1 4000 5555 control-v6
$A udp4 {ME_MAC} {HOST_MAC} {NB4} 192.0.2.1 4000 5555 forged-v4
$A udp6 {ME_MAC} {HOST_MAC} {NB6} 2001:db8::1 4000 5555 forged-v6
$A --count 20 garp {ME_MAC} {NB4}
$A --count 20 na {ME_MAC} {ME6} {NB6}
$A ra {ME_MAC} {ME_LL} 2001:db8:bad::
$A dhcp-offer {ME_MAC} {ME4} 192.0.2.99
for port in 8080 8081; do
    case "$(echo GET / HTTP/1.0 | nc -w 3 {NB4} $port)" in
    *neighbour*) echo "attack: neighbour $port ok" ;;
    *) echo "attack: neighbour $port failed" ;;
    esac
done
echo x | nc -w 3 192.0.2.1 7778
echo x | nc -w 3 192.0.2.1 7777
mac() {{ ip link set vec0 down; ip link set vec0 address $1; ip link set vec0 up; }}
mac {nb_mac}
$A --count 20 garp {nb_mac} {ME4}
$A udp4 {nb_mac} {HOST_MAC} {ME4} 192.0.2.1 4000 5555 stolen-mac
mac {ME_MAC}
echo "attack: done"
exec sleep 100000
"#
    )
}

fn spec(dir: &Path, name: &str, image: &Path, network: serde_json::Value) -> PathBuf {
    let mut s = serde_json::json!({
        "name": name, "image": image, "memory_mib": 48, "network": network,
    });
    if name == "attacker" {
        s["files"] = serde_json::json!([{"path": "/run/attack.sh", "mode": "0755",
            "content": attack_script(&appliance::merge::derived_mac("nb"))}]);
    }
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, s.to_string()).unwrap();
    path
}

fn net(tap: &str, ns: &NetNs, addresses: &[&str]) -> serde_json::Value {
    serde_json::json!({"tap": tap, "netns": ns.name(), "bridge": "br0",
        "addresses": addresses})
}

#[test]
fn a_hostile_appliance_cannot_spoof_or_reach_past_its_spec_while_its_neighbour_answers() {
    common::require_root_and_busybox();
    let dir = temp_dir("netpolicy");
    let state = dir.join("state");
    let ns = Arc::new(common::netns(true));
    ns.ip(&["link", "set", "br0", "address", HOST_MAC]).unwrap();
    ns.ip(&["-6", "addr", "add", "2001:db8::1/64", "dev", "br0", "nodad"])
        .unwrap();
    // The host side takes router advertisements, so that one getting through would show.
    sh(&ns, "sysctl", &["-w", "net.ipv6.conf.br0.accept_ra=2"]);

    let nb_image = neighbour_image(dir.path(), "nb.img", "neighbour v1\n", None);
    let nb = spec(
        dir.path(),
        "nb",
        &nb_image,
        net(
            &common::tap_name("n"),
            &ns,
            &[&format!("{NB4}/24"), &format!("{NB6}/64")],
        ),
    );
    let only6 = spec(
        dir.path(),
        "only6",
        &nb_image,
        net(&common::tap_name("6"), &ns, &[&format!("{ONLY6}/64")]),
    );
    let mut attacker_net = net(
        &common::tap_name("a"),
        &ns,
        &[&format!("{ME4}/24"), &format!("{ME6}/64")],
    );
    attacker_net["mac"] = ME_MAC.into();
    attacker_net["egress"] = serde_json::json!([
        {"to": "192.0.2.1", "protocol": "udp", "port": 5555},
        {"to": "2001:db8::1", "protocol": "udp", "port": 5555},
        {"to": "192.0.2.1", "protocol": "tcp", "port": 7778},
        {"to": "192.0.2.0/24", "protocol": "tcp", "port": 8080},
    ]);
    let attacker = spec(
        dir.path(),
        "attacker",
        &attacker_image(dir.path()),
        attacker_net,
    );

    // check shows the policy before anything runs.
    let out = host_launch(&state, &["check", attacker.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "check: {text}");
    for want in [
        "policy:   nftables table netdev host-launch, chains *_attacker on ",
        &format!("only MAC {ME_MAC}, addresses {ME4}, {ME_LL}, {ME6}"),
        "reached on: 8080/tcp",
        "192.0.2.1/32 7778/tcp (network.egress[2])",
    ] {
        assert!(text.contains(want), "check lacks {want:?}:\n{text}");
    }

    let mut nb_run = launch(&nb, "nb", &state);
    nb_run.wait_ready(Duration::from_secs(60)).unwrap();
    let mut only6_run = launch(&only6, "only6", &state);
    only6_run.wait_ready(Duration::from_secs(60)).unwrap();
    // The namespace knows the neighbour (ARP and NDP) before the attacks.
    for a in [format!("{NB4}:8080"), format!("[{NB6}]:8080")] {
        let body = http_get(&ns, &a).unwrap_or_else(|e| panic!("{a}: {e}"));
        assert!(body.contains("neighbour v1"), "{a}: {body}");
    }
    let nb_mac = appliance::merge::derived_mac("nb");
    let neigh4 = sh(&ns, "ip", &["neigh", "show", NB4]);
    assert!(neigh4.contains(&nb_mac), "ARP before: {neigh4}");

    // Listeners of the host side, and the neighbour asked every 250 ms from here on.
    let host = HostSide::listen(
        &ns,
        &["192.0.2.1:5555", "[2001:db8::1]:5555"],
        "192.0.2.1:7778",
        "192.0.2.1:7777",
    );
    let dhcp = Arc::new(Mutex::new(Vec::new()));
    udp_listener(&ns, "0.0.0.0:68", dhcp.clone(), host.stop.clone());
    let prober = Prober::start(
        ns.clone(),
        vec![format!("{NB4}:8080"), format!("[{NB6}]:8080")],
        host.stop.clone(),
    );

    let mut attacker_run = launch(&attacker, "attacker", &state);
    attacker_run.wait_ready(Duration::from_secs(60)).unwrap();
    let console = wait_console(&state, "attacker", "attack: done", Duration::from_secs(90));
    std::thread::sleep(Duration::from_millis(500));

    // Each attack failed; each control passed.
    let got = host.datagrams();
    assert!(
        got.iter()
            .any(|g| g.starts_with("control-v4 from 192.0.2.20")),
        "{got:?}"
    );
    assert!(
        got.iter()
            .any(|g| g.starts_with("control-v6 from 2001:db8::20")),
        "{got:?}"
    );
    for forged in ["forged-v4", "forged-v6", "stolen-mac"] {
        assert!(
            !got.iter().any(|g| g.starts_with(forged)),
            "{forged} arrived: {got:?}"
        );
    }
    let neigh4 = sh(&ns, "ip", &["neigh", "show", NB4]);
    assert!(
        neigh4.contains(&nb_mac),
        "gratuitous ARP took the neighbour's IPv4 address: {neigh4}"
    );
    let neigh6 = sh(&ns, "ip", &["-6", "neigh", "show", NB6]);
    assert!(
        neigh6.contains(&nb_mac),
        "an NA took the neighbour's IPv6 address: {neigh6}"
    );
    assert_no_router_advertisement_taken(&ns, "2001:db8:bad");
    assert!(
        dhcp.lock().unwrap().is_empty(),
        "a DHCP offer arrived: {:?}",
        dhcp.lock().unwrap()
    );
    assert!(console.contains("attack: neighbour 8080 ok"), "{console}");
    assert!(
        console.contains("attack: neighbour 8081 failed"),
        "{console}"
    );
    host.assert_connections(1);
    let fdb = sh(&ns, "bridge", &["fdb", "show", "br", "br0"]);
    let nb_tap = common::tap_name("n");
    assert!(
        fdb.lines()
            .any(|l| l.starts_with(&nb_mac) && l.contains(&format!("dev {nb_tap}")))
            && !fdb
                .lines()
                .any(|l| l.starts_with(&nb_mac) && l.contains(&common::tap_name("a"))),
        "the neighbour's MAC moved: {fdb}"
    );
    // The host side is refused the undeclared port too; every appliance serves 8080 at once,
    // the IPv6-only one included.
    assert!(
        http_get(&ns, &format!("{NB4}:8081")).is_err(),
        "8081 answered"
    );
    // (The attacker's IPv6 address went with its link's down and up to change the MAC.)
    for a in [format!("{ME4}:8080"), format!("[{ONLY6}]:8080")] {
        http_get(&ns, &a).unwrap_or_else(|e| panic!("{a}: {e}"));
    }
    host.stop.store(true, Ordering::Relaxed);
    prober.assert_all_answered(10, "at the neighbour during the attacks");

    // What is installed is visible: the chains, and status with its drops.
    let rules = nft_ruleset(&ns);
    for a in ["nb", "only6", "attacker"] {
        assert!(
            rules.contains(&format!("chain from_guest_{a} {{")),
            "{a}: {rules}"
        );
    }
    let status = host_launch(&state, &["status", "attacker"])
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&status.stdout);
    let line = status
        .lines()
        .find(|l| l.contains("policy:"))
        .unwrap_or_else(|| panic!("no policy line: {status}"));
    assert!(
        line.contains("nftables table netdev host-launch (netns"),
        "{line}"
    );
    assert!(!line.contains("dropped 0 frames from"), "{line}");
    let json = host_launch(&state, &["status", "attacker", "--json"])
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let policy = &json[0]["policy"];
    assert_eq!(policy["table"], "host-launch", "{json}");
    assert!(policy["rules"].as_u64() > Some(40), "{json}");
    assert!(policy["dropped_from_guest"].as_u64() > Some(0), "{json}");

    // An upgrade keeps the policy: the new image serves 8080 and not 8081.
    let v2 = neighbour_image(dir.path(), "nb2.img", "neighbour v2\n", None);
    let out = host_launch(
        &state,
        &[
            "upgrade",
            nb.to_str().unwrap(),
            "--image",
            v2.to_str().unwrap(),
        ],
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "upgrade: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = nb_run.child.wait();
    assert!(http_get(&ns, &format!("{NB4}:8080"))
        .unwrap()
        .contains("neighbour v2"));
    assert!(
        http_get(&ns, &format!("{NB4}:8081")).is_err(),
        "8081 answered after the upgrade"
    );
    assert!(nft_ruleset(&ns).contains("chain from_guest_nb {"));

    // A stop leaves no rule behind.
    let out = host_launch(&state, &["stop", "nb"]).output().unwrap();
    assert!(
        out.status.success(),
        "stop: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, _) = attacker_run.stop();
    assert_eq!(code, Some(0));
    let (code, _) = only6_run.stop();
    assert_eq!(code, Some(0));
    // (The empty table stays: deleting it could race another appliance's start.)
    let left = nft_ruleset(&ns);
    assert!(!left.contains("chain"), "rules left behind: {left}");
}

#[test]
fn a_policy_that_cannot_be_installed_refuses_the_start_and_leaves_nothing() {
    common::require_root_and_busybox();
    let dir = temp_dir("netpolicy-fail");
    let state = dir.join("state");
    let ns = common::netns(true);
    let image = neighbour_image(dir.path(), "nb.img", "x\n", None);
    let tap = common::tap_name("f");
    let spec = spec(
        dir.path(),
        "nofilter",
        &image,
        net(&tap, &ns, &["192.0.2.40/24"]),
    );
    let out = host_launch(&state, &["run", spec.to_str().unwrap()])
        .env("HOST_LAUNCH_NFT", "/bin/false")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(122), "{err}");
    assert!(
        err.contains("network policy: installing the appliance's chains in the nftables table"),
        "{err}"
    );
    assert!(!ns.has_link(&tap), "the TAP device was left behind");
    assert!(!nft_ruleset(&ns).contains("chain"));
    assert!(
        !state.join("nofilter").exists(),
        "the state directory was left behind"
    );
}
