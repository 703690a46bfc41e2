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

/// Whether the kernel under test has IPv6 as a module: Debian's user-mode-linux package ships
/// `ipv6.ko` for its kernel's release; a kernel with no such module (the project's,
/// kernel/build) has IPv6 built in.
fn ipv6_is_a_module() -> bool {
    let kernel = e2e::kernel_path();
    let out = Command::new(&kernel)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("{} --version: {e}", kernel.display()));
    let release = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        !release.is_empty(),
        "{} --version printed nothing",
        kernel.display()
    );
    e2e::uml_modules_dir()
        .join(&release)
        .join(e2e::IPV6_MODULES[0])
        .exists()
}

#[test]
fn ipv6_in_an_image_without_modules_needs_a_kernel_with_ipv6_built_in() {
    let dir = TempDir::new("noipv6ko").expect("temporary directory");
    let image = dir.join("root.img");
    RootFs::new()
        .busybox(&APPLETS)
        .bytes("/www/index.html", PAGE, 0o644)
        .build(&image)
        .unwrap_or_else(|e| panic!("building the root image: {e}"));
    let ns = NetNs::with_tap("tap0").expect("test network");
    let c = contract(json!({
        "version": 1,
        "hostname": "v6",
        "network": network(json!({})),
        "service": {
            "name": "web",
            "argv": ["/bin/httpd", "-f", "-p", "8080", "-h", "/www"],
            "readiness": {"type": "tcp", "port": 8080}
        }
    }));
    let vm = Vm::new(&image).network(&ns).contract_cmdline(&c);
    if ipv6_is_a_module() {
        // Debian's kernel: guest-init must say which module the image lacks.
        let outcome = run(vm);
        assert_runtime_fatal(&outcome, "network", "ipv6.ko");
        return;
    }
    let vm = spawn(vm);
    wait_event(&vm, "ready", BOOT);
    let out = ns
        .output(
            "curl",
            &[
                "-sS",
                "-g",
                "--max-time",
                "10",
                "http://[2001:db8::10]:8080/index.html",
            ],
        )
        .expect("curl");
    assert!(
        out.status.success(),
        "GET over IPv6 failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        vm.console()
    );
    let outcome = cad_and_wait(vm);
    outcome.assert_clean_poweroff();
    assert!(
        !outcome.console.contains("ipv6.ko"),
        "guest-init looked for a module:\n{}",
        outcome.report()
    );
}

#[test]
fn kernel_ip_parameter_configures_the_network_when_the_contract_has_none() {
    let (_dir, image) = image("ip-param");
    let ns = NetNs::with_tap("tap0").expect("test network");
    let c = contract(json!({
        "version": 1,
        "hostname": "web2",
        "service": {
            "name": "web",
            "argv": ["/bin/sh", "-c", "ip -4 route; exec httpd -f -p 8080 -h /www"],
            "readiness": {"type": "tcp", "port": 8080}
        }
    }));
    let vm = spawn(
        Vm::new(&image)
            .network(&ns)
            .arg("ip=192.0.2.10::192.0.2.1:255.255.255.0::vec0:off")
            .contract_cmdline(&c),
    );
    wait_event(&vm, "ready", BOOT);
    let out = ns
        .output(
            "curl",
            &[
                "-sS",
                "--max-time",
                "10",
                "http://192.0.2.10:8080/index.html",
            ],
        )
        .expect("curl");
    assert!(
        out.status.success(),
        "GET failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        vm.console()
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), PAGE);
    let outcome = cad_and_wait(vm);
    outcome.assert_clean_poweroff();
    let loaded = outcome.expect_event("contract_loaded");
    assert_eq!(
        loaded.str("network"),
        Some("ip= parameter"),
        "{:?}",
        loaded.json
    );
    let routes = service_lines(&outcome, "web").join("\n");
    assert!(
        routes.contains("default via 192.0.2.1 dev vec0"),
        "no default route from ip= in\n{routes}"
    );
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

// ---------------------------------------------------------------------------------------------
// 3. Remote syslog
// ---------------------------------------------------------------------------------------------

