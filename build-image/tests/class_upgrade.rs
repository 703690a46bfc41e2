//! Swapping vendors within a class (root, about 30 s): `examples/dns.json`, a class dns spec
//! carrying a zone, runs on the NSD image; `host-launch upgrade SPEC --image knot.img` moves
//! it to the Knot image, which gives the same answers to every query of a list (all record
//! types, a wildcard, NXDOMAIN and NODATA with their SOA) asked with dig over UDP and TCP;
//! the downtime seen by a TXT query every 10 ms is printed. An upgrade back to NSD works the
//! same way, and one to the (unclassed) dnsmasq image is refused before anything stops.

mod lab;

use lab::dns::{txt_probe, Answer};
use lab::{shown, Lab};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const GUEST: &str = "192.0.2.53";

/// Queries whose answers must not change with the vendor.
const QUERIES: &[(&str, &str)] = &[
    ("example.net", "SOA"),
    ("example.net", "NS"),
    ("example.net", "MX"),
    ("example.net", "TXT"),
    ("www.example.net", "A"),
    ("www.example.net", "AAAA"),
    ("web.example.net", "A"),
    ("_http._tcp.example.net", "SRV"),
    ("x.apps.example.net", "A"),
    ("nope.example.net", "A"),
    ("www.example.net", "MX"),
];

/// The status, flags and answer and authority sections of every query over UDP and TCP,
/// with the NS records of the authority section left out (NSD adds them to positive answers,
/// Knot does not; both are correct).
fn answers(lab: &Lab) -> Vec<String> {
    let mut all = Vec::new();
    for (name, rtype) in QUERIES {
        for tcp in ["+notcp", "+tcp"] {
            let out = lab.run(&[
                "dig",
                &format!("@{GUEST}"),
                name,
                rtype,
                tcp,
                "+norecurse",
                "+noall",
                "+comments",
                "+answer",
                "+authority",
                "+nocookie",
                "+noedns",
                "+time=2",
                "+tries=2",
            ]);
            let kept: Vec<String> = out
                .lines()
                .filter(|l| {
                    let l = l.trim();
                    (l.contains("status:") || (!l.starts_with(';') && !l.is_empty()))
                        && !l
                            .split_whitespace()
                            .nth(3)
                            .is_some_and(|t| t == "NS" && *rtype != "NS")
                })
                .map(|l| {
                    // The id differs from query to query.
                    let l = l.split(", id:").next().unwrap_or(l);
                    l.split_whitespace().collect::<Vec<_>>().join(" ")
                })
                .collect();
            assert!(
                kept.iter().any(|l| l.contains("status:")),
                "{name} {rtype} {tcp}: no answer: {out}"
            );
            all.push(format!("{name} {rtype} {tcp}: {}", kept.join(" | ")));
        }
    }
    all
}

/// The longest time without an answer: between consecutive answers, by arrival.
fn downtime(answers: &[Answer]) -> (Duration, usize) {
    let mut done: Vec<Instant> = answers
        .iter()
        .filter(|a| !a.text.is_empty())
        .map(|a| a.done)
        .collect();
    done.sort();
    let gap = done
        .windows(2)
        .map(|w| w[1].duration_since(w[0]))
        .max()
        .unwrap_or_default();
    let lost = answers.iter().filter(|a| a.text.is_empty()).count();
    (gap, lost)
}

/// `host-launch upgrade SPEC --image IMAGE` while a TXT query goes every 10 ms: the downtime,
/// the unanswered queries and the command's own time.
fn upgrade(lab: &Lab, spec: &std::path::Path, image: &std::path::Path) -> (Duration, usize) {
    let stop = Arc::new(AtomicBool::new(false));
    let rx = txt_probe(
        &lab.ns.path(),
        GUEST,
        "example.net",
        &["v=spf1 -all"],
        Duration::from_millis(10),
        stop.clone(),
    );
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    let out = lab.upgrade(spec, image);
    let took = started.elapsed();
    assert!(out.status.success(), "upgrade: {}", shown(&out));
    // The new image answers for a while before the probe stops.
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let got: Vec<Answer> = rx.iter().collect();
    let (gap, lost) = downtime(&got);
    println!(
        "class upgrade -> {}: downtime {:.3} s, {lost} of {} queries unanswered, upgrade \
         command {:.2} s",
        image.file_name().unwrap_or_default().to_string_lossy(),
        gap.as_secs_f64(),
        got.len(),
        took.as_secs_f64()
    );
    (gap, lost)
}

#[test]
fn an_upgrade_from_nsd_to_knot_serves_the_same_zone() {
    let lab = Lab::new("class-upgrade", None);
    let nsd = lab.image("nsd");
    let knot = lab.image("knot");
    let dnsmasq = lab.image("dns");
    let example = e2e::workspace_root().join("examples/dns.json");
    let mut spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&example).unwrap()).unwrap();
    spec["image"] = nsd.to_str().unwrap().into();
    spec["network"] = lab.network("tclsup", GUEST);
    spec.as_object_mut().unwrap().remove("syslog");
    let path = lab.write_spec(&spec);
    lab.start(&path);
    let on_nsd = answers(&lab);
    assert!(
        on_nsd
            .iter()
            .any(|a| a.contains("www.example.net. 300 IN A 192.0.2.80")),
        "{on_nsd:#?}"
    );
    assert!(
        on_nsd
            .iter()
            .any(|a| a.contains("status: NXDOMAIN") && a.contains("IN SOA ns1.example.net.")),
        "{on_nsd:#?}"
    );

    let (gap, _) = upgrade(&lab, &path, &knot);
    assert!(gap < Duration::from_secs(20), "downtime {gap:?}");
    assert_eq!(lab.state("dns1")["image"], knot.to_str().unwrap());
    assert_eq!(lab.state("dns1")["class"], "dns v1");
    let status = lab.host_launch(&["status", "dns1"]);
    assert!(
        shown(&status).contains("class:    dns v1"),
        "{}",
        shown(&status)
    );
    assert_eq!(answers(&lab), on_nsd, "Knot answers differently from NSD");

    // Across classes: refused, and Knot keeps answering.
    let out = lab.host_launch(&[
        "upgrade",
        path.to_str().unwrap(),
        "--image",
        dnsmasq.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(120), "{}", shown(&out));
    assert!(
        shown(&out)
            .contains("class: the new image is of no class, the running one of class dns v1"),
        "{}",
        shown(&out)
    );
    assert_eq!(answers(&lab), on_nsd);

    // And back to NSD.
    upgrade(&lab, &path, &nsd);
    assert_eq!(
        answers(&lab),
        on_nsd,
        "NSD answers differently after the round trip"
    );
    let (code, log) = lab.stop("dns1");
    assert_eq!(code, Some(0), "{log}");
}
