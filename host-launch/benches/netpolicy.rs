//! What the network policy costs a start, and whether it costs more with many appliances on
//! one bridge: in a namespace of its own with a bridge and N TAP devices (no VM: this is the
//! host's share only), the policy of a dual-stack DNS appliance (ports 53/udp and 53/tcp, a
//! syslog target, a DNS server, a default route) is rendered and installed with `nft -f -`
//! for each TAP in turn, as `host-launch start` does before the boot, then removed as a stop
//! does. Prints the rules per appliance, and the median and worst install and removal times
//! over the first 20 appliances and over the 20 after 100 and after N - 20 were installed.
//!
//! ```sh
//! cargo bench -p host-launch --bench netpolicy [-- --appliances 500]
//! ```
//!
//! Needs root and nftables.

use appliance::netpolicy::{self, Pass};
use e2e::NetNs;
use std::time::{Duration, Instant};

fn appliances() -> usize {
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        if a == "--appliances" {
            return it
                .next()
                .and_then(|v| v.parse().ok())
                .expect("--appliances N");
        }
    }
    500
}

/// The policy of DNS appliance `i` on TAP `tap`.
fn policy(i: usize, tap: &str) -> netpolicy::Policy {
    let (hi, lo) = (10 + i / 250, 1 + i % 250);
    let spec = format!(
        r#"{{"name":"dns{i}","image":"i.img","network":{{"tap":"{tap}","bridge":"br0",
            "addresses":["10.{hi}.0.{lo}/8","2001:db8::{i:x}:1/64"],
            "routes":[{{"destination":"0.0.0.0/0","gateway":"10.0.0.1"}}],
            "dns_servers":["10.0.0.53"]}},
            "syslog":{{"transport":"udp","host":"10.0.0.1","format":"rfc5424"}}}}"#
    );
    let spec = appliance::spec::parse(spec.as_bytes()).expect("spec");
    let manifest = appliance::manifest::parse(
        br#"{"contract_version":1,"service":{"argv":["/sbin/nsd"]},
            "ports":[{"port":53,"protocol":"udp"},{"port":53,"protocol":"tcp"}]}"#,
    )
    .expect("manifest");
    let merged = appliance::merge::merge(&spec, &manifest).expect("merge");
    let checked = contract::checked::check(merged.contract).expect("contract");
    netpolicy::derive(
        &spec.name,
        spec.network.as_ref().expect("network"),
        &manifest,
        checked.network.as_ref().expect("network"),
        checked.remote.as_ref(),
    )
    .expect("policy")
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn summary(what: &str, times: &[Duration]) {
    let mut t = times.to_vec();
    t.sort();
    if t.is_empty() {
        return;
    }
    println!(
        "{what:<52} median {:>6.2} ms, worst {:>6.2} ms (n = {})",
        ms(t[t.len() / 2]),
        ms(t[t.len() - 1]),
        t.len()
    );
}

fn main() {
    let n = appliances().max(40);
    let ns = NetNs::new().expect("ip netns add (root)");
    ns.add_bridge("br0", &["10.0.0.1/8"]).expect("bridge");
    let taps: Vec<String> = (0..n).map(|i| format!("np{i}")).collect();
    let batch: String = taps
        .iter()
        .map(|t| format!("tuntap add dev {t} mode tap\nlink set {t} master br0 up\n"))
        .collect();
    let mut c = std::process::Command::new("ip");
    c.args(["-n", ns.name(), "-batch", "-"])
        .stdin(std::process::Stdio::piped());
    let mut child = c.spawn().expect("ip -batch");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), batch.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success(), "creating the TAP devices");

    let sample = netpolicy::render(&policy(0, &taps[0]), Pass::On);
    println!(
        "{} appliances on one bridge; rules per appliance: {} ({} bytes of nft script)",
        n,
        netpolicy::rule_count(&sample),
        sample.len()
    );
    let mut installs = Vec::with_capacity(n);
    for (i, tap) in taps.iter().enumerate() {
        let p = policy(i, tap);
        let script = netpolicy::render(&p, Pass::On);
        let t = Instant::now();
        host_launch::launch::nft::install(&p.table, &script, Some(ns.name())).expect("install");
        installs.push(t.elapsed());
    }
    summary("install, appliances 1-20", &installs[..20]);
    if n >= 140 {
        summary("install, appliances 101-120", &installs[100..120]);
    }
    summary(
        &format!("install, appliances {}-{n}", n - 19),
        &installs[n - 20..],
    );
    let status = Instant::now();
    host_launch::launch::nft::summary(netpolicy::TABLE, "dns7", Some(ns.name())).expect("summary");
    println!(
        "status's summary of one appliance among {n}: {:.0} ms",
        ms(status.elapsed())
    );
    let listed = Instant::now();
    let out = ns.output("nft", &["list", "ruleset"]).expect("nft list");
    println!(
        "nft list ruleset with {n} appliances: {:.0} ms, {} lines",
        ms(listed.elapsed()),
        String::from_utf8_lossy(&out.stdout).lines().count()
    );
    let mut removals = Vec::with_capacity(n);
    for i in (0..n).rev() {
        let t = Instant::now();
        let name = format!("dns{i}");
        host_launch::launch::nft::remove(netpolicy::TABLE, &name, Some(ns.name())).expect("remove");
        removals.push(t.elapsed());
        assert!(!host_launch::launch::nft::installed(
            netpolicy::TABLE,
            &name,
            Some(ns.name())
        ));
    }
    summary(&format!("remove, the first 20 of {n}"), &removals[..20]);
    summary("remove, the last 20", &removals[n - 20..]);
}