/// The service of the syslog tests: one line on each pipe, then it exits (and the VM powers
/// off, flushing the log sink first).
fn syslog_contract(remote: Value) -> Contract {
    contract(json!({
        "version": 1,
        "hostname": "logger1",
        "network": network(json!({})),
        "logging": {"console": true, "remote": remote},
        "service": {
            "name": "chatty",
            "argv": ["/bin/sh", "-c", "echo marker-out; echo marker-err >&2; sleep 0.3"],
            "restart": {"policy": "never"}
        }
    }))
}

/// Parses one RFC 5424 message: (pri, hostname, app-name, procid, msg).
fn parse_5424(m: &str) -> Option<(u32, String, String, String, String)> {
    let rest = m.strip_prefix('<')?;
    let (pri, rest) = rest.split_once('>')?;
    let mut parts = rest.splitn(7, ' ');
    let version = parts.next()?;
    let _timestamp = parts.next()?;
    let host = parts.next()?;
    let app = parts.next()?;
    let procid = parts.next()?;
    let msgid = parts.next()?;
    let rest = parts.next()?;
    if version != "1" || msgid != "-" {
        return None;
    }
    let msg = rest.strip_prefix("- ").or(rest.strip_prefix('-'))?;
    Some((
        pri.parse().ok()?,
        host.into(),
        app.into(),
        procid.into(),
        msg.trim_start().into(),
    ))
}

/// Parses one RFC 3164 message: (pri, hostname, tag with pid, msg).
fn parse_3164(m: &str) -> Option<(u32, String, String, String)> {
    let rest = m.strip_prefix('<')?;
    let (pri, rest) = rest.split_once('>')?;
    // "Mmm dd hh:mm:ss" is 15 characters (day padded with a space).
    let stamp = rest.get(..15)?;
    if stamp.as_bytes().get(9) != Some(&b':') {
        return None;
    }
    let rest = rest.get(15..)?.strip_prefix(' ')?;
    let (host, rest) = rest.split_once(' ')?;
    let (tag, msg) = rest.split_once(": ")?;
    Some((pri.parse().ok()?, host.into(), tag.into(), msg.into()))
}

/// Splits RFC 6587 octet-counted frames (`LEN SP MSG`); returns the messages and the bytes
/// of an incomplete last frame.
fn split_frames(mut data: &[u8]) -> (Vec<String>, Vec<u8>) {
    let mut out = Vec::new();
    while let Some(sp) = data.iter().position(|b| *b == b' ') {
        let Some(len) = std::str::from_utf8(&data[..sp])
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
        else {
            panic!(
                "bad octet-counting frame at {:?}",
                String::from_utf8_lossy(data)
            );
        };
        let Some(msg) = data.get(sp + 1..sp + 1 + len) else {
            break;
        };
        out.push(String::from_utf8_lossy(msg).into_owned());
        data = &data[sp + 1 + len..];
    }
    (out, data.to_vec())
}

