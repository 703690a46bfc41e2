//! End to end: the appliance images, built from their recipes, run by `host-launch` inside a
//! test network namespace with TAP devices, answering real clients from the namespace:
//!
//! - each alone: `dig` over UDP and TCP (the configured record, NXDOMAIN for an unknown
//!   name), `curl` (a page from the web appliance's data disk), `logger` over UDP and TCP
//!   (the messages land on the syslog appliance's data disk in the syslog class's layout,
//!   `/log/<host>/<day>.log`, written by a non-root rsyslog);
//! - the DNS appliance's query log lines, forwarded by guest-init, arrive in a real rsyslogd
//!   on the host side of the namespace (over UDP as RFC 3164, over TCP as RFC 5424), and on
//!   the syslog collector appliance's data disk, read back after both stopped;
//! - the three example specs (`examples/*.json`) run at once, on one bridge, through
//!   `host-launch start`, answer, and all stop cleanly with fsck-clean disks.
//!
//! Needs root (network namespaces, TAP devices) and dig, curl and logger (rsyslogd comes
//! from the syslog recipe's packages, unpacked from the archive); fails,
//! rather than skips, without them.

mod common;
mod lab;

use lab::{assert_fsck_clean, Lab, HOST};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

#[track_caller]
fn assert_clean_stop(code: Option<i32>, all: &str) {
    assert_eq!(code, Some(0), "{all}");
    assert!(all.contains("reason=requested"), "{all}");
}

/// A blank (all zeroes, sparse) data disk.
fn blank_disk(path: &Path, mib: u64) {
    let f = std::fs::File::create(path).unwrap();
    f.set_len(mib << 20).unwrap();
}

/// A data disk made on the host the way an operator would: the site under `www/`.
fn web_disk(path: &Path, page: &str) {
    let content = path.with_extension("content");
    std::fs::create_dir_all(content.join("www")).unwrap();
    std::fs::write(content.join("www/index.html"), page).unwrap();
    lab::disk_from_dir(path, &content);
}

/// The example spec `examples/<name>.json`.
fn example(name: &str) -> serde_json::Value {
    let path = e2e::workspace_root().join(format!("examples/{name}.json"));
    let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&text).unwrap()
}

/// The dnsmasq image's records (with `log-queries`), as the spec's files: the unclassed
/// dnsmasq spec of `tests/lab/dnsmasq.json` (examples/dns.json is a class dns spec, for Knot
/// and NSD).
fn dns_files() -> serde_json::Value {
    let path = e2e::workspace_root().join("build-image/tests/lab/dnsmasq.json");
    let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let files = serde_json::from_slice::<serde_json::Value>(&text).unwrap()["files"].clone();
    let conf = files[0]["content"].as_str().unwrap();
    assert!(
        conf.lines().any(|l| l == "log-queries"),
        "tests/lab/dnsmasq.json logs queries: {conf}"
    );
    files
}

/// A DNS appliance spec at 192.0.2.53 with the example's records.
fn dns_spec(lab: &Lab, name: &str, syslog: Option<serde_json::Value>) -> serde_json::Value {
    let mut spec = serde_json::json!({
        "name": name,
        "hostname": "dns1",
        "image": lab.image("dns"),
        "memory_mib": 48,
        "files": dns_files(),
        "network": lab.network("tdns", "192.0.2.53"),
    });
    if let Some(s) = syslog {
        spec["syslog"] = s;
    }
    spec
}

