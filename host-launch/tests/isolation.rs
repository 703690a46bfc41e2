//! What a hostile guest can make the host hold, and who may read an appliance's state, with
//! real host-launch runs:
//!
//! - a guest root service floods the console and the status channel (with over-long lines and
//!   with valid events) for 20 s: the launcher's memory and the files on the host stay under
//!   their caps, `status` shows what was dropped, the neighbour appliance keeps answering, and
//!   the hostile VM still stops cleanly; the figures and OOM kills it forges (naming the
//!   neighbour) land clamped in its own metrics only, never in the neighbour's;
//! - the state directory, its files and the config device are unreadable to another host
//!   user, and a contract secret is on no command line.
//!
//! Needs root; fails, rather than skips, without it.

mod common;

use common::{host_launch, http_get, launch, Appliance};
use e2e::RootFs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const FLOOD: &str = r#"
[ -e /dev/tty1 ] && s=/dev/tty1 || { mknod /dev/st c 4 1; s=/dev/st; }
long=$(head -c 100000 /dev/zero | tr '\0' x)
( while :; do echo "$long" > $s; echo '{"event":"ready","ts_us":1,"boot_us":1,"init_us":1}' > $s; done ) &
( while :; do echo "flood flood flood flood flood flood flood flood flood flood flood" > /dev/console; done ) &
( while :; do
  echo '{"event":"figures","ts_us":1,"boot_us":1,"init_us":1,"mem_total_kb":18446744073709551615,"mem_available_kb":18446744073709551615,"load1":1e308,"uptime_s":-5,"appliance":"neighbour"}' > $s
  echo '{"event":"exited","ts_us":1,"boot_us":1,"init_us":1,"pid":2,"status":"killed","signal":9,"oom":true,"appliance":"neighbour"}' > $s
  sleep 1
done ) &
exec httpd -f -p 8080 -h /www
"#;

/// A busybox image whose service is guest root with every capability, running the contract
/// file `/run/flood.sh` from the spec.
fn hostile_image(dir: &Path) -> PathBuf {
    let image = dir.join("hostile.img");
    let applets = ["sh", "mknod", "head", "tr", "httpd", "sleep"];
    RootFs::new()
        .busybox(&applets)
        .bytes("/www/index.html", b"hostile\n".to_vec(), 0o644)
        .dir("/data", 0o755)
        .build(&image)
        .expect("root image");
    std::fs::set_permissions(&image, std::fs::Permissions::from_mode(0o644)).unwrap();
    let caps = contract::names::CAPABILITIES;
    let manifest = serde_json::json!({
        "contract_version": 1, "name": "hostile",
        "service": {"argv": ["/bin/sh", "/run/flood.sh"], "uid": 0, "gid": 0,
                    "capabilities": caps, "readiness": {"type": "tcp", "port": 8080},
                    "stop_timeout_ms": 3000},
        "disks": [{"mount_point": "/data"}],
    });
    std::fs::write(dir.join("hostile.img.manifest.json"), manifest.to_string()).unwrap();
    image
}

/// The spec's console cap: smaller than the default, so the override is what is tested.
const CONSOLE_CAP: u64 = 256 * 1024;

fn spec_with_files(path: &Path, files: serde_json::Value) {
    let mut spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    spec["files"] = files;
    spec["limits"] = serde_json::json!({"console_log_bytes": CONSOLE_CAP});
    std::fs::write(path, spec.to_string()).unwrap();
}

fn vm_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