#[test]
fn syslog_udp_rfc5424() {
    let (_dir, image) = image("sys-udp");
    let ns = NetNs::with_tap("tap0").expect("test network");
    let sock = ns
        .bind_udp("192.0.2.1:5514".parse().unwrap())
        .expect("UDP receiver");
    let c = syslog_contract(json!({
        "transport": "udp", "host": "192.0.2.1", "port": 5514,
        "format": "rfc5424", "facility": "local3"
    }));
    let outcome = run(Vm::new(&image).network(&ns).contract_cmdline(&c));
    outcome.assert_clean_poweroff();
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut messages = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = sock.recv(&mut buf) {
        messages.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    let all = messages.join("\n");
    let parsed: Vec<_> = messages.iter().filter_map(|m| parse_5424(m)).collect();
    assert_eq!(parsed.len(), messages.len(), "not all RFC 5424:\n{all}");
    for (text, severity) in [("marker-out", 6), ("marker-err", 4)] {
        let (pri, host, app, procid, _) = parsed
            .iter()
            .find(|p| p.4 == text)
            .unwrap_or_else(|| panic!("no message {text:?} among\n{all}\n{}", outcome.report()));
        assert_eq!(
            *pri,
            19 * 8 + severity,
            "PRI of {text}: local3 and its severity"
        );
        assert_eq!(host, "logger1");
        assert_eq!(app, "chatty");
        let pid = outcome.expect_event("service_started").u64("pid");
        assert_eq!(
            procid.parse::<u64>().ok(),
            pid,
            "PROCID is the service's pid"
        );
    }
    assert!(
        parsed
            .iter()
            .any(|p| p.2 == "guest-init" && p.4.starts_with("service started")),
        "guest-init's own messages go to the log host too:\n{all}"
    );
}

#[test]
fn syslog_tcp_rfc3164_octet_counting() {
    let (_dir, image) = image("sys-tcp");
    let ns = NetNs::with_tap("tap0").expect("test network");
    let listener = ns
        .bind_tcp("192.0.2.1:5515".parse().unwrap())
        .expect("TCP receiver");
    let receiver = std::thread::spawn(move || {
        listener.set_nonblocking(true).unwrap();
        let deadline = Instant::now() + BOOT;
        let mut data = Vec::new();
        let mut stream = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(e) => panic!("no connection from the guest: {e}"),
            }
        };
        stream.set_nonblocking(false).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => data.extend_from_slice(&buf[..n]),
                Err(_) => {
                    let text = String::from_utf8_lossy(&data);
                    if text.contains("power off") {
                        break;
                    }
                }
            }
        }
        data
    });
    let c = syslog_contract(json!({
        "transport": "tcp", "host": "192.0.2.1", "port": 5515, "format": "rfc3164"
    }));
    let outcome = run(Vm::new(&image).network(&ns).contract_cmdline(&c));
    outcome.assert_clean_poweroff();
    let data = receiver.join().expect("receiver");
    let (messages, rest) = split_frames(&data);
    let all = messages.join("\n");
    assert!(
        rest.is_empty(),
        "an incomplete frame at the end: {rest:?}\n{all}"
    );
    let pid = outcome
        .expect_event("service_started")
        .u64("pid")
        .expect("pid");
    for (text, severity) in [("marker-out", 6), ("marker-err", 4)] {
        let m = messages
            .iter()
            .find(|m| m.ends_with(&format!(": {text}")))
            .unwrap_or_else(|| panic!("no message {text:?} among\n{all}\n{}", outcome.report()));
        let (pri, host, tag, msg) = parse_3164(m).unwrap_or_else(|| panic!("not RFC 3164: {m:?}"));
        assert_eq!(
            pri,
            3 * 8 + severity,
            "PRI of {m:?}: daemon and its severity"
        );
        assert_eq!(host, "logger1");
        assert_eq!(tag, format!("chatty[{pid}]"));
        assert_eq!(msg, text);
    }
    assert!(
        messages
            .iter()
            .filter_map(|m| parse_3164(m))
            .any(|(_, _, tag, msg)| tag == "guest-init[1]" && msg.starts_with("service started")),
        "guest-init's own messages go to the log host too:\n{all}"
    );
}

// ---------------------------------------------------------------------------------------------
// 4.-9. Supervision
// ---------------------------------------------------------------------------------------------

/// A contract without network for the supervision tests.
fn service_contract(service: Value) -> Contract {
    contract(json!({"version": 1, "hostname": "svc1", "service": service}))
}

#[test]
fn crash_loop_backs_off_exponentially_up_to_the_cap() {
    let (_dir, image) = image("crash");
    let c = service_contract(json!({
        "name": "crasher",
        "argv": ["/bin/sh", "-c", "echo crash; exit 3"],
        "restart": {"policy": "on-failure", "backoff_min_ms": 50, "backoff_max_ms": 400}
    }));
    let vm = spawn(Vm::new(&image).contract_cmdline(&c));
    let restarting = vm
        .wait_for_events("restarting", 6, BOOT)
        .unwrap_or_else(|e| panic!("{e}"));
    let outcome = cad_and_wait(vm);
    outcome.assert_clean_poweroff();
    let delays: Vec<u64> = restarting
        .iter()
        .map(|e| e.u64("delay_ms").expect("delay_ms"))
        .collect();
    assert_eq!(delays[..6], [50, 100, 200, 400, 400, 400], "{delays:?}");
    let exited = outcome.events_named("exited");
    assert!(exited.len() >= 6, "{}", outcome.report());
    for e in &exited {
        if e.i64("code") != Some(3) {
            // The last run may have been stopped by the shutdown.
            assert!(std::ptr::eq(*e, *exited.last().unwrap()), "{:?}", e.json);
        }
    }
    // Each restart came no sooner than its delay after the exit before it.
    let evs = outcome.events();
    for (i, r) in evs
        .iter()
        .enumerate()
        .filter(|(_, e)| e.name == "restarting")
    {
        let exit = evs[..i].iter().rev().find(|e| e.name == "exited").unwrap();
        let Some(next) = evs[i..].iter().find(|e| e.name == "service_started") else {
            continue;
        };
        let waited_ms = (next.boot_us - exit.boot_us) / 1000;
        let delay = r.u64("delay_ms").unwrap();
        assert!(
            waited_ms + 1 >= delay,
            "restart {} came {waited_ms} ms after the exit, before its {delay} ms delay",
            r.u64("restarts").unwrap_or(0)
        );
    }
    assert!(service_lines(&outcome, "crasher").contains(&"crash"));
}

