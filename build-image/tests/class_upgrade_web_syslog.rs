//! Swapping vendors within a class with `host-launch upgrade SPEC --image OTHER` (root, ~30 s):
//!
//! - web: the example without its data disk is refused by `check` (120, naming it);
//!   `examples/web.json` (only where its image, disk and network are changed) on
//!   lighttpd with a site on its data disk, upgraded to nginx: every page answers the same
//!   (status, Content-Type, bytes) before and after, from the same disk;
//!   an upgrade to the syslog image is refused (120) while lighttpd keeps serving;
//! - syslog: `examples/syslog.json` on rsyslog, upgraded to syslog-ng: messages sent before
//!   and after land in the same per-host, per-day file on the same disk.
//!
//! A client polls the service every 10 ms from the namespace during the upgrade; the
//! downtime (last answer of the old image to the first of the new) is printed, not asserted
//! (figures belong to benchmarks; this one comes free with the test).

mod common;
mod lab;

use lab::classes::{downtime, poll_while, syslog_attempt, web_attempt};
use lab::{assert_fsck_clean, shown, Lab};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// The example spec `examples/<name>.json` with the lab's image, disk and network.
fn example_spec(lab: &Lab, name: &str, image: &Path, disk: &Path, guest: &str) -> Value {
    let path = e2e::workspace_root().join(format!("examples/{name}.json"));
    let mut spec: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    spec["image"] = image.to_str().unwrap().into();
    spec["disks"][0]["file"] = disk.to_str().unwrap().into();
    let tap = format!("tcu{}{}", &name[..1], std::process::id() % 10_000);
    spec["network"] = lab.network(&tap, guest);
    spec
}

/// What curl sees of one path: status, Content-Type and the body's bytes.
fn fetch(lab: &Lab, path: &str) -> String {
    let out = lab
        .command("curl")
        .args([
            "-s",
            "--max-time",
            "5",
            "-D",
            "-",
            &format!("http://192.0.2.80{path}"),
        ])
        .output()
        .expect("curl");
    let raw = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head.lines().next().unwrap_or("").to_string();
    let ty = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("content-type:"))
        .unwrap_or("no content-type")
        .to_string();
    format!("{status} | {ty} | {body}")
}

#[test]
fn lighttpd_to_nginx_serves_the_same_site_from_the_same_disk() {
    let lab = Lab::new("class-web", None);
    let lighttpd = lab.image("web");
    let nginx = lab.image("nginx");
    let content = lab.join("site");
    std::fs::create_dir_all(content.join("www/docs")).unwrap();
    let files: [(&str, &str); 5] = [
        ("www/index.html", "<h1>class site</h1>\n"),
        ("www/style.css", "body { color: black }\n"),
        ("www/data.json", "{\"a\": 1}\n"),
        ("www/docs/index.html", "<p>docs</p>\n"),
        ("www/notes.txt", "same bytes, either vendor\n"),
    ];
    for (p, t) in files {
        std::fs::write(content.join(p), t).unwrap();
    }
    let disk = lab.join("site.img");
    lab::disk_from_dir(&disk, &content);
    // The class example without its data disk is refused, naming what is missing.
    let mut bare = example_spec(&lab, "web", &lighttpd, &disk, "192.0.2.80");
    bare.as_object_mut().unwrap().remove("disks");
    bare["name"] = "web-bare".into();
    let o = lab.host_launch(&["check", lab.write_spec(&bare).to_str().unwrap()]);
    let text = shown(&o);
    assert_eq!(o.status.code(), Some(120), "{text}");
    assert!(
        text.contains("disks") && text.contains("/data/www"),
        "{text}"
    );
    let spec = lab.write_spec(&example_spec(&lab, "web", &lighttpd, &disk, "192.0.2.80"));
    lab.start(&spec);
    let paths = [
        "/",
        "/style.css",
        "/data.json",
        "/docs/",
        "/notes.txt",
        "/missing",
    ];
    let before: Vec<String> = paths.iter().map(|p| fetch(&lab, p)).collect();
    assert!(before[0].starts_with("HTTP/1.1 200"), "{before:?}");
    // Another class's image is refused before anything stops, naming both classes.
    let collector = lab.image("syslog");
    let o = lab.host_launch(&[
        "upgrade",
        spec.to_str().unwrap(),
        "--image",
        collector.to_str().unwrap(),
    ]);
    let text = shown(&o);
    assert_eq!(o.status.code(), Some(120), "{text}");
    assert!(text.contains("syslog") && text.contains("web"), "{text}");
    assert_eq!(fetch(&lab, "/"), before[0], "still lighttpd, still serving");
    let (out, attempts) = poll_while(&lab, web_attempt, || {
        lab.host_launch(&[
            "upgrade",
            spec.to_str().unwrap(),
            "--image",
            nginx.to_str().unwrap(),
        ])
    });
    assert!(out.status.success(), "upgrade: {}", shown(&out));
    let after: Vec<String> = paths.iter().map(|p| fetch(&lab, p)).collect();
    for ((p, b), a) in paths.iter().zip(&before).zip(&after) {
        if *p == "/missing" {
            // The 404 page's text is the vendor's own; the status is the class's.
            assert!(
                b.starts_with("HTTP/1.1 404") && a.starts_with("HTTP/1.1 404"),
                "{b} / {a}"
            );
        } else {
            assert_eq!(a, b, "{p} before (lighttpd) and after (nginx)");
        }
    }
    assert!(fetch(&lab, "/").contains("<h1>class site</h1>"));
    assert_eq!(lab.state("web1")["image"], nginx.to_str().unwrap());
    let down = downtime(&attempts).expect("the poller saw the old image, a gap, then the new");
    eprintln!(
        "web lighttpd -> nginx: downtime {:.3} s (last 200 of lighttpd to first 200 of nginx, \
         GET / every 10 ms, {} attempts)",
        down.as_secs_f64(),
        attempts.len()
    );
    let (code, log) = lab.stop("web1");
    assert_eq!(code, Some(0), "{log}");
    assert_fsck_clean(&disk);
}