/// Polls `read` until its text contains every needle (or `limit` passes); returns the text.
fn wait_for(limit: Duration, needles: &[&str], read: impl Fn() -> String) -> String {
    let end = Instant::now() + limit;
    loop {
        let text = read();
        if needles.iter().all(|n| text.contains(n)) || Instant::now() >= end {
            return text;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn dns_appliance_answers_over_udp_and_tcp() {
    let lab = Lab::new("dns", None);
    let up = lab.run_appliance(&dns_spec(&lab, "img-dns", None));
    let udp = lab.run(&[
        "dig",
        "@192.0.2.53",
        "+short",
        "+tries=2",
        "www.example.net",
    ]);
    assert_eq!(udp.trim(), "192.0.2.80");
    let tcp = lab.run(&["dig", "@192.0.2.53", "+tcp", "+short", "www.example.net"]);
    assert_eq!(tcp.trim(), "192.0.2.80");
    let mx = lab.run(&["dig", "@192.0.2.53", "+short", "MX", "example.net"]);
    assert_eq!(mx.trim(), "10 mail.example.net.");
    for transport in ["+notcp", "+tcp"] {
        let unknown = lab.run(&["dig", "@192.0.2.53", transport, "nope.example.net"]);
        assert!(unknown.contains("status: NXDOMAIN"), "{unknown}");
    }
    let (code, all) = up.stop();
    assert_clean_stop(code, &all);
    // dnsmasq logs to stderr (--log-facility=-), which guest-init copies to the console.
    let console = std::fs::read_to_string(lab.state_dir().join("img-dns/console.log")).unwrap();
    assert!(console.contains("]: started, version 2."), "{console}");
    assert!(console.contains("query[A] www.example.net"), "{console}");
    assert!(!console.contains("unknown user"), "{console}");
}

#[test]
fn web_appliance_serves_its_data_disk() {
    let lab = Lab::new("web", None);
    let disk = lab.join("data0.img");
    web_disk(&disk, "<h1>hello from the web appliance</h1>\n");
    let up = lab.run_appliance(&serde_json::json!({
        "name": "img-web",
        "image": lab.image("web"),
        "memory_mib": 48,
        "disks": [{"file": disk}],
        "network": lab.network("tweb", "192.0.2.80"),
    }));
    let page = lab.run(&["curl", "-sS", "--max-time", "5", "http://192.0.2.80/"]);
    assert_eq!(page, "<h1>hello from the web appliance</h1>\n");
    let missing = lab.run(&[
        "curl",
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--max-time",
        "5",
        "http://192.0.2.80/nope.html",
    ]);
    assert_eq!(missing, "404");
    let (code, all) = up.stop();
    assert_clean_stop(code, &all);
    assert_fsck_clean(&disk);
}

/// The syslog collector appliance at 192.0.2.14 with a data disk.
fn syslog_spec(lab: &Lab, name: &str, disk: &Path) -> serde_json::Value {
    serde_json::json!({
        "name": name,
        "image": lab.image("syslog"),
        "memory_mib": 64,
        "disks": [{"file": disk}],
        "network": lab.network("tlogs", "192.0.2.14"),
    })
}

/// The collector writes as its own user (102, the recipe's `syslog`), not as root: the
/// guest formatted the blank disk with its root directory owned by that user.
#[track_caller]
fn assert_written_by_syslog_user(disk: &Path) {
    let recipe = common::recipe("syslog");
    assert_eq!(recipe.manifest.service.uid, 102);
    let hosts = common::ls(disk, "/log");
    let first = hosts.first().expect("a host directory under /log");
    let day_file = format!("/log/{first}/{}.log", today());
    for path in ["/", "/log", &format!("/log/{first}"), &day_file] {
        let stat = common::debugfs(disk, &format!("stat {path}"));
        assert!(
            stat.contains("User:   102   Group:   102"),
            "{path} is not syslog's:\n{stat}"
        );
    }
}

/// Today's UTC date, the name of the day's file in the syslog class's layout.
fn today() -> String {
    humantime::format_rfc3339(std::time::SystemTime::now()).to_string()[..10].to_string()
}

/// The syslog class's file of `host` for today (docs/classes/syslog.md):
/// `/log/<host>/<YYYY-MM-DD>.log` on the collector's disk.
fn host_day(disk: &Path, host: &str) -> String {
    common::debugfs(disk, &format!("cat /log/{host}/{}.log", today()))
}

/// Every host's file of today on the collector's disk.
fn all_hosts(disk: &Path) -> String {
    common::ls(disk, "/log")
        .iter()
        .map(|h| host_day(disk, h))
        .collect()
}

#[test]
fn syslog_appliance_writes_what_it_receives_to_its_data_disk() {
    let lab = Lab::new("syslog", None);
    let disk = lab.join("data0.img");
    blank_disk(&disk, 32);
    let up = lab.run_appliance(&syslog_spec(&lab, "img-syslog", &disk));
    for (flag, text) in [("--udp", "hello over udp"), ("--tcp", "hello over tcp")] {
        lab.run(&[
            "logger",
            flag,
            "--server",
            "192.0.2.14",
            "--port",
            "514",
            "--rfc5424",
            "-t",
            "e2e",
            text,
        ]);
    }
    // rsyslog writes as the messages arrive; give it a moment before stopping.
    std::thread::sleep(Duration::from_millis(500));
    let (code, all) = up.stop();
    assert_clean_stop(code, &all);
    assert_fsck_clean(&disk);
    let messages = all_hosts(&disk);
    for text in ["hello over udp", "hello over tcp"] {
        assert!(
            messages.contains(text),
            "{text:?} not in /log/<host>/<day>.log:\n{messages}\n{all}"
        );
    }
    let hosts = common::ls(&disk, "/log");
    assert!(!hosts.is_empty(), "no per-host log: {hosts:?}");
    assert_written_by_syslog_user(&disk);
}

/// A real rsyslogd on the host side of the lab's namespace, listening on 192.0.2.1:514 (UDP
/// and TCP) and writing `HOSTNAME APP-NAME MSG` lines to a file; stopped on drop. It is the
/// syslog recipe's rsyslog, unpacked from the archive by the builder (the host has no
/// rsyslog package), run with the loader and libraries of those packages.
struct HostRsyslog {
    child: Child,
    file: PathBuf,
    _packages: build_image::build::Sources,
}

impl HostRsyslog {
    fn start(lab: &Lab) -> HostRsyslog {
        let file = lab.join("host-syslog.log");
        let conf = lab.join("host-rsyslog.conf");
        std::fs::write(
            &conf,
            format!(
                "module(load=\"imudp\")\n\
                 input(type=\"imudp\" address=\"{HOST}\" port=\"514\")\n\
                 module(load=\"imtcp\")\n\
                 input(type=\"imtcp\" address=\"{HOST}\" port=\"514\")\n\
                 template(name=\"E2E\" type=\"string\" string=\"%HOSTNAME% %APP-NAME% %msg%\\n\")\n\
                 *.* action(type=\"omfile\" file=\"{}\" template=\"E2E\")\n",
                file.display()
            ),
        )
        .unwrap();
        let mut o = common::options(&lab.join("unused.img"));
        o.lock = Some(common::lock("syslog"));
        let packages = build_image::build::sources(&common::recipe("syslog"), &o)
            .unwrap_or_else(|e| panic!("the syslog recipe's packages: {e}"));
        let root = packages.staged.root.clone();
        let loader = rootfs::closure::locate(&root, "/lib64/ld-linux-x86-64.so.2").unwrap();
        let child = lab
            .command(loader.to_str().unwrap())
            .arg("--library-path")
            .arg(format!(
                "{0}/lib/x86_64-linux-gnu:{0}/usr/lib/x86_64-linux-gnu",
                root.display()
            ))
            .arg(root.join("usr/sbin/rsyslogd"))
            .arg("-M")
            .arg(root.join("usr/lib/x86_64-linux-gnu/rsyslog"))
            .args(["-n", "-f"])
            .arg(&conf)
            .arg("-i")
            .arg(lab.join("host-rsyslog.pid"))
            .stdin(Stdio::null())
            .spawn()
            .expect("rsyslogd from the syslog recipe's packages");
        let r = HostRsyslog {
            child,
            file,
            _packages: packages,
        };
        // Listening on both transports before the appliance starts sending.
        let listening = wait_for(Duration::from_secs(10), &["udp", "tcp"], || {
            lab.run(&["ss", "-Hlntu", "sport", "=", ":514"])
        });
        assert!(
            listening.contains("udp") && listening.contains("tcp"),
            "rsyslogd is not listening on {HOST}:514: {listening:?}"
        );
        r
    }

    fn read(&self) -> String {
        std::fs::read_to_string(&self.file).unwrap_or_default()
    }
}

impl Drop for HostRsyslog {
    fn drop(&mut self) {
        // The child is rsyslogd itself (it enters the namespace between fork and exec).
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let end = Instant::now() + Duration::from_secs(5);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The DNS appliance's remote syslog target is rsyslogd on the host side; the lines of its
/// service (APP-NAME `dnsmasq`, the appliance's hostname) and of guest-init arrive there.
fn dns_logs_reach_host_rsyslog(transport: &str, format: &str) {
    let lab = Lab::new(&format!("hostlog-{transport}"), Some("br0"));
    let rsyslog = HostRsyslog::start(&lab);
    let syslog = serde_json::json!({"transport": transport, "host": HOST, "format": format});
    let up = lab.run_appliance(&dns_spec(&lab, "img-dns-log", Some(syslog)));
    let answer = lab.run(&["dig", "@192.0.2.53", "+short", "www.example.net"]);
    assert_eq!(answer.trim(), "192.0.2.80");
    let mx = lab.run(&["dig", "@192.0.2.53", "+tcp", "+short", "MX", "example.net"]);
    assert_eq!(mx.trim(), "10 mail.example.net.");
    let wanted = [
        "query[A] www.example.net from 192.0.2.1",
        "query[MX] example.net from 192.0.2.1",
    ];
    let text = wait_for(Duration::from_secs(10), &wanted, || rsyslog.read());
    let (code, all) = up.stop();
    assert_clean_stop(code, &all);
    for w in wanted {
        let line = text.lines().find(|l| l.contains(w));
        let line = line.unwrap_or_else(|| panic!("{w:?} not in rsyslog's file:\n{text}"));
        assert!(
            line.starts_with("dns1 dnsmasq "),
            "hostname dns1 and APP-NAME dnsmasq: {line:?}"
        );
    }
    assert!(
        text.lines()
            .any(|l| l.starts_with("dns1 dnsmasq ") && l.contains("started, version 2.")),
        "dnsmasq's start-up line:\n{text}"
    );
    assert!(
        text.lines().any(|l| l.starts_with("dns1 guest-init ")),
        "guest-init's own lines:\n{text}"
    );
    drop(rsyslog);
}

#[test]
fn dns_log_lines_reach_rsyslog_on_the_host_over_udp() {
    dns_logs_reach_host_rsyslog("udp", "rfc3164");
}

#[test]
fn dns_log_lines_reach_rsyslog_on_the_host_over_tcp() {
    dns_logs_reach_host_rsyslog("tcp", "rfc5424");
}

/// The collector and the DNS appliance on one bridge, the DNS appliance logging to the
/// collector over TCP: after both stopped, the collector's data disk holds dnsmasq's lines.
#[test]
fn dns_log_lines_land_on_the_collectors_data_disk() {
    let lab = Lab::new("collect", Some("br0"));
    let disk = lab.join("logs.img");
    blank_disk(&disk, 32);
    let collector = lab.run_appliance(&syslog_spec(&lab, "img-collector", &disk));
    let syslog = serde_json::json!({"transport": "tcp", "host": "192.0.2.14", "format": "rfc5424"});
    let dns = lab.run_appliance(&dns_spec(&lab, "img-dns-send", Some(syslog)));
    let answer = lab.run(&["dig", "@192.0.2.53", "+short", "logs.example.net"]);
    assert_eq!(answer.trim(), "192.0.2.14");
    let unknown = lab.run(&["dig", "@192.0.2.53", "+tcp", "nope.example.net"]);
    assert!(unknown.contains("status: NXDOMAIN"), "{unknown}");
    // The DNS appliance flushes its log lines as it powers off; then the collector stops.
    let (code, dns_out) = dns.stop();
    assert_clean_stop(code, &dns_out);
    std::thread::sleep(Duration::from_millis(300));
    let (code, collector_out) = collector.stop();
    assert_clean_stop(code, &collector_out);
    assert_fsck_clean(&disk);
    let per_host = host_day(&disk, "dns1");
    for w in [
        "query[A] logs.example.net from 192.0.2.1",
        "query[A] nope.example.net from 192.0.2.1",
    ] {
        let line = per_host.lines().find(|l| l.contains(w));
        let line = line.unwrap_or_else(|| {
            panic!("{w:?} not in /log/dns1/<day>.log on the collector's disk:\n{per_host}")
        });
        // The class's line: "RECEIVED HOSTNAME PRI APP-NAME PROCID MSG".
        let f: Vec<&str> = line.splitn(6, ' ').collect();
        assert_eq!((f[1], f[3]), ("dns1", "dnsmasq"), "{line:?}");
    }
    // dnsmasq's last words made it before the VM ended: guest-init's flush at power-off
    // waits until the collector has acknowledged every byte.
    assert!(
        per_host.contains("exiting on receipt of SIGTERM"),
        "{per_host}"
    );
    assert_written_by_syslog_user(&disk);
}

/// `examples/dns.json` (class dns, here on the NSD image), `web.json` and `syslog.json`,
/// unchanged but for where the images, the disks and the namespace are: all three at once on
/// the examples' bridge, started with `host-launch start`, each answering its client; all stop
/// cleanly, the disks fsck-clean, and the DNS and web appliances' log lines are on the
/// collector's disk.
#[test]
fn the_three_examples_run_at_once_and_stop_cleanly() {
    // (recipe, example)
    let examples: Vec<(&str, serde_json::Value)> =
        [("syslog", "syslog"), ("nsd", "dns"), ("web", "web")]
            .into_iter()
            .map(|(r, n)| (r, example(n)))
            .collect();
    let bridge = examples[0].1["network"]["bridge"].as_str().unwrap();
    for (_, e) in &examples {
        assert_eq!(e["network"]["bridge"], bridge, "one bridge for all");
    }
    let lab = Lab::new("examples", Some(bridge));
    let mut disks = Vec::new();
    let mut names = Vec::new();
    for (recipe, mut spec) in examples {
        let name = spec["name"].as_str().unwrap().to_string();
        spec["image"] = lab.image(recipe).to_str().unwrap().into();
        spec["network"]["netns"] = lab.ns.name().into();
        if let Some(list) = spec.get_mut("disks").and_then(|d| d.as_array_mut()) {
            for (i, d) in list.iter_mut().enumerate() {
                let file = lab.join(&format!("{name}-data{i}.img"));
                if recipe == "web" {
                    web_disk(&file, "<h1>web1</h1>\n");
                }
                // The syslog disk is created (sparse, size_mib) by host-launch.
                d["file"] = file.to_str().unwrap().into();
                disks.push(file);
            }
        }
        let path = lab.write_spec(&spec);
        lab.start(&path);
        names.push(name);
    }
    assert_eq!(names, ["logs1", "dns1", "web1"]);
    let out = lab.host_launch(&["list"]);
    let list = String::from_utf8_lossy(&out.stdout);
    for n in &names {
        assert!(list.contains(n.as_str()), "{n} not listed:\n{list}");
    }

    let a = lab.run(&["dig", "@192.0.2.53", "+short", "www.example.net"]);
    assert_eq!(a.trim(), "192.0.2.80");
    let page = lab.run(&["curl", "-sS", "--max-time", "5", "http://192.0.2.80/"]);
    assert_eq!(page, "<h1>web1</h1>\n");
    lab.run(&[
        "logger",
        "--tcp",
        "--server",
        "192.0.2.14",
        "--port",
        "514",
        "-t",
        "e2e",
        "hello collector",
    ]);
    // The query's log line travels dns1 -> logs1 over UDP; give the collector a moment.
    std::thread::sleep(Duration::from_millis(300));

    for name in ["dns1", "web1", "logs1"] {
        let (code, log) = lab.stop(name);
        assert_eq!(code, Some(0), "{name}:\n{log}");
        assert!(log.contains("reason=requested"), "{name}:\n{log}");
    }
    for d in &disks {
        assert_fsck_clean(d);
    }
    let logs = lab.join("logs1-data0.img");
    let messages = all_hosts(&logs);
    for w in [
        "hello collector",
        "zone example.net read with success",
        " web1 ",
    ] {
        assert!(
            messages.contains(w),
            "{w:?} not on logs1's disk:\n{messages}"
        );
    }
    // The class's line: "RECEIVED HOSTNAME PRI APP-NAME PROCID MSG".
    for (host, app) in [("dns1", "nsd"), ("web1", "lighttpd")] {
        let text = host_day(&logs, host);
        let found = text.lines().any(|l| {
            let f: Vec<&str> = l.splitn(6, ' ').collect();
            f.len() == 6 && f[1] == host && f[3] == app
        });
        assert!(found, "no {app} line from {host}:\n{text}");
    }
    let hosts = common::ls(&logs, "/log");
    for h in ["dns1", "web1"] {
        assert!(hosts.iter().any(|x| x == h), "{h} not in {hosts:?}");
    }
}
