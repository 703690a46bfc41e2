//! Every vendor swap of every class on both kernels, with every address family (root; about
//! 2 min in all on 2 shared cores): on the project's kernel (`build/kernel/linux`, made by
//! `kernel/build`) and on Debian's `linux.uml` (IPv6 a module guest-init loads only for a
//! contract that gives IPv6), with an IPv4-only, an IPv6-only and a dual-stack spec, each
//! class's example spec starts on one vendor's image and `host-launch upgrade` moves it to
//! the other's: dns NSD → Knot → NSD, web lighttpd → nginx, syslog rsyslog → syslog-ng. After
//! the start and after each upgrade the service answers on every address the spec gives
//! (docs/classes/README.md, "Address families"). A kernel that is missing fails the test.
//!
//! The upgrade command's wall time is printed (a figure that comes free with the test; the
//! downtime is measured by `cargo bench -p build-image --bench upgrade`).

mod common;
mod lab;

use lab::{assert_fsck_clean, bench_kernels, shown, Lab};
use serde_json::{json, Value};
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The lab's bridge; its host side has 192.0.2.1/24 and this IPv6 address.
const BRIDGE: &str = "br-swap";
const HOST_V6: &str = "2001:db8::1/64";

/// The families a spec gives: its name and the guest's addresses.
const FAMILIES: [(&str, &[&str]); 3] = [
    ("ipv4", &["192.0.2.90/24"]),
    ("ipv6", &["2001:db8::90/64"]),
    ("dual", &["192.0.2.90/24", "2001:db8::90/64"]),
];

/// A lab whose bridge has both families' host addresses.
fn dual_lab(label: &str) -> Lab {
    let lab = Lab::new(label, Some(BRIDGE));
    lab.ns
        .ip(&["-6", "addr", "add", HOST_V6, "dev", BRIDGE, "nodad"])
        .unwrap_or_else(|e| panic!("{HOST_V6} on {BRIDGE}: {e}"));
    lab
}

/// `examples/<example>.json` on `image` and `kernel`, with the lab's bridge and `addresses`
/// (no routes: the host side is on the link), without its syslog target.
fn spec(lab: &Lab, example: &str, image: &Path, kernel: &Path, addresses: &[&str]) -> Value {
    let path = e2e::workspace_root().join(format!("examples/{example}.json"));
    let mut s: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    s["image"] = image.to_str().unwrap().into();
    s["kernel"] = kernel.to_str().unwrap().into();
    s["network"] = json!({
        "netns": lab.ns.name(),
        "bridge": BRIDGE,
        "tap": format!("tsw{}{}", &example[..1], std::process::id() % 100_000),
        "addresses": addresses,
    });
    s.as_object_mut().unwrap().remove("syslog");
    s
}

/// The addresses of a spec's `addresses`, without their prefixes.
fn hosts(addresses: &[&str]) -> Vec<IpAddr> {
    addresses
        .iter()
        .map(|a| a.split('/').next().unwrap().parse().unwrap())
        .collect()
}

