//! `host-launch update` across a fleet, end to end (root, real UML; ~2 min on 2 shared cores):
//!
//! - six DNS appliances, three on image a1 and three on b1, each answering its image's version
//!   (`version.example.net TXT`) from its own address on one bridge;
//! - `update --image a2 --from <a1's digest>` moves the three a's, one at a time, and leaves the
//!   b's: while it runs, dig at all six never finds two a's down at once nor a b down, and
//!   afterwards the a's answer a2 and the b's b1; the report gives each one's downtime;
//! - a second rollout while one runs is refused (121), and so is an unsigned image under a
//!   "require signed" trust policy (120);
//! - `host-launch outdated`, against a local repository whose security suite has a newer
//!   dnsmasq-base, reports it behind on all six appliances (3); with the archive out of reach
//!   it says so for each (4), never "up to date";
//! - an image that never becomes ready stops the rollout after the first appliance, which is
//!   rolled back (127, it answers a2 again), and the other two are not touched.

mod lab;
mod repo;

use lab::dns::dns_recipe;
use lab::{shown, Lab};
use repo::Repo;
use serde_json::{json, Value};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

const NAMES: [&str; 6] = ["fa1", "fa2", "fa3", "fb1", "fb2", "fb3"];

fn address(i: usize) -> String {
    format!("192.0.2.{}", 60 + i)
}

/// The spec of appliance `i` of the fleet on `image`, with its own data disk and TAP device.
fn spec(lab: &Lab, i: usize, image: &Path) -> PathBuf {
    let disk = lab.data_disk(&format!("{}.img", NAMES[i]));
    let tap = format!("tf{}x{i}", std::process::id() % 100_000);
    lab.spec_at(NAMES[i], image, &disk, &tap, &address(i))
}

/// The version each appliance answers, "" for no answer: one dig per appliance, in parallel,
/// each made by `dig` (a command inside the lab's namespace). Three tries of 1 s: on a
/// loaded 2-core host a running appliance can miss one second (seen once in three runs while
/// another test suite ran), and a stopped one misses all three.
fn dig_round(mut dig: impl FnMut() -> Command) -> Vec<String> {
    let children: Vec<_> = (0..NAMES.len())
        .map(|i| {
            dig()
                .args([&format!("@{}", address(i)), "+short", "+tries=3", "+time=1"])
                .args(["TXT", "version.example.net"])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("dig")
        })
        .collect();
    children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().expect("dig");
            String::from_utf8_lossy(&out.stdout).trim().replace('"', "")
        })
        .collect()
}

fn versions(lab: &Lab) -> Vec<String> {
    dig_round(|| lab.command("dig"))
}

