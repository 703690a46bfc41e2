//! The class suites (`conformance --class IMAGE`) against every image of each class, built
//! from their recipes by `build-image` as an outside builder would: lighttpd and nginx pass
//! the web suite, rsyslog and syslog-ng the syslog suite. And the suites discriminate: a
//! lighttpd without the class's MIME table fails exactly on the cases that check a Content-Type (WEB-MIME, WEB-INDEX, WEB-HEAD), an rsyslog that keeps
//! the old single-file layout on the layout and line cases. Prints each image's size and the
//! time from its boot to ready beside the other of its class.
//!
//! Needs root (network namespace, the VM's jail), curl, e2fsprogs; fails without.

mod common;

use common::assert_every_family;
use common::build::{build, build_appliance, recipe_path};
use e2e::TempDir;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `conformance --class IMAGE --json`: (exit code, report).
fn suite(image: &Path) -> (i32, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_conformance"))
        .arg(image)
        .args(["--class", "--json"])
        .output()
        .expect("running the kit");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "--class --json: {e}\nstdout {}\nstderr {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), report)
}

fn failed(report: &Value) -> BTreeSet<String> {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| c["name"].as_str().unwrap_or("").to_string())
        .collect()
}

/// Both images of a class pass its suite; their figures side by side.
fn class_passes(class: &str, images: [&str; 2]) {
    let dir = TempDir::new(&format!("class-{class}")).unwrap();
    let mut figures = Vec::new();
    for name in images {
        let image = build_appliance(name, dir.path());
        let (code, report) = suite(&image);
        assert_eq!(report["class"], format!("{class} v1"), "{report:#}");
        assert!(failed(&report).is_empty(), "{name}: {report:#}");
        assert_eq!(code, 0, "{name}: {report:#}");
        assert_every_family(name, &report);
        let checks = report["checks"].as_array().cloned().unwrap_or_default();
        assert!(checks.len() >= 15, "{name}: only {} checks", checks.len());
        let ready = checks
            .iter()
            .find(|c| c["name"].as_str().is_some_and(|n| n.ends_with("-READY")))
            .and_then(|c| c["detail"].as_str())
            .unwrap_or("no READY check")
            .to_string();
        let used = std::fs::metadata(&image).map(|m| {
            use std::os::unix::fs::MetadataExt;
            m.blocks() * 512
        });
        figures.push(format!(
            "{name}: image {:.1} MiB in use, {ready}",
            used.unwrap_or(0) as f64 / (1 << 20) as f64,
        ));
    }
    eprintln!("class {class}:\n  {}", figures.join("\n  "));
}

#[test]
fn lighttpd_and_nginx_pass_the_web_suite() {
    class_passes("web", ["web", "nginx"]);
}

#[test]
fn rsyslog_and_syslog_ng_pass_the_syslog_suite() {
    class_passes("syslog", ["syslog", "syslog-ng"]);
}

/// A copy of a checked-in recipe whose only file gets `edit` applied.
fn broken(dir: &Path, name: &str, edit: impl Fn(&str) -> String) -> PathBuf {
    let text = std::fs::read(recipe_path(name)).unwrap();
    let mut r: Value = serde_json::from_slice(&text).unwrap();
    let conf = r["files"][0]["content"].as_str().unwrap().to_string();
    let changed = edit(&conf);
    assert_ne!(changed, conf, "the edit changed nothing");
    r["files"][0]["content"] = changed.into();
    // The copy lives elsewhere: its other files' sources (start scripts) by absolute path.
    let recipes = recipe_path(name).parent().unwrap().to_path_buf();
    for f in r["files"].as_array_mut().unwrap() {
        if let Some(src) = f["source"].as_str() {
            f["source"] = recipes.join(src).to_string_lossy().into_owned().into();
        }
    }
    let path = dir.join(format!("{name}-broken.json"));
    std::fs::write(&path, serde_json::to_vec_pretty(&r).unwrap()).unwrap();
    let image = dir.join(format!("{name}-broken.img"));
    build(&path, name, &image);
    image
}

#[test]
fn a_lighttpd_without_the_mime_table_fails_on_content_types_only() {
    let dir = TempDir::new("class-web-bad").unwrap();
    let image = broken(dir.path(), "web", |conf| {
        let start = conf.find("mimetype.assign").unwrap();
        let end = start + conf[start..].find("\n)\n").unwrap() + 3;
        format!("{}{}", &conf[..start], &conf[end..])
    });
    let (code, report) = suite(&image);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(
        failed(&report),
        BTreeSet::from([
            "WEB-MIME".to_string(),
            "WEB-INDEX".to_string(),
            "WEB-HEAD".to_string()
        ]),
        "{report:#}"
    );
}

#[test]
fn an_rsyslog_with_another_layout_fails_on_the_layout() {
    let dir = TempDir::new("class-syslog-bad").unwrap();
    let image = broken(dir.path(), "syslog", |conf| {
        conf.replace(
            "constant(value=\"/data/log/\") property(name=\"$.host\") constant(value=\"/\")",
            "constant(value=\"/data/log/all-\")",
        )
    });
    let (code, report) = suite(&image);
    assert_eq!(code, 1, "{report:#}");
    let f = failed(&report);
    assert!(f.contains("SYSLOG-LAYOUT"), "{report:#}");
    assert!(
        !f.contains("SYSLOG-PORTS") && !f.contains("SYSLOG-STOP"),
        "{report:#}"
    );
}