fn size(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// Reads `path` as user nobody (65534): whether it worked.
fn readable_by_nobody(path: &Path) -> bool {
    let mut cmd = Command::new("cat");
    cmd.arg(path);
    e2e::host::as_uid(&mut cmd, 65534);
    cmd.output().is_ok_and(|o| o.status.success())
}

#[test]
fn a_flooding_guest_is_bounded_and_its_state_is_private() {
    common::require_root_and_busybox();
    let dir = common::temp_dir("flood");
    let state = dir.join("state");
    let ns = common::netns(true);
    let good_image = common::build_image(dir.path(), "neighbour\n");
    let bad_image = hostile_image(dir.path());
    let mut specs = Vec::new();
    for (name, image, address) in [
        ("neighbour", &good_image, "192.0.2.20"),
        ("hostile", &bad_image, "192.0.2.21"),
    ] {
        let data = dir.join(format!("{name}-data.img"));
        common::data_disk(&data);
        let spec = Appliance {
            name: name.to_string(),
            memory_mib: 64,
            image: image.clone(),
            data,
            tap: common::tap_name(&name[..1]),
            netns: ns.name().to_string(),
            bridge: true,
            address: address.to_string(),
        }
        .write_spec(dir.path());
        specs.push(spec);
    }
    let secret = "contract-secret-71c0f3";
    spec_with_files(
        &specs[1],
        serde_json::json!([
            {"path": "/run/flood.sh", "content": FLOOD, "mode": "0755"},
            {"path": "/run/token", "content": secret, "mode": "0600"}
        ]),
    );
    let mut neighbour = launch(&specs[0], "neighbour", &state);
    neighbour.wait_ready(Duration::from_secs(60)).unwrap();
    let mut hostile = launch(&specs[1], "hostile", &state);
    hostile.wait_ready(Duration::from_secs(60)).unwrap();
    let launcher = hostile.child.id();
    let uml = hostile.uml_pid();
    let vm_dir = state.join("hostile");

    // 20 s of flood: bounded memory and files, the neighbour answering.
    let start_rss = vm_rss_kib(launcher);
    let mut peak_rss = start_rss;
    let mut peak_files = 0;
    let until = Instant::now() + Duration::from_secs(20);
    let caps = [
        ("console.log", CONSOLE_CAP),
        ("console.log.1", CONSOLE_CAP),
        ("events.jsonl", vmm::channel::DEFAULT_EVENTS_CAP),
        ("events.jsonl.1", vmm::channel::DEFAULT_EVENTS_CAP),
    ];
    while Instant::now() < until {
        peak_rss = peak_rss.max(vm_rss_kib(launcher));
        for (f, cap) in caps {
            let s = size(&vm_dir.join(f));
            peak_files = peak_files.max(s);
            assert!(s <= cap, "{f} is {s} bytes, over its cap {cap}");
        }
        let body = http_get(&ns, "192.0.2.20:8080").expect("the neighbour stopped answering");
        assert!(body.contains("neighbour"), "{body}");
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!(
        "launcher RSS {start_rss} → at most {peak_rss} KiB; largest log file {peak_files} bytes"
    );
    assert!(
        peak_rss < start_rss + 16 * 1024,
        "the launcher grew from {start_rss} to {peak_rss} KiB under the flood"
    );
    assert!(
        size(&vm_dir.join("console.log.1")) > 0,
        "the console was not flooded enough to rotate: the test would prove nothing"
    );
    let status = host_launch(&state, &["status", "hostile"])
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&status.stdout).into_owned();
    eprintln!("{status}");
    assert!(status.contains("dropped:"), "{status}");
    let st = hostile.state_json();
    assert!(
        st["dropped"]["console_bytes"].as_u64().unwrap_or(0) > 0,
        "the console never rotated past its cap twice: {st}"
    );
    assert!(
        st["dropped"]["status_lines"].as_u64().unwrap_or(0) > 0,
        "no over-long status line was counted: {st}"
    );

    forged_metrics_stay_the_hostiles(&state);

    // Private state, and the secret on no command line.
    let meta = std::fs::metadata(&vm_dir).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o700);
    for f in [
        "state.json",
        "events.jsonl",
        "console.log",
        "config.img",
        "lock",
    ] {
        let p = vm_dir.join(f);
        let m = std::fs::metadata(&p).unwrap().mode() & 0o777;
        assert_eq!(m & 0o077, 0, "{f} is mode {m:o}");
        assert!(
            !readable_by_nobody(&p),
            "another user reads {}",
            p.display()
        );
    }
    let config = std::fs::metadata(vm_dir.join("config.img")).unwrap();
    assert_eq!(
        config.uid(),
        st["uid"].as_u64().unwrap() as u32,
        "the config device is the VM's"
    );
    for pid in [uml, launcher] {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        assert!(
            !String::from_utf8_lossy(&cmdline).contains(secret),
            "the contract secret is on the command line of {pid}"
        );
    }
    // The VM runs as its own uid, not root and not the neighbour's.
    let uml_uid = std::fs::metadata(format!("/proc/{uml}")).unwrap().uid();
    assert_ne!(uml_uid, 0);
    assert_ne!(
        uml_uid,
        std::fs::metadata(format!("/proc/{}", neighbour.uml_pid()))
            .unwrap()
            .uid()
    );

    let (code, all) = hostile.stop();
    assert_eq!(
        code,
        Some(0),
        "the flooding VM did not stop cleanly:\n{all}"
    );
    let (code, all) = neighbour.stop();
    assert_eq!(code, Some(0), "{all}");
}