/// PID 1's open descriptors and resident memory, as one restarted service run reports them.
fn pid1_footprint(line: &str) -> Option<(u64, u64)> {
    let mut words = line.split_whitespace();
    let fds = words.next()?.strip_prefix("fds=")?.parse().ok()?;
    let rss = words.next()?.strip_prefix("rss_kb=")?.parse().ok()?;
    Some((fds, rss))
}

#[test]
fn a_crash_loop_costs_no_growing_memory_or_descriptors() {
    let (_dir, image) = image("crash-loop");
    // Each run reports PID 1's open descriptors and resident memory, then fails at once.
    let c = service_contract(json!({
        "name": "looper",
        "argv": ["/bin/sh", "-c",
                 "echo fds=$(ls /proc/1/fd | wc -l) rss_kb=$(awk '/^VmRSS/ {print $2}' /proc/1/status); exit 1"],
        "restart": {"policy": "on-failure", "backoff_min_ms": 1, "backoff_max_ms": 2}
    }));
    let vm = spawn(Vm::new(&image).contract_cmdline(&c));
    vm.wait_for_events("restarting", 300, Duration::from_secs(120))
        .unwrap_or_else(|e| panic!("{e}"));
    let outcome = cad_and_wait(vm);
    outcome.assert_clean_poweroff();
    let runs: Vec<(u64, u64)> = service_lines(&outcome, "looper")
        .iter()
        .filter_map(|l| pid1_footprint(l))
        .collect();
    assert!(runs.len() >= 300, "only {} runs reported", runs.len());
    // A run may look at PID 1 while it is still inside spawn, holding the new run's pipe ends
    // for a moment, so single readings vary; what a leak would raise is the floor. After
    // warming up (the log threads, the first allocations), the floor of the last runs must be
    // that of the first ones.
    let floor = |window: &[(u64, u64)]| {
        let fds = window.iter().map(|r| r.0).min().unwrap_or(0);
        let rss = window.iter().map(|r| r.1).min().unwrap_or(0);
        (fds, rss)
    };
    let (early_fds, early_rss) = floor(&runs[10..60]);
    let (late_fds, late_rss) = floor(&runs[runs.len() - 50..]);
    assert_eq!(
        late_fds,
        early_fds,
        "PID 1's descriptors grew over {} restarts: {runs:?}",
        runs.len()
    );
    assert!(
        late_rss <= early_rss + 64,
        "PID 1's memory grew from {early_rss} kB to {late_rss} kB over {} restarts",
        runs.len()
    );
}

#[test]
fn orphans_are_reaped() {
    let (_dir, image) = image("orphans");
    // 20 subshells each leave a `sleep` behind, re-parented to PID 1; once they have all
    // exited, no process may be left a zombie. (Sleeps of 4 s, so that all 20 still live when
    // counted even on a loaded machine.)
    let script = r#"
        count() {
            n=0
            for f in /proc/[0-9]*/stat; do
                { read -r p c s pp rest < "$f"; } 2>/dev/null || continue
                if [ "$1" = zombies ]; then
                    [ "$s" = Z ] && n=$((n+1))
                else
                    [ "$c" = "(sleep)" ] && [ "$pp" = 1 ] && [ "$s" != Z ] && n=$((n+1))
                fi
            done
            echo $n
        }
        i=0
        while [ $i -lt 20 ]; do (sleep 4 &); i=$((i+1)); done
        echo orphans=$(count orphans)
        t=0
        while [ "$(count orphans)" -gt 0 ] && [ $t -lt 100 ]; do sleep 0.2; t=$((t+1)); done
        echo left=$(count orphans)
        sleep 0.5
        echo zombies=$(count zombies)
    "#;
    let c = service_contract(json!({
        "name": "spawner",
        "argv": ["/bin/sh", "-c", script],
        "restart": {"policy": "never"}
    }));
    let outcome = run(Vm::new(&image).contract_cmdline(&c));
    outcome.assert_clean_poweroff();
    let lines = service_lines(&outcome, "spawner");
    assert!(lines.contains(&"orphans=20"), "{lines:?}");
    assert!(lines.contains(&"left=0"), "{lines:?}");
    assert!(lines.contains(&"zombies=0"), "{lines:?}");
    let off = outcome.expect_event("power_off");
    assert_eq!(off.i64("code"), Some(0), "{:?}", off.json);
}

