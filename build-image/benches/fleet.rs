//! Fleet updates (root): what `host-launch outdated` and `update --plan` cost for 100
//! appliances, and a rollout across six DNS appliances.
//!
//! 1. 100 state records (each `state.json` naming one of two real DNS images, its lock held by
//!    this process as a running launcher's would be): `host-launch update --plan --json`
//!    (every appliance's image digest, each image hashed once) and `host-launch outdated
//!    --json` (the builder asked once per image, against a local file: repository with a
//!    newer dnsmasq-base, so no network), each timed over `--rounds` (host-launch's release
//!    build; the builder's debug build, which only reads SBOMs and runs apt).
//! 2. Six appliances of one image on one bridge: `host-launch update --image v2 --from v1
//!    --settle S`: the whole rollout's time and each appliance's downtime from its report.
//!
//! ```sh
//! cargo bench -p build-image --bench fleet [-- --rounds 5 --settle 2]
//! ```

#[path = "../tests/lab/mod.rs"]
mod lab;
#[path = "../tests/repo/mod.rs"]
mod repo;

use lab::dns::dns_recipe;
use lab::{shown, Lab};
use repo::Repo;
use serde_json::{json, Value};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `host-launch ARGS` (the release build, as an operator runs it) on the state directory
/// `state`, with the builder on `sources`.
fn host_launch(lab: &Lab, state: &Path, sources: &Path, args: &[&str]) -> std::process::Output {
    // Built once, before any timing (each build is a cargo run).
    static EXES: std::sync::OnceLock<(PathBuf, PathBuf)> = std::sync::OnceLock::new();
    let (exe, builder) = EXES.get_or_init(|| {
        (
            lab::release_host_launch(),
            e2e::build_host("build-image", "build-image"),
        )
    });
    let path = format!(
        "{}:{}",
        builder.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new(exe)
        .args(args)
        .env("HOST_LAUNCH_STATE_DIR", state)
        .env("IMAGE_BUILDER_APT_SOURCES", sources)
        .env("IMAGE_BUILDER_CACHE", lab.join("builder-cache"))
        .env("PATH", path)
        .output()
        .expect("host-launch")
}

/// 100 records of running appliances, alternately on `a` and `b`; the returned files hold
/// their locks.
fn hundred_records(state: &Path, a: &Path, b: &Path) -> Vec<std::fs::File> {
    (0..100)
        .map(|i| {
            let name = format!("app{i}");
            let dir = state.join(&name);
            std::fs::create_dir_all(&dir).unwrap();
            let image = if i % 2 == 0 { a } else { b };
            let st = json!({
                "name": name, "spec": format!("/nonexistent/{name}.json"), "phase": "ready",
                "launcher_pid": std::process::id(), "umid": name, "image": image,
                "started_at_ms": 0, "ready": true,
            });
            std::fs::write(dir.join("state.json"), st.to_string()).unwrap();
            let f = std::fs::File::create(dir.join("lock")).unwrap();
            // SAFETY: flock on a descriptor this function owns; held while the file lives.
            assert_eq!(unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) }, 0);
            f
        })
        .collect()
}

fn time(rounds: u64, mut f: impl FnMut()) -> (f64, f64) {
    let mut t: Vec<f64> = (0..rounds)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    (t[t.len() / 2], t[t.len() - 1])
}

fn check_hundred(lab: &Lab, a: &Path, b: &Path, rounds: u64) {
    let state = lab.join("state-100");
    let _held = hundred_records(&state, a, b);
    let mut repo = Repo::new(&lab.join("repo"));
    repo.add("bookworm-security", "dnsmasq-base", "99:1.0");
    let sources = repo.sources();
    let plan = ["update", "--image", a.to_str().unwrap(), "--plan", "--json"];
    // Untimed: builds the programs, and the images are in the page cache as on a busy host.
    host_launch(lab, &state, &sources, &plan);
    let (med, max) = time(rounds, || {
        let o = host_launch(lab, &state, &sources, &plan);
        assert!(o.status.success(), "{}", shown(&o));
    });
    println!("update --plan, 100 appliances on 2 images: median {med:.3} s, max {max:.3} s");
    let (med, max) = time(rounds, || {
        let o = host_launch(lab, &state, &sources, &["outdated", "--json"]);
        assert_eq!(o.status.code(), Some(3), "{}", shown(&o));
        let rows: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(rows.as_array().map(Vec::len), Some(100));
    });
    println!("outdated, 100 appliances on 2 images: median {med:.3} s, max {max:.3} s");
}

fn rollout_six(lab: &Lab, v1: &Path, v2: &Path, settle: u64) {
    let names: Vec<String> = (0..6).map(|i| format!("fl{i}")).collect();
    for (i, n) in names.iter().enumerate() {
        let disk = lab.data_disk(&format!("{n}.img"));
        let tap = format!("tb{}x{i}", std::process::id() % 100_000);
        lab.start(&lab.spec_at(n, v1, &disk, &tap, &format!("192.0.2.{}", 60 + i)));
    }
    let o = lab.host_launch(&[
        "update",
        "--json",
        "--image",
        v2.to_str().unwrap(),
        "--from",
        v1.to_str().unwrap(),
        "--settle",
        &settle.to_string(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", shown(&o));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    println!(
        "rollout of six (settle {settle} s each): {:.1} s in all",
        r["total_s"].as_f64().unwrap_or(0.0)
    );
    for s in r["appliances"].as_array().unwrap() {
        println!(
            "  {} {}: down {:.2} s",
            s["name"].as_str().unwrap_or(""),
            s["result"].as_str().unwrap_or(""),
            s["downtime_s"].as_f64().unwrap_or(f64::NAN)
        );
    }
}

fn main() {
    let (rounds, settle) = (arg("--rounds", 5), arg("--settle", 2));
    let lab = Lab::new(
        "fleet-bench",
        Some(&format!("brb{}", std::process::id() % 100_000)),
    );
    let v1: PathBuf = lab.build(&dns_recipe("v1", |_| {}));
    let v2: PathBuf = lab.build(&dns_recipe("v2", |_| {}));
    check_hundred(&lab, &v1, &v2, rounds);
    rollout_six(&lab, &v1, &v2, settle);
}
