//! Downtime of `host-launch upgrade` with the DNS appliance (root): the appliance runs v1 on a
//! data disk; from inside its network namespace one UDP socket of the benchmark's sends a TXT
//! query for version.example.net to 192.0.2.53 every 10 ms (each on its own id, so a query
//! lost while the appliance is down does not hold up the next ones; no `dig` processes, whose
//! start-ups took CPU from the boot being measured); then `host-launch upgrade` moves it to
//! v2 (and the next round back to v1). The downtime is the time between the last answer of
//! the old image and the first answer of the new one (when the answers arrived), with a
//! resolution of the 10 ms period. Both kernels side by side, one after the other in one run
//! (the project's and Debian's; `--kernels` picks).
//!
//! The timed `upgrade` is host-launch's release build, as an operator runs it; `--versus
//! HOST_LAUNCH` alternates another build with it round by round (a change's before and after
//! under the same load; each build's rounds summed up on their own). The builds take turns
//! in pairs of rounds and only the second of a pair counts: in it the launcher that stops was
//! started by the same build, which matters for what a stopping launcher leaves its successor
//! (the TAP hand-over). `--host-launch HOST_LAUNCH` times another build in place of this
//! tree's.
//!
//! ```sh
//! cargo bench -p build-image --bench upgrade [-- --rounds 5 --period-ms 10 \
//!     --kernels project,debian --versus /tmp/host-launch.before --host-launch PATH]
//! ```

#[path = "../tests/lab/mod.rs"]
mod lab;

use lab::dns::{dns_recipe, txt_probe, Answer, GUEST};
use lab::{bench_kernels, release_host_launch, shown, Lab};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Args {
    rounds: usize,
    period: Duration,
    kernels: String,
    /// Another host-launch whose upgrades alternate with this tree's.
    versus: Option<PathBuf>,
    /// A host-launch to time instead of this tree's release build.
    host_launch: Option<PathBuf>,
}

fn args() -> Args {
    let mut a = Args {
        rounds: 5,
        period: Duration::from_millis(10),
        kernels: "project,debian".into(),
        versus: None,
        host_launch: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        match x.as_str() {
            "--rounds" => a.rounds = it.next().and_then(|v| v.parse().ok()).expect("--rounds N"),
            "--period-ms" => {
                a.period = Duration::from_millis(
                    it.next()
                        .and_then(|v| v.parse().ok())
                        .expect("--period-ms N"),
                )
            }
            "--kernels" => a.kernels = it.next().expect("--kernels project,debian"),
            "--versus" => a.versus = Some(it.next().expect("--versus HOST_LAUNCH").into()),
            "--host-launch" => {
                a.host_launch = Some(it.next().expect("--host-launch HOST_LAUNCH").into())
            }
            _ => {} // cargo passes --bench
        }
    }
    a
}

struct Round {
    from: String,
    to: String,
    downtime: Duration,
    command: Duration,
    /// Which host-launch ran it (0: this tree's release build, 1: `--versus`).
    build: usize,
    lost: usize,
    queries: usize,
}