/// Polls `probe` every 100 ms until it succeeds (15 s at most: a server may be ready on
/// 127.0.0.1 a moment before it answers everywhere, NSD about a second); otherwise fails with
/// the last error, the namespace's neighbour table and the appliance's logs.
fn eventually(lab: &Lab, r: &Round, what: &str, probe: impl Fn() -> Result<(), String>) {
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        match probe() {
            Ok(()) => return,
            Err(e) if Instant::now() > end => {
                let shown = |program: &str, args: &[&str]| {
                    lab.ns.output(program, args).map_or_else(
                        |e| e.to_string(),
                        |o| String::from_utf8_lossy(&o.stdout).into_owned(),
                    )
                };
                let vms = std::process::Command::new("pgrep")
                    .args(["-a", "-f", "umid="])
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                    .unwrap_or_default();
                panic!(
                    "{}: {what}: {e}\n--- ip neigh:\n{}--- ip link:\n{}--- bridge fdb:\n{}\
                     --- UML processes:\n{vms}\n{}",
                    r.label,
                    shown("ip", &["neigh", "show"]),
                    shown("ip", &["-br", "link", "show"]),
                    shown("bridge", &["fdb", "show", "dynamic"]),
                    lab.appliance_logs(&r.name)
                )
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// `host-launch upgrade SPEC --image IMAGE`; must succeed. Returns its wall time.
fn upgrade(lab: &Lab, spec: &Path, image: &Path) -> Duration {
    let started = Instant::now();
    let out = lab.upgrade(spec, image);
    assert!(
        out.status.success(),
        "upgrade to {}: {}",
        image.display(),
        shown(&out)
    );
    started.elapsed()
}

/// One start of a class example: on which kernel, with which family, its spec file.
struct Round {
    label: String,
    /// `KERNEL-FAMILY`, for the round's own files.
    suffix: String,
    name: String,
    spec: PathBuf,
    addrs: Vec<IpAddr>,
}

/// The spec of every kernel and family, on `first`, each written to the lab's directory with
/// a name of its own; `edit` adapts each (its argument: `KERNEL-FAMILY`).
fn rounds(lab: &Lab, example: &str, first: &Path, edit: impl Fn(&mut Value, &str)) -> Vec<Round> {
    let mut all = Vec::new();
    for (kernel, kpath) in bench_kernels("project,debian") {
        for (family, addresses) in FAMILIES {
            let mut s = spec(lab, example, first, &kpath, addresses);
            let name = format!("{}-{kernel}-{family}", s["name"].as_str().unwrap());
            s["name"] = name.as_str().into();
            let suffix = format!("{kernel}-{family}");
            edit(&mut s, &suffix);
            all.push(Round {
                label: format!("{kernel} kernel, {family}"),
                suffix,
                name,
                spec: lab.write_spec(&s),
                addrs: hosts(addresses),
            });
        }
    }
    all
}

/// `host-launch stop`; the appliance must end cleanly.
fn stop_clean(lab: &Lab, r: &Round) {
    let (code, log) = lab.stop(&r.name);
    assert_eq!(
        code,
        Some(0),
        "{}: {} did not stop cleanly: {log}",
        r.label,
        r.name
    );
}

/// `dig @ADDR www.example.net A`: the example zone's answer.
fn dns_answers(lab: &Lab, at: IpAddr) -> Result<(), String> {
    let out = lab
        .command("dig")
        .args([
            &format!("@{at}"),
            "www.example.net",
            "A",
            "+short",
            "+time=1",
            "+tries=1",
        ])
        .output()
        .map_err(|e| format!("dig: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if text.trim() == "192.0.2.80" {
        Ok(())
    } else {
        Err(format!("dig @{at} www.example.net A: {:?}", text.trim()))
    }
}

#[test]
fn nsd_to_knot_and_back_on_both_kernels_and_every_family() {
    let lab = dual_lab("swap-dns");
    let nsd = lab.image("nsd");
    let knot = lab.image("knot");
    let mut times = Vec::new();
    for r in rounds(&lab, "dns", &nsd, |_, _| {}) {
        lab.start(&r.spec);
        let served = |vendor: &str| {
            for &a in &r.addrs {
                eventually(&lab, &r, &format!("{vendor} on {a}"), || {
                    dns_answers(&lab, a)
                });
            }
        };
        served("NSD");
        let to_knot = upgrade(&lab, &r.spec, &knot);
        served("Knot");
        let to_nsd = upgrade(&lab, &r.spec, &nsd);
        served("NSD again");
        stop_clean(&lab, &r);
        times.push(format!(
            "{}: NSD -> Knot {:.2} s, Knot -> NSD {:.2} s",
            r.label,
            to_knot.as_secs_f64(),
            to_nsd.as_secs_f64()
        ));
    }
    eprintln!("host-launch upgrade, wall time:\n  {}", times.join("\n  "));
}

/// curl `http://ADDR/`: the site's index.
fn web_answers(lab: &Lab, at: IpAddr) -> Result<(), String> {
    let host = match at {
        IpAddr::V4(_) => at.to_string(),
        IpAddr::V6(_) => format!("[{at}]"),
    };
    let out = lab
        .command("curl")
        .args(["-sS", "-g", "--max-time", "2", &format!("http://{host}/")])
        .output()
        .map_err(|e| format!("curl: {e}"))?;
    let body = String::from_utf8_lossy(&out.stdout);
    if body == "<h1>swap site</h1>\n" {
        Ok(())
    } else {
        Err(format!(
            "GET http://{host}/: {body:?} {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

#[test]
fn lighttpd_to_nginx_on_both_kernels_and_every_family() {
    let lab = dual_lab("swap-web");
    let lighttpd = lab.image("web");
    let nginx = lab.image("nginx");
    let content = lab.join("site");
    std::fs::create_dir_all(content.join("www")).unwrap();
    std::fs::write(content.join("www/index.html"), "<h1>swap site</h1>\n").unwrap();
    let disk = lab.join("site.img");
    lab::disk_from_dir(&disk, &content);
    // A data disk belongs to one appliance: each round gets a copy of the site.
    let site = |s: &mut Value, suffix: &str| {
        let copy = lab.join(&format!("site-{suffix}.img"));
        std::fs::copy(&disk, &copy).unwrap();
        s["disks"][0]["file"] = copy.to_str().unwrap().into();
    };
    for r in rounds(&lab, "web", &lighttpd, site) {
        lab.start(&r.spec);
        for (vendor, image) in [("lighttpd", None), ("nginx", Some(&nginx))] {
            if let Some(image) = image {
                upgrade(&lab, &r.spec, image);
            }
            for &a in &r.addrs {
                eventually(&lab, &r, &format!("{vendor} on {a}"), || {
                    web_answers(&lab, a)
                });
            }
        }
        stop_clean(&lab, &r);
        assert_fsck_clean(&lab.join(&format!("site-{}.img", r.suffix)));
    }
}

/// One RFC 5424 message with `tag` over a TCP connection to ADDR:514 (octet counting).
fn syslog_send(lab: &Lab, at: IpAddr, tag: &str) -> Result<(), String> {
    let msg = format!("<134>1 2026-01-01T00:00:00Z swap-client swap - - - {tag} end");
    let to = SocketAddr::new(at, 514);
    lab.ns
        .enter(move || -> Result<(), String> {
            let mut s = std::net::TcpStream::connect_timeout(&to, Duration::from_millis(500))
                .map_err(|e| format!("TCP to {to}: {e}"))?;
            s.write_all(format!("{} {msg}", msg.len()).as_bytes())
                .map_err(|e| format!("TCP to {to}: {e}"))
        })
        .map_err(|e| e.to_string())?
}

#[test]
fn rsyslog_to_syslog_ng_on_both_kernels_and_every_family() {
    let lab = dual_lab("swap-syslog");
    let rsyslog = lab.image("syslog");
    let syslog_ng = lab.image("syslog-ng");
    let disk = |suffix: &str| lab.join(&format!("logs-{suffix}.img"));
    let own_disk = |s: &mut Value, suffix: &str| {
        s["disks"][0]["file"] = disk(suffix).to_str().unwrap().into();
    };
    for r in rounds(&lab, "syslog", &rsyslog, own_disk) {
        lab.start(&r.spec);
        let mut tags = Vec::new();
        for (vendor, image) in [("rsyslog", None), ("syslog-ng", Some(&syslog_ng))] {
            if let Some(image) = image {
                // What the old one accepted reaches the disk before it stops.
                std::thread::sleep(Duration::from_millis(300));
                upgrade(&lab, &r.spec, image);
            }
            for &a in &r.addrs {
                let tag = format!("{vendor}-via-{a}");
                eventually(&lab, &r, &format!("{vendor} on {a}"), || {
                    syslog_send(&lab, a, &tag)
                });
                tags.push(tag);
            }
        }
        std::thread::sleep(Duration::from_millis(300));
        stop_clean(&lab, &r);
        let disk = disk(&r.suffix);
        assert_fsck_clean(&disk);
        let day =
            humantime::format_rfc3339(std::time::SystemTime::now()).to_string()[..10].to_string();
        let text = common::debugfs(&disk, &format!("cat /log/swap-client/{day}.log"));
        for tag in &tags {
            assert!(
                text.lines().any(|l| l.ends_with(&format!("{tag} end"))),
                "{}: {tag} is not on the disk:\n{text}",
                r.label
            );
        }
    }
}
