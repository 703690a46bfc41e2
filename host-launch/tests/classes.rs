//! Appliance classes in host-launch (`appliance::class`, docs/classes/): a spec that lacks its
//! image's class inputs is refused by `check`, `start` and `run` naming what is missing and how
//! to add it, and `upgrade` refuses an image of another class (or a classed image for an
//! unclassed one and back) before it stops anything. No VM boots: every refusal comes first.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const DNS: &str = r#"{"contract_version":1,"class":{"name":"dns","version":1},
    "service":{"argv":["/usr/sbin/nsd"]},
    "ports":[{"port":53,"protocol":"udp"},{"port":53,"protocol":"tcp"}]}"#;
const WEB: &str = r#"{"contract_version":1,"class":{"name":"web","version":1},
    "service":{"argv":["/usr/sbin/lighttpd"]},
    "disks":[{"mount_point":"/data","format_if_blank":true}],"ports":[{"port":80}]}"#;
const NONE: &str = r#"{"contract_version":1,"service":{"argv":["/usr/sbin/dnsmasq"]}}"#;

const ZONE: &str = r#"{"path":"/run/dns/zones/example.net.zone",
    "content":"$ORIGIN example.net.\n@ 3600 IN SOA ns1 hostmaster 1 3600 600 86400 300\n"}"#;

/// A directory with images `NAME.img` (4 KiB of zeros: nothing boots) and their manifests.
fn images(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hl-classes-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (name, manifest) in [("dns", DNS), ("web", WEB), ("none", NONE)] {
        std::fs::write(dir.join(format!("{name}.img")), vec![0u8; 4096]).unwrap();
        std::fs::write(dir.join(format!("{name}.img.manifest.json")), manifest).unwrap();
    }
    dir
}

fn spec(dir: &Path, image: &str, more: &str) -> PathBuf {
    let path = dir.join(format!("spec-{image}.json"));
    std::fs::write(
        &path,
        format!(r#"{{"name":"cls1","image":"{image}.img"{more}}}"#),
    )
    .unwrap();
    path
}

fn host_launch(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_host-launch"))
        .args(args)
        .env("HOST_LAUNCH_STATE_DIR", dir.join("state"))
        .output()
        .unwrap()
}

fn refused(out: &Output, want: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(120), "stderr: {stderr}");
    assert!(stderr.contains(want), "want {want:?} in: {stderr}");
}

#[test]
fn a_spec_without_the_class_inputs_is_refused_by_check_start_and_run() {
    let dir = images("inputs");
    let s = spec(&dir, "dns", "");
    let s = s.to_str().unwrap();
    let want = "spec-dns.json: files: the image is of class dns, which serves the zones it is \
                given, and the spec gives none; add a contract file /run/dns/zones/<zone>.zone";
    for cmd in ["check", "start", "run"] {
        refused(&host_launch(&dir, &[cmd, s]), want);
    }
    assert!(
        !dir.join("state").join("cls1").exists(),
        "state left behind"
    );

    // The same spec with a zone passes `check`, which shows the class.
    let s = spec(&dir, "dns", &format!(r#","files":[{ZONE}]"#));
    let out = host_launch(&dir, &["check", s.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("class:    dns v1 (docs/classes/dns.md)"),
        "{stdout}"
    );

    // A badly named zone file names the field.
    let s = spec(
        &dir,
        "dns",
        r#","files":[{"path":"/run/dns/zones/Example.NET","content":"x"}]"#,
    );
    refused(
        &host_launch(&dir, &["check", s.to_str().unwrap()]),
        "files[0].path: '/run/dns/zones/Example.NET' is in the class's zones directory but is \
         not named <zone>.zone",
    );

    // web: the data disk.
    let s = spec(&dir, "web", "");
    refused(
        &host_launch(&dir, &["start", s.to_str().unwrap()]),
        "disks: the image is of class web, which keeps the document root /data/www on a data \
         disk mounted on /data, and the spec gives none",
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_upgrade_across_classes_is_refused_before_anything_stops() {
    let dir = images("upgrade");
    let zone = format!(r#","files":[{ZONE}]"#);
    let s = spec(&dir, "dns", &zone);
    let s = s.to_str().unwrap();
    let web = dir.join("web.img");
    refused(
        &host_launch(&dir, &["upgrade", s, "--image", web.to_str().unwrap()]),
        "web.img.manifest.json: class: the new image is of class web v1, the running one of \
         class dns v1; an upgrade swaps images of one class only",
    );
    let none = dir.join("none.img");
    refused(
        &host_launch(&dir, &["upgrade", s, "--image", none.to_str().unwrap()]),
        "class: the new image is of no class, the running one of class dns v1",
    );
    // Unclassed to classed: the spec was written for the unclassed image.
    let s = spec(&dir, "none", &zone);
    let dns = dir.join("dns.img");
    refused(
        &host_launch(
            &dir,
            &[
                "upgrade",
                s.to_str().unwrap(),
                "--image",
                dns.to_str().unwrap(),
            ],
        ),
        "class: the new image is of class dns v1, the running one of no class",
    );
    assert!(!dir
        .join("state")
        .join("cls1")
        .join("upgraded.json")
        .exists());
    std::fs::remove_dir_all(&dir).unwrap();
}