/// Digs all six every 200 ms from a thread in the lab's namespace until `stop`; each round's
/// answers come on the channel.
fn watch(ns: &Path, stop: Arc<AtomicBool>) -> mpsc::Receiver<Vec<String>> {
    let (tx, rx) = mpsc::channel();
    let netns = std::fs::File::open(ns).expect("netns");
    std::thread::spawn(move || {
        // SAFETY: setns on this thread only; the digs it spawns inherit the namespace.
        let rc = unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
        while !stop.load(Ordering::Relaxed) {
            let round = dig_round(|| Command::new("dig"));
            if tx.send(round).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    rx
}

/// `host-launch update ... --json`: the exit code and the report.
fn update(lab: &Lab, args: &[&str]) -> (Option<i32>, Value, String) {
    let mut all = vec!["update", "--json"];
    all.extend_from_slice(args);
    let o = lab.host_launch(&all);
    let report = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    (o.status.code(), report, shown(&o))
}

fn digest_of(lab: &Lab, new: &Path, name: &str) -> String {
    let (code, plan, text) = update(lab, &["--image", new.to_str().unwrap(), "--plan"]);
    assert_eq!(code, Some(0), "{text}");
    let row = plan
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["name"] == name))
        .unwrap_or_else(|| panic!("{name} not in the plan: {text}"));
    row["digest"].as_str().unwrap().to_string()
}

#[test]
fn update_moves_one_image_one_at_a_time_and_stops_at_a_failure() {
    let lab = Lab::new(
        "fleet",
        Some(&format!("brf{}", std::process::id() % 100_000)),
    );
    let a1 = lab.build(&dns_recipe("a1", |_| {}));
    let b1 = lab.build(&dns_recipe("b1", |_| {}));
    let a2 = lab.build(&dns_recipe("a2", |_| {}));
    let unready = lab.build(&dns_recipe("a3", |r| {
        r["manifest"]["service"]["readiness"] = json!({"type": "tcp", "port": 5300});
    }));
    for i in 0..6 {
        lab.start(&spec(&lab, i, if i < 3 { &a1 } else { &b1 }));
    }
    let before = ["a1", "a1", "a1", "b1", "b1", "b1"];
    assert_eq!(versions(&lab), before);
    let from = digest_of(&lab, &a2, "fa1");
    assert_ne!(from, digest_of(&lab, &a2, "fb1"), "two images, two digests");

    // A second rollout while one runs: refused.
    let held = hold_rollout_lock(&lab.state_dir());
    let (code, _, text) = update(&lab, &["--image", a2.to_str().unwrap(), "--from", &from]);
    assert_eq!(code, Some(121), "{text}");
    assert!(text.contains("another rollout is running"), "{text}");
    drop(held);
    assert_eq!(
        versions(&lab),
        before,
        "the refused rollout changed nothing"
    );

    // Under a "require signed" policy an unsigned image is refused before anything stops.
    refused_unsigned(&lab, &a2, &from);
    assert_eq!(
        versions(&lab),
        before,
        "the refused rollout changed nothing"
    );

    // a1 -> a2, watched by dig.
    let stop = Arc::new(AtomicBool::new(false));
    let rounds = watch(&lab.ns.path(), stop.clone());
    let (code, report, text) = update(
        &lab,
        &[
            "--image",
            a2.to_str().unwrap(),
            "--from",
            &from,
            "--settle",
            "3",
        ],
    );
    stop.store(true, Ordering::Relaxed);
    let rounds: Vec<Vec<String>> = rounds.iter().collect();
    assert_eq!(code, Some(0), "{text}");
    check_report(&report, &["fa1", "fa2", "fa3"], "updated", &text);
    assert_eq!(
        versions(&lab),
        ["a2", "a2", "a2", "b1", "b1", "b1"],
        "{text}"
    );
    check_rounds(&rounds);

    check_outdated(&lab);

    // An image that never becomes ready: the canary is rolled back, the rest not touched.
    let from2 = digest_of(&lab, &unready, "fa1");
    let (code, report, text) = update(
        &lab,
        &[
            "--image",
            unready.to_str().unwrap(),
            "--from",
            &from2,
            "--settle",
            "2",
            "--timeout",
            "10",
        ],
    );
    assert_eq!(code, Some(127), "{text}");
    let results: Vec<_> = report["appliances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["result"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        results,
        ["rolled-back", "not-attempted", "not-attempted"],
        "{text}"
    );
    assert_eq!(
        versions(&lab),
        ["a2", "a2", "a2", "b1", "b1", "b1"],
        "{text}"
    );
    assert_eq!(lab.state("fa1")["image"], a2.to_str().unwrap());
}

/// `host-launch outdated --json` with the builder on `sources` and a cache of the lab's own.
fn outdated(lab: &Lab, sources: &Path) -> (Option<i32>, Value, String) {
    let builder = Path::new(env!("CARGO_BIN_EXE_build-image"));
    let path = format!(
        "{}:{}",
        builder.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let o = Command::new(e2e::launch::host_launch_exe())
        .args(["outdated", "--json"])
        .env("HOST_LAUNCH_STATE_DIR", lab.state_dir())
        .env("IMAGE_BUILDER_APT_SOURCES", sources)
        .env("IMAGE_BUILDER_CACHE", lab.join("builder-cache"))
        .env("PATH", path)
        .output()
        .expect("host-launch outdated");
    let v = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    (o.status.code(), v, shown(&o))
}

/// A newer dnsmasq-base in a security suite is behind on every appliance; an archive out of
/// reach is said, per appliance.
fn check_outdated(lab: &Lab) {
    let mut repo = Repo::new(&lab.join("repo"));
    repo.add("bookworm-security", "dnsmasq-base", "99:1.0");
    let (code, rows, text) = outdated(lab, &repo.sources());
    assert_eq!(code, Some(3), "{text}");
    let rows = rows.as_array().unwrap_or_else(|| panic!("{text}"));
    assert_eq!(rows.len(), 6, "{text}");
    for r in rows {
        let behind = r["behind"].as_array().unwrap_or_else(|| panic!("{text}"));
        let d = behind.iter().find(|b| b["package"] == "dnsmasq-base");
        let d = d.unwrap_or_else(|| panic!("{}: dnsmasq-base not behind: {text}", r["name"]));
        assert_eq!(
            (d["candidate"].as_str(), &d["security"]),
            (Some("99:1.0"), &json!(true))
        );
    }
    let (code, rows, text) = outdated(lab, &repo.unreachable());
    assert_eq!(code, Some(4), "{text}");
    for r in rows.as_array().unwrap_or_else(|| panic!("{text}")) {
        assert!(
            r["unknown"]
                .as_str()
                .is_some_and(|u| u.contains("cannot be reached")),
            "{text}"
        );
        assert!(r.get("behind").is_none(), "{text}");
    }
}

/// A trust policy that requires signatures (a key of the test's own): `update` to the
/// unsigned `image` is refused (120) and the policy removed again.
fn refused_unsigned(lab: &Lab, image: &Path, from: &str) {
    let prefix = lab.join("builder");
    let o = Command::new(env!("CARGO_BIN_EXE_build-image"))
        .arg("--new-key")
        .arg(&prefix)
        .output()
        .expect("build-image --new-key");
    assert!(o.status.success(), "{}", shown(&o));
    let policy = json!({"policy": "require", "keys": [lab.join("builder.pub")]});
    std::fs::write(lab.trust_file(), policy.to_string()).unwrap();
    let (code, _, text) = update(lab, &["--image", image.to_str().unwrap(), "--from", from]);
    std::fs::remove_file(lab.trust_file()).unwrap();
    assert_eq!(code, Some(120), "{text}");
    assert!(text.contains("not signed"), "{text}");
}

/// The rollout lock as another `update` would hold it.
fn hold_rollout_lock(state: &Path) -> std::fs::File {
    std::fs::create_dir_all(state).unwrap();
    let f = std::fs::File::create(state.join("update.lock")).unwrap();
    // SAFETY: flock on a descriptor this function owns.
    assert_eq!(unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) }, 0);
    f
}

