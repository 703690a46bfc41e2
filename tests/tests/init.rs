//! guest-init as a complete PID 1, under real User-Mode Linux: the network the contract
//! describes, the files and identity the service sees, remote syslog, supervision (restart
//! backoff, orphan reaping, readiness, stop timeouts), clean power-off with data disks, and
//! every fatal path ending in a clean power-off.
//!
//! Tests that need a network run the VM in a network namespace of their own with a tap
//! device (host side 192.0.2.1/24 and 2001:db8::1/64, guest 192.0.2.10 and 2001:db8::10), so
//! nothing leaves the machine and tests can run in parallel.

use contract::Contract;
use e2e::{Event, NetNs, RootFs, RunningVm, TempDir, Vm, VmOutcome};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

/// How long a boot may take to reach an event (generous: CI machines are slow and the tests
/// run in parallel).
const BOOT: Duration = Duration::from_secs(30);
/// How long a VM may take to power off once asked.
const OFF: Duration = Duration::from_secs(20);

const PAGE: &str = "<h1>hello from the appliance</h1>\n";

/// The applets the test services use, linked to /bin/busybox.
const APPLETS: [&str; 16] = [
    "sh", "cat", "echo", "sleep", "hostname", "id", "ip", "ps", "grep", "awk", "sync", "wc", "ls",
    "httpd", "true", "false",
];

/// The test appliance image: guest-init, busybox, a web page, the IPv6 modules, the resolver
/// links into /run, a /data mount point, and mke2fs/e2fsck with their libraries.
fn appliance() -> RootFs {
    RootFs::new()
        .busybox(&APPLETS)
        .bytes("/www/index.html", PAGE, 0o644)
        .dir("/data", 0o755)
        .resolver_links()
        .ipv6_modules()
        .and_then(|r| r.program_with_libs("/sbin/mke2fs", "/sbin/mke2fs"))
        .and_then(|r| r.program_with_libs("/sbin/e2fsck", "/sbin/e2fsck"))
        .unwrap_or_else(|e| panic!("assembling the image: {e}"))
}

/// A fresh appliance image in its own temporary directory.
fn image(label: &str) -> (TempDir, PathBuf) {
    let dir = TempDir::new(label).expect("temporary directory");
    let image = dir.join("root.img");
    appliance()
        .build(&image)
        .unwrap_or_else(|e| panic!("building the root image: {e}"));
    (dir, image)
}

fn contract(v: Value) -> Contract {
    contract::parse_json(v.to_string().as_bytes())
        .unwrap_or_else(|e| panic!("test contract: {e}\n{v:#}"))
}

/// The network section every networked test uses: vec0 with one address per family.
fn network(extra: Value) -> Value {
    let mut net = json!({
        "interfaces": [{"name": "vec0", "addresses": ["192.0.2.10/24", "2001:db8::10/64"]}]
    });
    if let (Value::Object(n), Value::Object(e)) = (&mut net, extra) {
        n.extend(e);
    }
    net
}

fn spawn(vm: Vm) -> RunningVm {
    vm.spawn()
        .unwrap_or_else(|e| panic!("starting the VM: {e}"))
}

fn run(vm: Vm) -> VmOutcome {
    let outcome = vm.run().unwrap_or_else(|e| panic!("running the VM: {e}"));
    eprintln!("{}", outcome.report());
    outcome
}

/// Waits for an event or panics with what the VM showed.
#[track_caller]
fn wait_event(vm: &RunningVm, name: &str, timeout: Duration) -> Event {
    vm.wait_for_event(name, timeout)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Presses ctrl-alt-del and waits for the power-off.
fn cad_and_wait(vm: RunningVm) -> VmOutcome {
    vm.mconsole("cad")
        .unwrap_or_else(|e| panic!("mconsole cad: {e}\n{}", vm.console()));
    let outcome = vm.wait(OFF).unwrap_or_else(|e| panic!("waiting: {e}"));
    eprintln!("{}", outcome.report());
    outcome
}

/// The console lines of the service (named `app`) as guest-init relays them.
fn service_lines<'a>(outcome: &'a VmOutcome, app: &str) -> Vec<&'a str> {
    let prefix = format!("{app}: ");
    outcome
        .console
        .lines()
        .filter_map(|l| l.strip_prefix(prefix.as_str()))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// 1. Network
// ---------------------------------------------------------------------------------------------

