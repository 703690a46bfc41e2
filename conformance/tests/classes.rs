//! The class suites against real images: both images of class dns (NSD and Knot, built from
//! their recipes by `build-image`) pass the dns battery (`conformance --class IMAGE --json`)
//! with every check; an image whose adapter drops a zone fails exactly on that zone's checks;
//! an unclassed image is refused with the reason. Needs root (network namespace, the VM's
//! jail), dig and kdig (scripts/setup); fails without.

mod common;

use common::assert_every_family;
use common::build::build_appliance;
use e2e::TempDir;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

/// `conformance --class IMAGE --json [--manifest M]` with IMAGE relative to the current
/// directory (the image's), as a newcomer types it: exit code, report, stderr.
fn suite(image: &Path, manifest: Option<&Path>) -> (i32, Value, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_conformance"));
    c.current_dir(image.parent().expect("the image's directory"));
    c.arg("--class")
        .arg(image.file_name().expect("the image's name"))
        .arg("--json");
    if let Some(m) = manifest {
        c.arg("--manifest").arg(m);
    }
    let out = c.output().expect("running the kit");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), report, stderr)
}

fn names(report: &Value, ok: bool) -> BTreeSet<String> {
    report["checks"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|c| c["ok"] == ok)
                .filter_map(|c| c["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Every query of the battery, with both clients over both transports.
fn expected() -> BTreeSet<String> {
    let mut all: BTreeSet<String> = conformance::class::dns::battery()
        .iter()
        .flat_map(|x| {
            ["dig udp", "dig tcp", "kdig udp", "kdig tcp"]
                .map(move |how| format!("{} ({how})", x.what))
        })
        .collect();
    all.insert("ready".into());
    all
}

#[test]
fn both_dns_images_pass_the_dns_suite() {
    let dir = TempDir::new("class-dns").unwrap();
    for name in ["nsd", "knot"] {
        let image = build_appliance(name, dir.path());
        let (code, report, stderr) = suite(&image, None);
        assert_eq!(code, 0, "{name}: {report:#}\n{stderr}");
        let kernel = e2e::kernel_path();
        assert!(
            stderr.contains(&format!(" on the kernel {}", kernel.display())),
            "{name}: the kit does not say which kernel it boots: {stderr}"
        );
        assert_eq!(report["class"], "dns v1", "{name}");
        assert_eq!(names(&report, true), expected(), "{name}: {report:#}");
        assert_every_family(name, &report);
        assert!(names(&report, false).is_empty(), "{name}");
    }
}

#[test]
fn an_image_that_drops_a_zone_fails_on_it_and_an_unclassed_one_is_refused() {
    let dir = TempDir::new("class-dns-bad").unwrap();
    let image = build_appliance("nsd", dir.path());
    // The NSD image with an adapter that configures the first zone only.
    let mut m: Value = serde_json::from_slice(
        &std::fs::read(dir.join("nsd.img.manifest.json")).expect("manifest"),
    )
    .unwrap();
    let script = "c=/var/lib/nsd/one.conf; \
        printf 'server:\\n  username: \"\"\\n  chroot: \"\"\\n  database: \"\"\\n  \
        pidfile: \"/var/lib/nsd/p\"\\n  xfrdfile: \"/var/lib/nsd/x\"\\n  \
        zonelistfile: \"/var/lib/nsd/z\"\\n  zonesdir: /run/dns/zones\\n  rrl-size: 4096\\nremote-control:\\n  \
        control-enable: no\\nzone:\\n  name: suite.example\\n  \
        zonefile: /run/dns/zones/suite.example.zone\\n' >$c; exec /usr/sbin/nsd -d -c $c";
    m["service"]["argv"] = serde_json::json!(["/bin/dash", "-c", script]);
    let one = dir.join("one-zone.manifest.json");
    std::fs::write(&one, m.to_string()).unwrap();
    let (code, report, stderr) = suite(&image, Some(&one));
    assert_eq!(code, 1, "{report:#}\n{stderr}");
    let failed = names(&report, false);
    let want: BTreeSet<String> = ["dig udp", "dig tcp", "kdig udp", "kdig tcp"]
        .map(|how| format!("second zone ({how})"))
        .into_iter()
        .collect();
    assert_eq!(failed, want, "{report:#}");

    // Unclassed: the manifest without its class.
    m.as_object_mut().unwrap().remove("class");
    let none = dir.join("none.manifest.json");
    std::fs::write(&none, m.to_string()).unwrap();
    let (code, _, stderr) = suite(&image, Some(&none));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("the manifest claims no class"), "{stderr}");
}
