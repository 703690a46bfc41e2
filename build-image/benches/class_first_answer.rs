//! Time from `host-launch start` to the first answer of each image of the web and syslog
//! classes, the two vendors of a class side by side (root): each image's class example spec
//! (`examples/web.json`, `examples/syslog.json`, with the lab's disk and network) on a TAP
//! device in a network namespace; the clock starts when `host-launch start SPEC` is started
//! (the release build, as an operator runs it), and from then a client in the namespace tries
//! every 5 ms until it is answered: web `GET /` answered 200 with the site's page, syslog a
//! message over TCP (octet counting) accepted on 514. Then the appliance is stopped; rounds
//! alternate images so both see the same load. Prints the median and the worst per image,
//! and each image's size (file and blocks in use).
//!
//! ```sh
//! cargo bench -p build-image --bench class_first_answer [-- --rounds 10]
//! ```

#[path = "../tests/lab/mod.rs"]
mod lab;

use lab::classes::{first_success, syslog_attempt, web_attempt};
use lab::{release_host_launch, shown, Lab};
use serde_json::Value;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PERIOD: Duration = Duration::from_millis(5);
const GIVE_UP: Duration = Duration::from_secs(30);

fn rounds() -> usize {
    let mut it = std::env::args().skip(1);
    let mut n = 10;
    while let Some(x) = it.next() {
        if x == "--rounds" {
            n = it.next().and_then(|v| v.parse().ok()).expect("--rounds N");
        }
    }
    n
}

/// One image of a class under its class's example spec.
struct Case {
    image: String,
    name: String,
    spec: PathBuf,
    attempt: fn(u64) -> bool,
    times: Vec<Duration>,
    failures: usize,
}

fn spec(lab: &Lab, example: &str, image: &Path, disk: &Path, guest: &str, tap: &str) -> PathBuf {
    let path = e2e::workspace_root().join(format!("examples/{example}.json"));
    let mut s: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    s["image"] = image.to_str().unwrap().into();
    s["disks"][0]["file"] = disk.to_str().unwrap().into();
    s["network"] = lab.network(tap, guest);
    s.as_object_mut().unwrap().remove("syslog");
    let name = image.file_stem().unwrap().to_str().unwrap();
    let written = lab.write_spec(&s);
    let out = lab.join(&format!("{example}-{name}.json"));
    std::fs::rename(written, &out).unwrap();
    out
}

/// Start, try until answered, stop: the time from the start to the first answer.
fn round(lab: &Lab, exe: &Path, c: &Case) -> Result<Duration, String> {
    let t = Instant::now();
    let mut start = Command::new(exe)
        .arg("start")
        .arg(&c.spec)
        .env("HOST_LAUNCH_STATE_DIR", lab.state_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("host-launch start: {e}"))?;
    let answered = first_success(lab, c.attempt, PERIOD, GIVE_UP);
    let started = start.wait().map_err(|e| e.to_string())?;
    let o = lab.host_launch(&["stop", &c.name, "--timeout", "30"]);
    if !started.success() {
        return Err(format!("host-launch start: {started}"));
    }
    if !o.status.success() {
        return Err(format!("stop: {}", shown(&o)));
    }
    let at = answered.ok_or_else(|| format!("no answer within {GIVE_UP:?}"))?;
    Ok(at.saturating_duration_since(t))
}

fn main() {
    let n = rounds();
    let lab = Lab::new("class-first", None);
    let site = lab.join("site");
    std::fs::create_dir_all(site.join("www")).unwrap();
    std::fs::write(site.join("www/index.html"), "<h1>class site</h1>\n").unwrap();
    let mut cases = Vec::new();
    for (example, images, guest) in [
        ("web", ["web", "nginx"], "192.0.2.80"),
        ("syslog", ["syslog", "syslog-ng"], "192.0.2.14"),
    ] {
        for image in images {
            let built = lab.image(image);
            let disk = lab.join(&format!("{image}-data.img"));
            if example == "web" {
                lab::disk_from_dir(&disk, &site);
            }
            let tap = format!("tcf{}", std::process::id() % 100_000);
            let spec = spec(&lab, example, &built, &disk, guest, &tap);
            let name = if example == "web" { "web1" } else { "logs1" };
            cases.push(Case {
                image: image.to_string(),
                name: name.to_string(),
                spec,
                attempt: if example == "web" {
                    web_attempt
                } else {
                    syslog_attempt
                },
                times: Vec::new(),
                failures: 0,
            });
            let m = std::fs::metadata(&built).unwrap();
            println!(
                "class {example}: {image}: image {:.1} MiB, {:.1} MiB in use",
                m.len() as f64 / 1048576.0,
                (m.blocks() * 512) as f64 / 1048576.0
            );
        }
    }
    let exe = release_host_launch();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("class first answer: load average before: {}", load.trim());
    for i in 0..n {
        for c in &mut cases {
            match round(&lab, &exe, c) {
                Ok(d) => {
                    eprintln!(
                        "{}: round {}/{n}: first answer after {} ms",
                        c.image,
                        i + 1,
                        d.as_millis()
                    );
                    c.times.push(d);
                }
                Err(e) => {
                    eprintln!("{}: round {}/{n}: FAILED: {e}", c.image, i + 1);
                    c.failures += 1;
                }
            }
        }
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("class first answer: load average after: {}", load.trim());
    let mut failures = 0;
    for c in &mut cases {
        c.times.sort();
        failures += c.failures;
        let ms = |d: Option<&Duration>| d.map_or(0, |d| d.as_millis());
        println!(
            "{}: host-launch start -> first answer over {} rounds: median {} ms, worst {} ms, {} failed",
            c.image,
            c.times.len(),
            ms(c.times.get(c.times.len() / 2)),
            ms(c.times.last()),
            c.failures
        );
    }
    assert_eq!(failures, 0, "rounds failed");
}