#[test]
fn network_as_the_contract_says() {
    let (_dir, image) = image("net");
    let ns = NetNs::with_tap("tap0").expect("test network");
    let c = contract(json!({
        "version": 1,
        "hostname": "web1",
        "network": network(json!({
            "routes": [
                {"destination": "198.51.100.0/24", "gateway": "192.0.2.1"},
                {"destination": "::/0", "gateway": "2001:db8::1"}
            ],
            "dns_servers": ["192.0.2.53", "2001:db8::53"],
            "search_domains": ["example.test"]
        })),
        "service": {
            "name": "web",
            "argv": ["/bin/sh", "-c",
                     "ip -4 route; ip -6 route; exec httpd -f -p 8080 -h /www"],
            "readiness": {"type": "tcp", "port": 8080}
        }
    }));
    let vm = spawn(Vm::new(&image).network(&ns).contract_cmdline(&c));
    wait_event(&vm, "ready", BOOT);
    for (args, what) in [
        (vec!["ping", "-c", "1", "-W", "5", "192.0.2.10"], "ping"),
        (
            vec!["ping", "-6", "-c", "1", "-W", "5", "2001:db8::10"],
            "ping -6",
        ),
    ] {
        let out = ns.output("busybox", &args).expect("ping");
        assert!(
            out.status.success(),
            "{what} failed: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            vm.console()
        );
    }
    for url in [
        "http://192.0.2.10:8080/index.html",
        "http://[2001:db8::10]:8080/index.html",
    ] {
        let out = ns
            .output("curl", &["-sS", "-g", "--max-time", "10", url])
            .expect("curl");
        assert!(
            out.status.success(),
            "GET {url} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            vm.console()
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), PAGE, "GET {url}");
    }
    let outcome = cad_and_wait(vm);
    outcome.assert_clean_poweroff();
    outcome.assert_events_in_order(&[
        "contract_loaded",
        "network_up",
        "service_started",
        "ready",
        "shutting_down",
        "power_off",
    ]);
    let up = outcome.expect_event("network_up");
    let addresses = up.field("addresses").to_string();
    for a in ["192.0.2.10/24", "2001:db8::10/64"] {
        assert!(addresses.contains(a), "{a} not in {addresses}");
    }
    let ready = outcome.expect_event("ready");
    assert_eq!(
        ready.str("via"),
        Some("tcp 127.0.0.1:8080"),
        "{:?}",
        ready.json
    );
    let routes = service_lines(&outcome, "web").join("\n");
    for r in [
        "198.51.100.0/24 via 192.0.2.1 dev vec0",
        "192.0.2.0/24 dev vec0",
        "default via 2001:db8::1 dev vec0",
        "2001:db8::/64 dev vec0",
    ] {
        assert!(routes.contains(r), "route {r:?} not in\n{routes}");
    }
}

// ---------------------------------------------------------------------------------------------
// 2. What the service sees
// ---------------------------------------------------------------------------------------------

#[test]
fn hostname_resolver_and_identity_seen_by_the_service() {
    let (_dir, image) = image("seen");
    let ns = NetNs::with_tap("tap0").expect("test network");
    let c = contract(json!({
        "version": 1,
        "hostname": "seen1",
        "network": network(json!({
            "dns_servers": ["192.0.2.53", "2001:db8::53"],
            "search_domains": ["example.test", "lab.example"]
        })),
        "logging": {"console": true},
        "service": {
            "name": "probe",
            "argv": ["/bin/sh", "-c",
                     "echo host=$(hostname); cat /etc/resolv.conf; cat /etc/hosts; id"],
            "uid": 1000, "gid": 1001, "groups": [2000],
            "restart": {"policy": "never"}
        }
    }));
    let outcome = run(Vm::new(&image).network(&ns).contract_cmdline(&c));
    outcome.assert_clean_poweroff();
    // The console copy of a line has its tabs turned into spaces (syslog-safe text).
    let lines: Vec<String> = service_lines(&outcome, "probe")
        .into_iter()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    let text = lines.join("\n");
    assert!(lines.iter().any(|l| l == "host=seen1"), "{text}");
    for want in [
        "nameserver 192.0.2.53",
        "nameserver 2001:db8::53",
        "search example.test lab.example",
        "127.0.0.1 localhost",
        "192.0.2.10 seen1",
        "2001:db8::10 seen1",
        "uid=1000 gid=1001 groups=2000",
    ] {
        assert!(
            lines.iter().any(|l| l == want),
            "no line {want:?} in the service's output:\n{text}\n{}",
            outcome.report()
        );
    }
    let off = outcome.expect_event("power_off");
    assert_eq!(off.i64("code"), Some(0), "{:?}", off.json);
}
