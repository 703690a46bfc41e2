//! An appliance announces its addresses as its link comes up (guest-init's
//! `net/announce.rs`): a host that asked for the guest's address while the VM was still
//! booting (a client already sending it requests, on a bridge other appliances keep up)
//! learns it from the announcement, not from its next ARP request or neighbour solicitation.
//! Linux retries after a second; here the host's retransmit time is a minute, so only the
//! announcement can complete its entries while the test runs. A host that still holds the
//! addresses at an earlier appliance's MAC learns the new one from the announcements too
//! (sent as the link comes up and again once the service is ready).
//!
//! Needs root; fails, rather than skips, without it.

mod common;

use common::{build_image, data_disk, http_get, launch, netns, require_root_and_busybox};
use common::{tap_name, temp_dir, GUEST};
use std::time::{Duration, Instant};

const GUEST_V6: &str = "2001:db8::10";

#[test]
fn a_host_that_asked_before_the_guest_was_up_learns_both_its_addresses_at_once() {
    let (dir, ns) = lab("announce");
    // The host asks for both addresses now: its entries are left incomplete.
    for addr in [GUEST, GUEST_V6] {
        ask(&ns, addr);
        assert!(
            neighbour(&ns, addr).contains("INCOMPLETE"),
            "the host's entry for {addr} should wait for an answer: {}",
            neighbour(&ns, addr)
        );
    }
    boot_and_check(&dir, &ns, "ann-asked", |entry| entry.contains("lladdr"));
}

#[test]
fn a_host_that_knew_the_addresses_at_another_mac_learns_the_new_one() {
    let (dir, ns) = lab("reannounce");
    // An earlier appliance had both addresses (another name, so another MAC), and the host
    // believes it is still there.
    for addr in [GUEST, GUEST_V6] {
        let dev = ["dev", "br0", "lladdr", OTHER_MAC, "nud", "reachable"];
        ns.ip(&[&["neigh", "replace", addr][..], &dev[..]].concat())
            .unwrap();
    }
    boot_and_check(&dir, &ns, "ann-moved", |entry| {
        entry.contains("lladdr") && !entry.contains(OTHER_MAC)
    });
}

/// The MAC of the earlier appliance.
const OTHER_MAC: &str = "02:00:5e:00:00:99";

/// The test's directory and namespace: a bridge with both families' host addresses, kept up
/// by another port as the other appliances on it would (so the host's requests go out, and go
/// unanswered, before this VM's TAP device exists), its MAC its own (`NetNs::add_bridge`), and
/// a minute between the host's neighbour requests.
fn lab(label: &str) -> (e2e::TempDir, e2e::NetNs) {
    require_root_and_busybox();
    let dir = temp_dir(label);
    let ns = netns(true);
    ns.ip(&["-6", "addr", "add", "2001:db8::1/64", "dev", "br0", "nodad"])
        .unwrap();
    ns.ip(&[
        "link", "add", "ann0", "type", "veth", "peer", "name", "ann1",
    ])
    .unwrap();
    ns.ip(&["link", "set", "ann0", "master", "br0", "up"])
        .unwrap();
    ns.ip(&["link", "set", "ann1", "up"]).unwrap();
    for family in ["ipv4", "ipv6"] {
        let key = format!("net.{family}.neigh.br0.retrans_time_ms=60000");
        ns.run("sysctl", &["-qw", &key]).unwrap();
    }
    (dir, ns)
}

/// Boots the dual-stack appliance `name` and checks, within 10 s of its being ready, that the host's
/// entry for each of its addresses passes `resolved`, and that it serves.
fn boot_and_check(
    dir: &e2e::TempDir,
    ns: &e2e::NetNs,
    name: &str,
    resolved: impl Fn(&str) -> bool,
) {
    let image = build_image(dir.path(), "announced\n");
    let data = dir.join("data.img");
    data_disk(&data);
    let spec = dir.join(format!("{name}.json"));
    let text = serde_json::json!({
        "name": name,
        "image": image,
        "memory_mib": 32,
        "disks": [{"file": data}],
        "network": {
            "tap": tap_name("a"),
            "netns": ns.name(),
            "bridge": "br0",
            "addresses": [format!("{GUEST}/24"), format!("{GUEST_V6}/64")],
        },
    });
    std::fs::write(&spec, text.to_string()).unwrap();
    let state = dir.join("state");
    let mut run = launch(&spec, name, &state);
    run.wait_ready(Duration::from_secs(60)).unwrap();
    for addr in [GUEST, GUEST_V6] {
        let end = Instant::now() + Duration::from_secs(10);
        while !resolved(&neighbour(ns, addr)) && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(100));
        }
        let entry = neighbour(ns, addr);
        assert!(
            resolved(&entry),
            "the guest did not announce {addr}: the host's entry is {entry:?}"
        );
    }
    let body = http_get(ns, &format!("{GUEST}:8080")).unwrap();
    assert!(body.contains("announced"), "{body}");
    let (code, all) = run.stop();
    assert_eq!(code, Some(0), "{all}");
}

/// Sends one UDP datagram to `addr` from the host side (the kernel asks for the address).
fn ask(ns: &e2e::NetNs, addr: &str) {
    let to = std::net::SocketAddr::new(addr.parse().unwrap(), 9);
    ns.enter(move || {
        let any = if to.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" };
        let s = std::net::UdpSocket::bind(any).unwrap();
        s.send_to(b"anyone?", to).unwrap();
    })
    .unwrap();
}

/// The host's neighbour entry for `addr` (`ip neigh show`), empty when there is none.
fn neighbour(ns: &e2e::NetNs, addr: &str) -> String {
    let out = ns.output("ip", &["neigh", "show", addr]).unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