/// The data disk of the power-off test: a sparse file, blank, so the guest formats it.
fn blank_disk(path: &Path, mib: u64) {
    let f = std::fs::File::create(path).expect("disk file");
    f.set_len(mib << 20).expect("disk size");
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

#[test]
fn ctrl_alt_del_powers_off_cleanly_with_the_data_on_disk() {
    let (dir, image) = image("cad");
    let disk = dir.join("data.img");
    blank_disk(&disk, 64);
    let c = disk_contract(json!({
        "name": "writer",
        "argv": ["/bin/sh", "-c",
                 "echo persisted-data > /data/file; echo written; exec sleep 1000"]
    }));
    let vm = spawn(Vm::new(&image).disk(&disk, false).contract_cmdline(&c));
    let mounted = wait_event(&vm, "disk_mounted", BOOT);
    assert_eq!(
        mounted.field("formatted"),
        &json!(true),
        "{:?}",
        mounted.json
    );
    vm.wait_for_console("writer: written", BOOT)
        .unwrap_or_else(|e| panic!("{e}"));
    let outcome = cad_and_wait(vm);
    outcome.assert_clean_poweroff();
    outcome.assert_events_in_order(&[
        "disk_mounted",
        "service_started",
        "shutting_down",
        "exited",
        "disks_unmounted",
        "power_off",
    ]);
    let down = outcome.expect_event("shutting_down");
    assert_eq!(down.str("reason"), Some("SIGINT (ctrl-alt-del)"));
    let exited = outcome.expect_event("exited");
    assert_eq!(exited.i64("signal"), Some(15), "{:?}", exited.json);
    let unmounted = outcome.expect_event("disks_unmounted");
    assert_eq!(
        unmounted.field("disks"),
        &json!([{"mount_point": "/data", "result": "unmounted"}])
    );
    // The file system is clean and holds the data.
    let fsck = Command::new("e2fsck")
        .args(["-fn"])
        .arg(&disk)
        .output()
        .expect("e2fsck");
    assert!(
        fsck.status.success(),
        "e2fsck -fn: {}\n{}{}",
        fsck.status,
        String::from_utf8_lossy(&fsck.stdout),
        String::from_utf8_lossy(&fsck.stderr)
    );
    let cat = Command::new("debugfs")
        .args(["-R", "cat /file"])
        .arg(&disk)
        .output()
        .expect("debugfs");
    assert_eq!(String::from_utf8_lossy(&cat.stdout), "persisted-data\n");

    // A second boot checks the disk (e2fsck in the guest) instead of formatting it.
    let c = disk_contract(json!({
        "name": "reader",
        "argv": ["/bin/cat", "/data/file"],
        "restart": {"policy": "never"}
    }));
    let outcome = run(Vm::new(&image).disk(&disk, false).contract_cmdline(&c));
    outcome.assert_clean_poweroff();
    let mounted = outcome.expect_event("disk_mounted");
    assert_eq!(
        mounted.field("formatted"),
        &json!(false),
        "{:?}",
        mounted.json
    );
    assert_eq!(mounted.field("checked"), &json!(true), "{:?}", mounted.json);
    assert!(service_lines(&outcome, "reader").contains(&"persisted-data"));
}

#[test]
fn restart_never_powers_off_with_the_exit_code() {
    let (_dir, image) = image("never");
    let c = service_contract(json!({
        "argv": ["/bin/sh", "-c", "echo bye; exit 7"],
        "restart": {"policy": "never"}
    }));
    let outcome = run(Vm::new(&image).contract_cmdline(&c));
    outcome.assert_clean_poweroff();
    outcome.assert_events_in_order(&["service_started", "exited", "power_off"]);
    assert!(
        outcome.event("restarting").is_none(),
        "{}",
        outcome.report()
    );
    let off = outcome.expect_event("power_off");
    assert_eq!(off.i64("code"), Some(7), "{:?}", off.json);
    assert_eq!(off.str("reason"), Some("service ended"), "{:?}", off.json);
    assert_eq!(outcome.expect_event("exited").i64("code"), Some(7));
}

#[test]
fn a_service_ignoring_the_stop_signal_is_killed_after_the_stop_timeout() {
    let (_dir, image) = image("stubborn");
    let c = service_contract(json!({
        "name": "stubborn",
        "argv": ["/bin/sh", "-c", "trap '' TERM; echo trapped; sleep 1000"],
        "stop_timeout_ms": 1000
    }));
    let vm = spawn(Vm::new(&image).contract_cmdline(&c));
    vm.wait_for_console("stubborn: trapped", BOOT)
        .unwrap_or_else(|e| panic!("{e}"));
    let outcome = cad_and_wait(vm);
    outcome.assert_clean_poweroff();
    outcome.assert_events_in_order(&["shutting_down", "stop_timeout", "exited", "power_off"]);
    let asked = outcome.expect_event("shutting_down");
    let killed = outcome.expect_event("stop_timeout");
    let waited_ms = (killed.boot_us - asked.boot_us) / 1000;
    assert!(
        (1000..2500).contains(&waited_ms),
        "killed {waited_ms} ms after the stop signal; stop_timeout_ms is 1000"
    );
    let exited = outcome.expect_event("exited");
    assert_eq!(exited.i64("signal"), Some(9), "{:?}", exited.json);
}

#[test]
fn readiness_by_notification() {
    let (_dir, image) = image("notify");
    let c = service_contract(json!({
        "argv": ["/bin/sh", "-c", "sleep 0.3; echo >&3; sleep 100"],
        "readiness": {"type": "notify", "fd": 3}
    }));
    let vm = spawn(Vm::new(&image).contract_cmdline(&c));
    let ready = wait_event(&vm, "ready", BOOT);
    let started = vm
        .events()
        .into_iter()
        .find(|e| e.name == "service_started")
        .expect("service_started before ready");
    let outcome = cad_and_wait(vm);
    outcome.assert_clean_poweroff();
    assert_eq!(ready.str("via"), Some("notify"), "{:?}", ready.json);
    let after = ready.u64("after_ms").expect("after_ms");
    assert!(
        after >= 300,
        "ready after {after} ms, before the notification"
    );
    assert!(ready.boot_us - started.boot_us >= 300_000);
}

// ---------------------------------------------------------------------------------------------
// 10.-11. Fatal paths
// ---------------------------------------------------------------------------------------------

/// A `hostcontract=` token carrying raw JSON text, valid or not.
fn raw_token(json: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
    format!("{}={b64}", contract::cmdline::PARAM)
}

/// What every fatal boot must show: a `fatal` status event (then `power_off` with reason
/// fatal), no service started, and a clean power-off. Returns the fatal event.
fn check_fatal(outcome: &VmOutcome) -> Result<&Event, String> {
    if !outcome.powered_off_cleanly() {
        return Err("the VM did not power off cleanly".into());
    }
    if !e2e::events::in_order(outcome.events(), &["fatal", "power_off"]) {
        return Err(format!("events {:?}", outcome.event_names()));
    }
    let off = outcome.event("power_off").ok_or("no power_off")?;
    if off.str("reason") != Some("fatal") {
        return Err(format!("power_off reason: {:?}", off.json));
    }
    if outcome.event("service_started").is_some() {
        return Err("the service was started".into());
    }
    if !outcome.console.contains("guest-init: powering off") {
        return Err("no 'powering off' line".into());
    }
    outcome
        .event("fatal")
        .ok_or_else(|| "no fatal event".into())
}

/// Whether the console has a `guest-init: fatal: ` line containing `message`.
fn has_fatal_line(outcome: &VmOutcome, message: &str) -> bool {
    outcome
        .guest_init_lines()
        .iter()
        .filter_map(|l| l.strip_prefix("fatal: "))
        .any(|l| l.contains(message))
}

/// How many corpus VMs boot at once (the machine may have only 2 cores, shared with the
/// other tests).
const CORPUS_JOBS: usize = 2;

#[test]
fn every_bad_contract_in_the_corpus_is_fatal_with_its_message() {
    let (_dir, image) = image("corpus");
    let bad = e2e::workspace_root().join("contract/tests/bad");
    let mut cases: Vec<(String, Vec<u8>, String)> = std::fs::read_dir(&bad)
        .expect("contract/tests/bad")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            let json = std::fs::read(&p).expect("case");
            let expect = std::fs::read_to_string(p.with_extension("expect"))
                .unwrap_or_else(|e| panic!("{name}.expect: {e}"));
            (name, json, expect.trim().to_string())
        })
        .collect();
    cases.sort();
    assert!(cases.len() >= 35, "only {} cases", cases.len());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failures = std::sync::Mutex::new(Vec::new());
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..CORPUS_JOBS {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some((name, json, expect)) = cases.get(i) else {
                    return;
                };
                let vm = Vm::new(&image).cmdline_token(raw_token(json)).timeout(BOOT);
                let problem = match vm.run() {
                    Err(e) => Some(format!("running the VM: {e}")),
                    Ok(outcome) => match check_fatal(&outcome) {
                        Err(why) => Some(format!("{why}\n{}", outcome.report())),
                        Ok(fatal) => {
                            let reason = fatal.str("reason").unwrap_or("");
                            if !has_fatal_line(&outcome, expect) {
                                Some(format!(
                                    "no fatal line with {expect:?}\n{}",
                                    outcome.report()
                                ))
                            } else if !reason.contains(expect.as_str()) {
                                Some(format!(
                                    "the fatal event's reason lacks {expect:?}: {reason}"
                                ))
                            } else if fatal.str("field") != Some("contract") {
                                Some(format!("fatal field: {:?}", fatal.json))
                            } else {
                                None
                            }
                        }
                    },
                };
                if let Some(p) = problem {
                    failures
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(format!("=== {name}: {p}"));
                }
            });
        }
    });
    eprintln!(
        "{} bad contracts booted in {:?}",
        cases.len(),
        started.elapsed()
    );
    let failures = failures.into_inner().unwrap_or_else(|e| e.into_inner());
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// Boots a contract that fails at runtime and checks the fatal event names `field` and the
/// console says `message`.
#[track_caller]
fn assert_runtime_fatal(outcome: &VmOutcome, field: &str, message: &str) {
    let fatal = check_fatal(outcome).unwrap_or_else(|why| panic!("{why}\n{}", outcome.report()));
    assert_eq!(
        fatal.str("field"),
        Some(field),
        "{:?}\n{}",
        fatal.json,
        outcome.report()
    );
    assert!(
        has_fatal_line(outcome, message),
        "no fatal line with {message:?}\n{}",
        outcome.report()
    );
    let off = outcome.expect_event("power_off");
    assert_eq!(off.str("field"), Some(field), "{:?}", off.json);
}

