//! guest-init as a complete PID 1, under real User-Mode Linux: the network the contract
//! describes, the files and identity the service sees, remote syslog, supervision (restart
//! backoff, orphan reaping, readiness, stop timeouts), clean power-off with data disks, and
//! every fatal path ending in a clean power-off.
//!
//! Tests that need a network run the VM in a network namespace of their own with a tap
//! device (host side 192.0.2.1/24 and 2001:db8::1/64, guest 192.0.2.10 and 2001:db8::10), so
//! nothing leaves the machine and tests can run in parallel.

use base64::Engine;
use contract::Contract;
use e2e::{Event, NetNs, RootFs, RunningVm, TempDir, Vm, VmOutcome};
use serde_json::{json, Value};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// How long a boot may take to reach an event (generous: CI machines are slow and the tests
/// run in parallel).
const BOOT: Duration = Duration::from_secs(30);
/// How long a VM may take to power off once asked.
const OFF: Duration = Duration::from_secs(20);

const PAGE: &str = "<h1>hello from the appliance</h1>\n";

/// The applets the test services use, linked to /bin/busybox.
const APPLETS: [&str; 19] = [
    "sh", "cat", "echo", "sleep", "hostname", "id", "ip", "ps", "grep", "awk", "sync", "wc", "ls",
    "httpd", "true", "false", "test", "touch", "rm",
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

/// A contract without network for the supervision tests.
fn service_contract(service: Value) -> Contract {
    contract(json!({"version": 1, "hostname": "svc1", "service": service}))
}

fn disk_contract(service: Value) -> Contract {
    contract(json!({
        "version": 1,
        "hostname": "store1",
        "mounts": {"disks": [
            {"device": "/dev/ubdb", "mount_point": "/data", "format_if_blank": true}
        ]},
        "service": service
    }))
}

/// The data disk of the power-off test: a sparse file, blank, so the guest formats it.
fn blank_disk(path: &Path, mib: u64) {
    let f = std::fs::File::create(path).expect("disk file");
    f.set_len(mib << 20).expect("disk size");
}

mod fatal;
mod network;
mod supervision;
mod syslog;
