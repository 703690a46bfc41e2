//! `host-launch upgrade` with the DNS appliance on a data disk, end to end (root, ~40 s):
//!
//! - v1 → v2 (two images from modified copies of `recipes/dns.json` that answer
//!   `version.example.net TXT` with their version): the appliance answers with v2 afterwards,
//!   from the same data disk (the disk's `/hosts`, written before the upgrade, still answers),
//!   `status` shows the new image, and a later stop/start of the same spec boots v2 again;
//! - an image that expects other data disks is refused before anything stops (120);
//! - an image whose service exits at once (restart never) and an image that never becomes
//!   ready (readiness on a port nobody listens on) are rolled back: exit status 127, the
//!   previous image answers again with the same data, the failed run's console is kept;
//! - the upgrade hands the TAP device over: the new image runs on the same device (its
//!   ifindex unchanged, the marker consumed), and the last stop removes it;
//! - after all of it the data disk is clean under `e2fsck -fn` and holds the data.

mod lab;

use lab::dns::{dns_recipe, DATA_ADDRESS, DATA_NAME};
use lab::{assert_fsck_clean, shown, Lab};
use serde_json::json;
use std::process::Command;

#[test]
fn upgrade_keeps_the_data_and_rolls_back_images_that_fail() {
    let lab = Lab::new("upgrade", None);
    let v1 = lab.build(&dns_recipe("v1", |_| {}));
    let v2 = lab.build(&dns_recipe("v2", |_| {}));
    let broken = lab.build(&dns_recipe("broken", |r| {
        r["manifest"]["service"]["argv"] = json!(["/usr/sbin/dnsmasq", "--no-such-option"]);
        r["manifest"]["service"]["restart"] = json!({"policy": "never"});
    }));
    let never_ready = lab.build(&dns_recipe("unready", |r| {
        r["manifest"]["service"]["readiness"] = json!({"type": "tcp", "port": 5300});
    }));
    let other_disks = lab.build(&dns_recipe("srv", |r| {
        r["manifest"]["disks"] = json!([{"mount_point": "/srv", "format_if_blank": false}]);
    }));
    let disk = lab.data_disk("data.img");
    let tap = format!("tup{}", std::process::id() % 100_000);
    let spec = lab.spec("updns", &v1, &disk, &tap);
    let spec_s = spec.to_str().unwrap();
    let ok = |args: &[&str]| {
        let o = lab.host_launch(args);
        assert!(o.status.success(), "host-launch {args:?}: {}", shown(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };

    // The TAP device's index in the namespace ("N: name: ..."), empty when it is not there.
    let ifindex = || {
        let o = Command::new("ip")
            .args(["-n", lab.ns.name(), "-o", "link", "show", "dev", &tap])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        text.split(':').next().unwrap_or("").trim().to_string()
    };

    ok(&["start", spec_s, "--wait-ready", "60"]);
    assert_eq!(lab.version(), "v1");
    assert_eq!(lab.dig(DATA_NAME, "A"), DATA_ADDRESS);
    let before = ifindex();
    assert!(!before.is_empty(), "no TAP device {tap}");

    // v1 -> v2, on the same TAP device (handed over, not removed and made again).
    let out = ok(&["upgrade", spec_s, "--image", v2.to_str().unwrap()]);
    assert!(out.contains("the new image is ready"), "{out}");
    assert_eq!(ifindex(), before, "the TAP device was made again: {out}");
    assert!(
        !lab.state_dir().join("updns/tap-handover").exists(),
        "the hand-over marker was left"
    );
    assert_eq!(lab.version(), "v2", "{out}");
    assert_eq!(
        lab.dig(DATA_NAME, "A"),
        DATA_ADDRESS,
        "the data disk after the upgrade"
    );
    let status = ok(&["status", "updns"]);
    assert!(
        status.contains(&format!("image:    {}", v2.display())),
        "{status}"
    );
    assert_eq!(lab.state("updns")["image"], v2.to_str().unwrap());

    // Other data disks: refused before anything stops.
    let o = lab.host_launch(&["upgrade", spec_s, "--image", other_disks.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(120), "{}", shown(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("disks:"),
        "{}",
        shown(&o)
    );
    assert_eq!(lab.version(), "v2");

    // A service that exits at once: rolled back to v2.
    let o = lab.host_launch(&["upgrade", spec_s, "--image", broken.to_str().unwrap()]);
    let text = shown(&o);
    assert_eq!(o.status.code(), Some(127), "{text}");
    assert!(
        text.contains("FAILED: the VM ended before it was ready"),
        "{text}"
    );
    assert!(text.contains("rolled back: the old image"), "{text}");
    assert_eq!(lab.version(), "v2", "{text}");
    assert_eq!(lab.dig(DATA_NAME, "A"), DATA_ADDRESS);
    assert_eq!(lab.state("updns")["image"], v2.to_str().unwrap());
    let failed = std::fs::read_to_string(lab.state_dir().join("updns/upgrade-failed.console.log"))
        .unwrap_or_default();
    assert!(failed.contains("bad command line options"), "{failed}");

    // A service that never becomes ready: rolled back after the timeout.
    let o = lab.host_launch(&[
        "upgrade",
        spec_s,
        "--image",
        never_ready.to_str().unwrap(),
        "--timeout",
        "6",
    ]);
    let text = shown(&o);
    assert_eq!(o.status.code(), Some(127), "{text}");
    assert!(text.contains("not ready within 6 s"), "{text}");
    assert_eq!(lab.version(), "v2", "{text}");

    // The upgrade outlives a restart: the same spec (still naming v1) boots v2.
    ok(&["stop", "updns"]);
    assert_fsck_clean(&disk);
    ok(&["start", spec_s, "--wait-ready", "60"]);
    assert_eq!(lab.version(), "v2");
    assert_eq!(lab.dig(DATA_NAME, "A"), DATA_ADDRESS);
    ok(&["stop", "updns"]);
    assert!(!lab.ns.has_link(&tap), "the last stop left the TAP device");

    assert_fsck_clean(&disk);
    let hosts = Command::new("debugfs")
        .args(["-R", "cat /hosts"])
        .arg(&disk)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&hosts.stdout),
        format!("{DATA_ADDRESS} {DATA_NAME}\n")
    );
}