fn main() {
    let a = args();
    let kernels = bench_kernels(&a.kernels);
    let lab = Lab::new("bench", None);
    let v1 = lab.build(&dns_recipe("v1", |_| {}));
    let v2 = lab.build(&dns_recipe("v2", |_| {}));
    let mut builds = vec![a.host_launch.clone().unwrap_or_else(release_host_launch)];
    builds.extend(a.versus.clone());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("upgrade: load average before: {}", load.trim());
    for (label, kernel) in &kernels {
        bench(&lab, &a, &builds, label, kernel, &v1, &v2);
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("upgrade: load average after: {}", load.trim());
}

/// `host-launch ARGS` of the build `exe` in the lab (its state directory and trust policy).
fn host_launch(lab: &Lab, exe: &Path, args: &[&str]) -> Output {
    Command::new(exe)
        .args(args)
        .env("HOST_LAUNCH_STATE_DIR", lab.state_dir())
        .env("HOST_LAUNCH_TRUST", lab.trust_file())
        .output()
        .expect("running host-launch")
}

/// The rounds on one kernel, with a data disk of its own; round `i` upgrades with
/// `builds[(i / 2) % builds.len()]` when there are two (the first of each pair not counted),
/// else with the one.
fn bench(
    lab: &Lab,
    a: &Args,
    builds: &[PathBuf],
    label: &str,
    kernel: &Path,
    v1: &Path,
    v2: &Path,
) {
    let v1 = &v1.to_path_buf();
    let v2 = &v2.to_path_buf();
    // A kernel given as a path (`--kernels project,/tmp/linux`) names files and an appliance:
    // its label with anything but letters and digits made a dash, at most 20 characters.
    let tag: String = label
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(20)
        .collect();
    let disk = lab.data_disk(&format!("data-{tag}.img"));
    let tap = format!("tub{}", std::process::id() % 100_000);
    // A name per kernel: the first kernel's last upgrade left its image pinned for its name.
    let name = format!("bdns-{tag}");
    let spec = lab.spec(&name, v1, &disk, &tap);
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&spec).unwrap()).unwrap();
    v["kernel"] = kernel.to_str().unwrap().into();
    let spec = lab.write_spec(&v);
    let spec_s = spec.to_str().unwrap();
    let o = lab.host_launch(&["start", spec_s, "--wait-ready", "60"]);
    assert!(o.status.success(), "start: {}", shown(&o));
    let mut rounds = Vec::new();
    for i in 0..a.rounds {
        let (from, to, image) = if i % 2 == 0 {
            ("v1", "v2", v2)
        } else {
            ("v2", "v1", v1)
        };
        assert_eq!(lab.version(), from, "round {i}: before the upgrade");
        let stop = Arc::new(AtomicBool::new(false));
        let rx = txt_probe(
            &lab.ns.path(),
            GUEST,
            "version.example.net",
            &["v1", "v2"],
            a.period,
            stop.clone(),
        );
        std::thread::sleep(Duration::from_millis(500));
        let build = (i / 2) % builds.len();
        let counted = builds.len() == 1 || i % 2 == 1;
        let t = Instant::now();
        let o = host_launch(
            lab,
            &builds[build],
            &["upgrade", spec_s, "--image", image.to_str().unwrap()],
        );
        let command = t.elapsed();
        assert!(o.status.success(), "round {i}: upgrade: {}", shown(&o));
        // The command's own split: the graceful stop, and the new image's boot to `ready`.
        let said =
            String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
        for l in said
            .lines()
            .filter(|l| l.contains("stopped the old") || l.contains("is ready after"))
        {
            println!("kernel {label}: round {}: {}", i + 1, l.trim());
        }
        std::thread::sleep(Duration::from_millis(500));
        stop.store(true, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(1500)); // the last queries time out
        let mut answers: Vec<Answer> = rx.try_iter().collect();
        answers.sort_by_key(|x| x.sent);
        let last_old = answers
            .iter()
            .filter(|x| x.text == from)
            .map(|x| x.done)
            .max()
            .expect("answers from the old image");
        let first_new = answers
            .iter()
            .filter(|x| x.text == to)
            .map(|x| x.done)
            .min()
            .expect("answers from the new image");
        let lost = answers.iter().filter(|x| x.text.is_empty()).count();
        let r = Round {
            from: from.into(),
            to: to.into(),
            downtime: first_new.saturating_duration_since(last_old),
            command,
            build,
            lost,
            queries: answers.len(),
        };
        println!(
            "kernel {label}{}: round {}: {} -> {}: downtime {:.3} s (last answer of {} to first answer of {}), \
             upgrade command {:.2} s, {} of {} queries unanswered",
            match (build, counted) {
                (_, false) => " (the build changed: not counted)",
                (1, true) => " (versus)",
                _ => "",
            },
            i + 1,
            r.from,
            r.to,
            r.downtime.as_secs_f64(),
            r.from,
            r.to,
            r.command.as_secs_f64(),
            r.lost,
            r.queries
        );
        if counted {
            rounds.push(r);
        }
    }
    let o = lab.host_launch(&["stop", &name]);
    assert!(o.status.success(), "stop: {}", shown(&o));
    lab::assert_fsck_clean(&disk);
    for build in 0..builds.len() {
        summary(
            &rounds
                .iter()
                .filter(|r| r.build == build)
                .collect::<Vec<_>>(),
            &format!("{label}{}", if build == 1 { " (versus)" } else { "" }),
            a.period,
        );
    }
}

/// One build's rounds: the downtime's median, min and max, the command's median.
fn summary(rounds: &[&Round], label: &str, period: Duration) {
    if rounds.is_empty() {
        return;
    }
    let mut d: Vec<f64> = rounds.iter().map(|r| r.downtime.as_secs_f64()).collect();
    d.sort_by(|x, y| x.partial_cmp(y).unwrap());
    let mut c: Vec<f64> = rounds.iter().map(|r| r.command.as_secs_f64()).collect();
    c.sort_by(|x, y| x.partial_cmp(y).unwrap());
    println!(
        "kernel {label}: upgrade downtime over {} rounds (a query every {} ms): median {:.3} s, min {:.3} s, max \
         {:.3} s; upgrade command median {:.2} s",
        d.len(),
        period.as_millis(),
        d[d.len() / 2],
        d[0],
        d[d.len() - 1],
        c[c.len() / 2]
    );
}
