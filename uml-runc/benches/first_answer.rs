//! `podman run` → the DNS appliance's first answer, three ways in the same run, rounds
//! alternating: podman with uml-runc (the appliance as a VM), `host-launch start` of the same
//! image (the ext4 root the image builder wrote) on podman's bridge, and podman with runc (the
//! same OCI image as a plain container, for reference). A query every 5 ms from one UDP
//! socket in the lab's namespace (e2e::dns::first_answer). Prints median, min and max.
//!
//! `cargo bench -p uml-runc --bench first_answer [-- --rounds 10]` (root; podman, runc).

#[path = "../tests/lab/mod.rs"]
mod lab;

use lab::{shown, Lab};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const GUEST: &str = "192.0.2.53";
const PERIOD: Duration = Duration::from_millis(5);
const GIVE_UP: Duration = Duration::from_secs(60);

/// Times one start: the clock runs from spawning `start` to the first answer.
fn timed(lab: &Lab, mut start: Command) -> Result<Duration, String> {
    let prober = e2e::dns::first_answer(
        &lab.ns.path(),
        GUEST,
        "www.example.net",
        [192, 0, 2, 80],
        PERIOD,
        GIVE_UP,
    )
    .map_err(|e| format!("the prober: {e}"))?;
    let t = Instant::now();
    let child = start
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting: {e}"))?;
    let answered = prober.join().unwrap_or(Ok(None));
    let out = child
        .wait_with_output()
        .map_err(|e| format!("waiting for the start: {e}"))?;
    if !out.status.success() {
        return Err(format!("the start failed: {}", shown(&out)));
    }
    let answered = answered
        .map_err(|e| format!("the prober: {e}"))?
        .ok_or_else(|| format!("no answer within {GIVE_UP:?}"))?;
    Ok(answered.saturating_duration_since(t))
}

fn podman_run(lab: &Lab, runtime: &Path, conf: &Path, extra: &[&str]) -> Command {
    let volume = format!("{}:/run/dnsmasq.conf:ro", conf.display());
    let mut args = vec![
        "run",
        "-d",
        "--name",
        "bench-dns",
        "--network",
        lab.network(),
        "--ip",
        GUEST,
        "-v",
        &volume,
    ];
    args.extend_from_slice(extra);
    args.push("localhost/dns:latest");
    lab.podman_with(runtime, &args)
}

fn podman_rm(lab: &Lab, runtime: &Path) -> Result<(), String> {
    let out = lab
        .podman_with(runtime, &["rm", "-f", "-t", "10", "bench-dns"])
        .output()
        .map_err(|e| format!("podman rm: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("podman rm: {}", shown(&out)))
    }
}

/// host-launch's spec of the same appliance: the example's, on podman's bridge.
fn host_launch_spec(lab: &Lab) -> PathBuf {
    let out = lab.podman_ok(&[
        "network",
        "inspect",
        lab.network(),
        "--format",
        "{{.NetworkInterface}}",
    ]);
    let bridge = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let example = e2e::workspace_root().join(lab::DNSMASQ_SPEC);
    let mut spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(example).expect(lab::DNSMASQ_SPEC)).expect("JSON");
    spec["name"] = "bench-hl".into();
    spec["image"] = lab.join("dns.img").display().to_string().into();
    spec["network"]["netns"] = lab.ns.name().into();
    spec["network"]["bridge"] = bridge.into();
    spec["network"]["tap"] = "tap-bench".into();
    if let Some(o) = spec.as_object_mut() {
        o.remove("syslog");
    }
    let p = lab.join("bench-hl.json");
    std::fs::write(&p, spec.to_string()).expect("the spec");
    p
}

fn host_launch(lab: &Lab, exe: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(exe);
    c.args(args)
        .env("HOST_LAUNCH_STATE_DIR", lab.join("host-launch"))
        .env("HOST_LAUNCH_CACHE_DIR", lab.join("hl-cache"));
    c
}

fn stats(name: &str, mut v: Vec<Duration>) {
    v.sort();
    if v.is_empty() {
        println!("{name:<34} no successful round");
        return;
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name:<34} median {:>7.0} ms   min {:>7.0} ms   max {:>7.0} ms   ({} rounds)",
        ms(v[v.len() / 2]),
        ms(v[0]),
        ms(v[v.len() - 1]),
        v.len()
    );
}

/// runc sets the container's rlimits itself, and without CAP_SYS_RESOURCE here it may not
/// raise them: podman's defaults (and even this process's own hard limits) fail with EPERM,
/// 1024 works. The DNS server needs far fewer.
const RUNC_ULIMITS: [&str; 2] = ["--ulimit=nofile=1024:1024", "--ulimit=nproc=1024:1024"];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rounds = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(10usize);
    let lab = Lab::new("urunc-bench");
    lab.load_dns_image();
    let conf = lab.dnsmasq_conf();
    let spec = host_launch_spec(&lab);
    let hl = e2e::build_host("host-launch", "host-launch");
    let runc = PathBuf::from("/usr/sbin/runc");
    assert!(runc.is_file(), "runc is missing: scripts/setup installs it");
    let (mut vm, mut launched, mut plain) = (Vec::new(), Vec::new(), Vec::new());
    let report = |what: &str, r: Result<Duration, String>, into: &mut Vec<Duration>| match r {
        Ok(d) => into.push(d),
        Err(e) => eprintln!("{what}: {e}"),
    };
    for i in 0..rounds {
        let r = timed(&lab, podman_run(&lab, &lab.wrapper, &conf, &[]));
        report("podman run --runtime uml-runc", r, &mut vm);
        if let Err(e) = podman_rm(&lab, &lab.wrapper) {
            eprintln!("{e}");
        }
        let spec_s = spec.to_str().unwrap_or_default();
        let r = timed(&lab, host_launch(&lab, &hl, &["start", spec_s]));
        report("host-launch start", r, &mut launched);
        let _ = host_launch(&lab, &hl, &["stop", "bench-hl"]).output();
        let r = timed(&lab, podman_run(&lab, &runc, &conf, &RUNC_ULIMITS));
        report("podman run --runtime runc", r, &mut plain);
        if let Err(e) = podman_rm(&lab, &runc) {
            eprintln!("{e}");
        }
        eprintln!("round {} of {rounds} done", i + 1);
    }
    println!("start → first DNS answer (a query every 5 ms), {rounds} rounds alternating:");
    stats("podman run --runtime uml-runc", vm);
    stats("host-launch start", launched);
    stats("podman run --runtime runc", plain);
}