#[test]
fn a_missing_data_disk_is_fatal() {
    let (_dir, image) = image("nodisk");
    let c = disk_contract(json!({"argv": ["/bin/true"]}));
    let outcome = run(Vm::new(&image).contract_cmdline(&c));
    assert_runtime_fatal(
        &outcome,
        "mounts.disks[0].device",
        "mounts.disks[0].device: /dev/ubdb does not exist",
    );
}

#[test]
fn a_missing_interface_is_fatal() {
    let (_dir, image) = image("noif");
    let c = contract(json!({
        "version": 1,
        "hostname": "noif",
        "network": {"interfaces": [{"name": "eth9", "addresses": ["192.0.2.10/24"]}]},
        "service": {"argv": ["/bin/true"]}
    }));
    let outcome = run(Vm::new(&image).contract_cmdline(&c));
    assert_runtime_fatal(&outcome, "network.interfaces[0].name", "eth9");
}

#[test]
fn a_missing_program_is_fatal() {
    let (_dir, image) = image("noprog");
    let c = service_contract(json!({"argv": ["/usr/bin/nope", "--flag"]}));
    let outcome = run(Vm::new(&image).contract_cmdline(&c));
    assert_runtime_fatal(
        &outcome,
        "service.argv[0]",
        "service.argv[0] '/usr/bin/nope': No such file or directory",
    );
}