#[test]
fn rsyslog_to_syslog_ng_keeps_writing_the_same_files() {
    let lab = Lab::new("class-syslog", None);
    let rsyslog = lab.image("syslog");
    let syslog_ng = lab.image("syslog-ng");
    let disk = lab.join("logs.img");
    let spec = lab.write_spec(&example_spec(&lab, "syslog", &rsyslog, &disk, "192.0.2.14"));
    lab.start(&spec);
    let (out, attempts) = poll_while(&lab, syslog_attempt, || {
        std::thread::sleep(Duration::from_millis(300));
        lab.host_launch(&[
            "upgrade",
            spec.to_str().unwrap(),
            "--image",
            syslog_ng.to_str().unwrap(),
        ])
    });
    assert!(out.status.success(), "upgrade: {}", shown(&out));
    assert_eq!(lab.state("logs1")["image"], syslog_ng.to_str().unwrap());
    let down = downtime(&attempts).expect("the poller saw the old image, a gap, then the new");
    // The collector has the messages in hand when the connection is accepted; let the last
    // ones reach the disk before stopping.
    std::thread::sleep(Duration::from_millis(500));
    let (code, log) = lab.stop("logs1");
    assert_eq!(code, Some(0), "{log}");
    assert_fsck_clean(&disk);
    let day = humantime::format_rfc3339(std::time::SystemTime::now()).to_string()[..10].to_string();
    let text = common::debugfs(&disk, &format!("cat /log/swap-client/{day}.log"));
    let stored: std::collections::BTreeSet<u64> = text
        .lines()
        .filter_map(|l| l.split(" seq ").nth(1)?.strip_suffix(" end")?.parse().ok())
        .collect();
    let sent: Vec<u64> = attempts
        .iter()
        .enumerate()
        .filter(|(_, (_, ok))| *ok)
        .map(|(i, _)| i as u64)
        .collect();
    let first_gap = attempts.iter().position(|(_, ok)| !ok).unwrap_or(0) as u64;
    // Sent to rsyslog well before the stop, and sent to syslog-ng: all of them on the disk,
    // in one file whatever the vendor.
    let old: Vec<u64> = sent
        .iter()
        .copied()
        .filter(|n| *n + 5 < first_gap)
        .collect();
    let last_gap = attempts.iter().rposition(|(_, ok)| !ok).unwrap_or(0) as u64;
    let new: Vec<u64> = sent.iter().copied().filter(|n| *n > last_gap).collect();
    assert!(!old.is_empty() && !new.is_empty(), "{attempts:?}");
    let missing: Vec<u64> = old
        .iter()
        .chain(&new)
        .copied()
        .filter(|n| !stored.contains(n))
        .collect();
    assert!(missing.is_empty(), "not on the disk: {missing:?}\n{text}");
    let lost = sent.iter().filter(|n| !stored.contains(n)).count();
    eprintln!(
        "syslog rsyslog -> syslog-ng: downtime {:.3} s (last accepted TCP message to rsyslog to \
         the first to syslog-ng, one every 10 ms); {} accepted, {} stored, {lost} accepted \
         but lost around the swap",
        down.as_secs_f64(),
        sent.len(),
        stored.len()
    );
}
