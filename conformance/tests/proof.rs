//! Proof that the kit discriminates: the three appliance images and the two of class dns, built from their recipes by
//! the image builder's own command (`build-image RECIPE -o IMAGE`), pass with no MUST failing;
//! an image whose init is guest-init but which lacks the /etc/resolv.conf and /etc/hosts links
//! into /run fails, and exactly on the requirements about them.
//!
//! Runs the kit's command (`conformance IMAGE --json`) as an outside builder would. Needs
//! root (network namespace, the VM's jail) and busybox-static and e2fsprogs; fails without.

#[path = "common/build.rs"]
mod build;

use build::build_appliance;
use e2e::{RootFs, TempDir};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

/// Runs the kit on an image; (exit code, its JSON report).
fn kit(image: &Path, extra: &[&str]) -> (i32, Value) {
    let probe = e2e::build_static("conformance-probe", "conformance-probe")
        .unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new(env!("CARGO_BIN_EXE_conformance"))
        .arg(image)
        .arg("--json")
        .arg("--probe")
        .arg(probe)
        .args(extra)
        .output()
        .expect("running the kit");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "the kit's --json output: {e}\nstdout {}\nstderr {stderr}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    (out.status.code().unwrap_or(-1), report)
}

/// The IDs whose status is `status`.
fn with_status(report: &Value, status: &str) -> BTreeSet<String> {
    report["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter(|r| r["status"] == status)
        .map(|r| r["id"].as_str().unwrap_or("").to_string())
        .collect()
}

#[track_caller]
fn assert_conforms(name: &str, extra: &[&str]) {
    let dir = TempDir::new(&format!("proof-{name}")).unwrap();
    let image = build_appliance(name, dir.path());
    let (code, report) = kit(&image, extra);
    let failed = with_status(&report, "fail");
    assert!(failed.is_empty(), "{name}: failed {failed:?}\n{report:#}");
    assert_eq!(code, 0, "{name}: {report:#}");
    // Every requirement that can be checked from outside was, for the images with a disk.
    let skipped = with_status(&report, "skipped");
    // (The DNS images have no data disk: the disk requirements are skipped.)
    if !["dns", "nsd", "knot"].contains(&name) {
        assert!(skipped.is_empty(), "{name}: skipped {skipped:?}");
    }
    let passed = with_status(&report, "pass");
    assert!(passed.len() >= 55, "{name}: only {} passed", passed.len());
    // The recipes declare contract version 3: its resource limits and OOM score are checked,
    // not skipped.
    assert!(passed.contains("C-RLIMIT-1"), "{name}: {report:#}");
    assert!(passed.contains("C-OOM-1"), "{name}: {report:#}");
}

#[test]
fn the_dns_appliance_conforms() {
    let spec = e2e::workspace_root().join("build-image/tests/lab/dnsmasq.json");
    assert_conforms("dns", &["--spec-files", spec.to_str().unwrap()]);
}

#[test]
fn the_class_dns_images_conform() {
    // Their class input, the example zone, as the spec's files.
    let spec = e2e::workspace_root().join("examples/dns.json");
    for name in ["nsd", "knot"] {
        assert_conforms(name, &["--spec-files", spec.to_str().unwrap()]);
    }
}

#[test]
fn the_web_appliance_conforms() {
    assert_conforms("web", &[]);
}

#[test]
fn the_syslog_appliance_conforms() {
    assert_conforms("syslog", &[]);
}

/// guest-init writes /run/resolv.conf and /run/hosts, but an image without the links to them
/// leaves its service with no resolver settings: the kit names both requirements, from
/// outside (the image's files) and from inside (what the probe read), and nothing else.
#[test]
fn an_image_without_the_resolver_links_fails_on_them() {
    let dir = TempDir::new("proof-bad").unwrap();
    let image = dir.join("bad.img");
    RootFs::new()
        .busybox(&["sleep"])
        .dir("/data", 0o755)
        .build(&image)
        .unwrap();
    let manifest = r#"{"contract_version": 1, "name": "no-resolver-links",
        "service": {"argv": ["/bin/sleep", "3600"], "stop_timeout_ms": 2000},
        "disks": [{"mount_point": "/data"}]}"#;
    std::fs::write(dir.join("bad.img.manifest.json"), manifest).unwrap();
    let (code, report) = kit(&image, &[]);
    assert_eq!(code, 1, "a MUST failed: exit 1\n{report:#}");
    let failed = with_status(&report, "fail");
    for id in ["C-IMG-4", "C-IMG-5", "C-DNS-1", "C-DNS-2"] {
        assert!(
            failed.contains(id),
            "{id} not named: failed {failed:?}\n{report:#}"
        );
    }
    // What the resolver files are read for at the service's start fails the order check too;
    // nothing unrelated fails.
    let allowed: BTreeSet<String> = ["C-IMG-4", "C-IMG-5", "C-DNS-1", "C-DNS-2", "C-ORDER-1"]
        .map(String::from)
        .into();
    assert!(
        failed.is_subset(&allowed),
        "unrelated failures: {:?}",
        failed.difference(&allowed).collect::<Vec<_>>()
    );
    let must: BTreeSet<String> = report["must_failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(must, failed, "every failure here is a MUST");
    assert!(
        with_status(&report, "pass").contains("C-STOP-1"),
        "the rest still conforms"
    );
}

/// A third-party init (a busybox shell script) that reports `ready` at once, before anything
/// listens, configures nothing and powers off a second later whatever it was asked: the
/// kit names readiness and the fatal path among what it breaks.
#[test]
fn an_init_that_reports_ready_before_the_service_listens_fails() {
    let dir = TempDir::new("proof-early").unwrap();
    let image = dir.join("early.img");
    let init = "#!/bin/sh\n\
        # Not conforming: ready before anything listens, nothing configured, power-off after 1 s.\n\
        mount -t proc proc /proc\n\
        mount -t devtmpfs dev /dev\n\
        echo '{\"event\":\"ready\",\"ts_us\":1,\"boot_us\":1,\"init_us\":1}' > /dev/tty1\n\
        sleep 1\n\
        echo '{\"event\":\"power_off\",\"ts_us\":2,\"boot_us\":2,\"init_us\":2,\"reason\":\"requested\",\"signal\":\"none\"}' > /dev/tty1\n\
        poweroff -f\n";
    let script = dir.join("init.sh");
    std::fs::write(&script, init).unwrap();
    RootFs::new()
        .init(&script)
        .busybox(&["sh", "mount", "sleep", "poweroff"])
        .resolver_links()
        .dir("/data", 0o755)
        .build(&image)
        .unwrap();
    let manifest = r#"{"contract_version": 1, "name": "early-ready",
        "service": {"argv": ["/bin/sleep", "3600"], "readiness": {"type": "tcp", "port": 80}},
        "disks": [{"mount_point": "/data"}]}"#;
    std::fs::write(dir.join("early.img.manifest.json"), manifest).unwrap();
    let (code, report) = kit(&image, &[]);
    assert_eq!(code, 1, "a MUST failed: exit 1\n{report:#}");
    let failed = with_status(&report, "fail");
    for id in ["C-RDY-1", "C-FATAL-1", "C-WIRE-4"] {
        assert!(
            failed.contains(id),
            "{id} not named: failed {failed:?}\n{report:#}"
        );
    }
}