/// The value of `metric` for `appliance` in `host-launch metrics`' text.
fn metric(text: &str, metric: &str, appliance: &str) -> Option<f64> {
    let label = format!("appliance=\"{appliance}\"");
    text.lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")) && l.contains(&label))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

/// The hostile guest's forged `figures` and OOM `exited` lines (which name the neighbour in
/// a field of their own) count in its own series only, clamped; every series is one of the
/// two appliances'.
fn forged_metrics_stay_the_hostiles(state: &Path) {
    let out = host_launch(state, &["metrics"]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        assert!(
            l.contains("appliance=\"neighbour\"") || l.contains("appliance=\"hostile\""),
            "a series of no appliance: {l}"
        );
    }
    let oom = |a| metric(&text, "appliance_service_oom_kills_total", a);
    assert!(
        oom("hostile").is_some_and(|n| n > 0.0),
        "no forged OOM kill reached the host: the test would prove nothing\n{text}"
    );
    assert_eq!(oom("neighbour"), Some(0.0), "{text}");
    let total = |a| metric(&text, "appliance_guest_memory_total_bytes", a);
    // The neighbour's own figure: its 64 MiB, not the hostile's forged 16 EiB.
    assert!(
        total("neighbour").is_some_and(|b| b <= 64.0 * 1048576.0),
        "{text}"
    );
    // The hostile's, forged or not, within the clamp (1 TiB, a load of 1e6, no negative
    // uptime).
    assert!(
        total("hostile").is_some_and(|b| b <= 1024.0 * 1073741824.0),
        "{text}"
    );
    let load = metric(&text, "appliance_guest_load1", "hostile");
    assert!(load.is_some_and(|l| (0.0..=1e6).contains(&l)), "{text}");
    let up = metric(&text, "appliance_guest_uptime_seconds", "hostile");
    assert!(up.is_none_or(|u| u >= 0.0), "{text}");
}

/// A data disk that another VM's uid owns belongs to that appliance: the launch is refused,
/// naming the disk, and `status` says it was refused and why (not that a launcher died).
#[test]
fn a_disk_of_another_vm_is_refused_and_status_says_so() {
    common::require_root_and_busybox();
    let dir = common::temp_dir("owned");
    let state = dir.join("state");
    let image = common::build_image(dir.path(), "x\n");
    let data = dir.join("data.img");
    common::data_disk(&data);
    let (range, _) = vmm::ids::configured_range().unwrap();
    let ours = vmm::ids::pick("owned", range, vmm::ids::host_account_exists).unwrap();
    let other = if ours == range.start + 5 {
        range.start + 6
    } else {
        range.start + 5
    };
    std::os::unix::fs::chown(&data, Some(other), Some(other)).unwrap();
    let spec = dir.join("owned.json");
    let text = serde_json::json!({"name": "owned", "image": image, "disks": [{"file": data}]});
    std::fs::write(&spec, text.to_string()).unwrap();
    let out = host_launch(&state, &["start", spec.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(host_launch::exit::BUSY), "{err}");
    assert!(
        err.contains("disks[0].file") && err.contains(&other.to_string()),
        "{err}"
    );
    assert_eq!(
        std::fs::metadata(&data).unwrap().uid(),
        other,
        "the disk was taken over"
    );
    let status = host_launch(&state, &["status", "owned"]).output().unwrap();
    let status = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(status.contains("refused before boot"), "{status}");
    assert!(!status.contains("died"), "{status}");
}