/// The report lists `names` in order with `result`, each with a downtime.
fn check_report(report: &Value, names: &[&str], result: &str, text: &str) {
    let steps = report["appliances"]
        .as_array()
        .unwrap_or_else(|| panic!("{text}"));
    let got: Vec<_> = steps.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(got, names, "{text}");
    for s in steps {
        assert_eq!(s["result"], result, "{text}");
        let down = s["downtime_s"].as_f64().unwrap_or_else(|| panic!("{text}"));
        assert!(down > 0.0 && down < 60.0, "downtime {down}: {text}");
    }
    eprintln!("{}", serde_json::to_string_pretty(report).unwrap());
}

/// Every round: the b's answer b1, at most one a is silent, and each a goes a1 -> a2 once.
fn check_rounds(rounds: &[Vec<String>]) {
    assert!(rounds.len() >= 5, "only {} dig rounds", rounds.len());
    for r in rounds {
        assert_eq!(
            r[3..],
            ["b1", "b1", "b1"],
            "a b appliance stopped answering: {r:?}"
        );
        let silent = r[..3].iter().filter(|v| v.is_empty()).count();
        assert!(silent <= 1, "two a's down at once: {r:?}");
    }
    for i in 0..3 {
        let seen: Vec<&str> = rounds
            .iter()
            .map(|r| r[i].as_str())
            .filter(|v| !v.is_empty())
            .collect();
        let back = seen.windows(2).any(|w| w[0] == "a2" && w[1] == "a1");
        assert!(!back, "{} went back to a1: {seen:?}", NAMES[i]);
    }
}
