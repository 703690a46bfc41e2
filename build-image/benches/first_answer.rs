//! Time from `host-launch start` to the DNS appliance's first answer (root), for both
//! kernels side by side (the project's and Debian's; `--kernels` picks): the checked-in DNS
//! image at 32 MiB on a TAP device in a network namespace; the clock starts when
//! `host-launch start SPEC` is started, and from then one UDP socket of the benchmark's, in
//! the namespace, sends an A query for www.example.net to 192.0.2.53 every 5 ms until an
//! answer 192.0.2.80 comes; then the appliance is stopped, and that N times per kernel
//! (alternating kernels round by round, so both see the same load). Prints the median and
//! the worst, and of the guest's share (the `ready` event's `boot_us`: guest kernel start to
//! dnsmasq listening); then the host memory of the idle appliance (PSS and RSS of all of the
//! VM's host processes, and what the host holds of its memory file, 3 s after it became
//! ready, and with `--settle 30` again at 30 s: free page reporting gives memory back in the
//! seconds after boot). The timed `start` is host-launch's release build, as an operator
//! runs it.
//!
//! Where each round's time went (the timeline, medians over the rounds, each step's share of
//! the first answer): the host's `start` to the launcher's first state (the spec loaded and
//! checked twice, by `start` and by the launcher it runs, the appliance locked; the state's
//! `started_at_ms`, in whole milliseconds) and on to the guest kernel's first instant (uid,
//! TAP, nft, disks, jail, exec of UML), `kernel` (to guest-init's start), guest-init to its
//! `contract_loaded`, `network_up` and `service_started` events, the service to `ready` (its
//! readiness probe) and `ready` to the first answer. It is read from the status channel's
//! events alone (and rounds over 1.5 times the median are listed with their slow steps: where a
//! stall sits): each carries the guest's wall clock (`ts_us`, UML's clock is the host's),
//! `boot_us` and `init_us`, so the host's clock at `start` places them on one line.
//!
//! Then the host's own steps, from the launcher's `host_steps` (state.json: `start`'s exec,
//! the launcher's `main`, spec, lock, uid, TAP, nft, disks, jail, UML's exec, and on to the
//! guest kernel's first instant), each one's median and worst; a build that does not record
//! them (`--versus` an older one) shows none.
//!
//! `--images dns,nsd,knot` measures each of these recipes' images side by side (default the
//! dnsmasq image `dns`): the images of class dns get the example zone (examples/dns.json) as
//! their class input, the dnsmasq image its records; each runs at least at its manifest's
//! `min_memory_mib`; each image's size (file and blocks in use) is printed too.
//!
//! `--versus HOST_LAUNCH` times another build of host-launch beside this tree's, round by
//! round on the same specs (its cases are labelled `(versus)`): a change's before and after
//! under the same load.
//!
//! ```sh
//! cargo bench -p build-image --bench first_answer [-- --rounds 20 --memory-mib 32 \
//!     --kernels project,debian --images dns,nsd,knot --versus /tmp/host-launch.before \
//!     --settle 30]
//! ```

#[path = "../tests/lab/mod.rs"]
mod lab;

use lab::dns::{first_answer, GUEST};
use lab::{bench_kernels, release_host_launch, shown, Lab};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const NAME: &str = "fdns";
const PERIOD: Duration = Duration::from_millis(5);
/// A round that has no answer by then failed.
const GIVE_UP: Duration = Duration::from_secs(30);

struct Args {
    rounds: usize,
    memory_mib: u32,
    kernels: String,
    images: String,
    /// Another host-launch to time beside this tree's, round by round (A/B of a change).
    versus: Option<PathBuf>,
    /// A second idle-memory sample this many seconds after ready (`--settle S`).
    settle: Option<u64>,
}

fn args() -> Args {
    let mut a = Args {
        rounds: 20,
        memory_mib: 32,
        kernels: "project,debian".into(),
        images: "dns".into(),
        versus: None,
        settle: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        match x.as_str() {
            "--rounds" => a.rounds = it.next().and_then(|v| v.parse().ok()).expect("--rounds N"),
            "--memory-mib" => {
                a.memory_mib = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--memory-mib N")
            }
            "--kernels" => a.kernels = it.next().expect("--kernels project,debian"),
            "--images" => a.images = it.next().expect("--images dns,nsd,knot"),
            "--versus" => a.versus = Some(it.next().expect("--versus HOST_LAUNCH").into()),
            "--settle" => {
                a.settle = Some(
                    it.next()
                        .and_then(|v| v.parse().ok())
                        .expect("--settle SECONDS"),
                )
            }
            _ => {} // cargo passes --bench
        }
    }
    a
}

/// The appliance's events (each a JSON object), as the launcher recorded them.
fn events(lab: &Lab) -> Vec<serde_json::Value> {
    std::fs::read_to_string(lab.state_dir().join(NAME).join("events.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The steps of the timeline, in order; each ends at the instant its name says.
const STEPS: [&str; 8] = [
    "host: start -> launcher's state",
    "host: -> guest kernel",
    "kernel (-> guest-init)",
    "guest-init -> contract_loaded",
    "-> network_up",
    "-> service_started",
    "service -> ready",
    "ready -> first answer",
];

/// Each step's length, from the host's wall clock at `start` (`t0_us`), when the launcher
/// wrote its first state (`launcher_us`: its spec loaded and checked, the appliance locked),
/// the events and the first answer's wall clock: `None` when an event is missing (another
/// init's image).
fn timeline(
    t0_us: u64,
    launcher_us: u64,
    answer_us: u64,
    events: &[serde_json::Value],
) -> Option<Vec<Duration>> {
    let at = |name: &str| {
        events
            .iter()
            .find(|e| e["event"] == name)
            .and_then(|e| e["ts_us"].as_u64())
    };
    let ready = events.iter().find(|e| e["event"] == "ready")?;
    let ts = ready["ts_us"].as_u64()?;
    let kernel = ts.checked_sub(ready["boot_us"].as_u64()?)?;
    let init = ts.checked_sub(ready["init_us"].as_u64()?)?;
    let marks = [
        t0_us,
        launcher_us,
        kernel,
        init,
        at("contract_loaded")?,
        at("network_up")?,
        at("service_started")?,
        ts,
        answer_us,
    ];
    // Clocks read on both sides of a VM boundary may disagree by a little: a negative step is 0.
    Some(
        marks
            .windows(2)
            .map(|w| Duration::from_micros(w[1].saturating_sub(w[0])))
            .collect(),
    )
}

/// When the launcher wrote its first state (`started_at_ms`, in µs since the Unix epoch).
fn launcher_started_us(lab: &Lab) -> Option<u64> {
    let state = std::fs::read(lab.state_dir().join(NAME).join("state.json")).ok()?;
    let state: serde_json::Value = serde_json::from_slice(&state).ok()?;
    state["started_at_ms"].as_u64()?.checked_mul(1000)
}

/// The host's steps of the start, from the launcher's `host_steps` (state.json): the `start`
/// process's own exec (the bench's clock to the start `start` recorded), each step the
/// launcher marked (from the one before), and UML's exec to the guest kernel's first instant.
/// `None` for a host-launch that does not record them (`--versus` an older build).
fn host_steps(
    lab: &Lab,
    t0_us: u64,
    events: &[serde_json::Value],
) -> Option<Vec<(String, Duration)>> {
    let state = std::fs::read(lab.state_dir().join(NAME).join("state.json")).ok()?;
    let state: serde_json::Value = serde_json::from_slice(&state).ok()?;
    let h = &state["host_steps"];
    let start_us = h["start_us"].as_u64()?;
    let mut out = vec![(
        "start's exec".to_string(),
        Duration::from_micros(start_us.saturating_sub(t0_us)),
    )];
    let mut last = 0;
    for s in h["steps"].as_array()? {
        let at = s["at_us"].as_u64()?;
        out.push((
            s["step"].as_str()?.to_string(),
            Duration::from_micros(at.saturating_sub(last)),
        ));
        last = at;
    }
    let ready = events.iter().find(|e| e["event"] == "ready")?;
    let kernel = ready["ts_us"]
        .as_u64()?
        .checked_sub(ready["boot_us"].as_u64()?)?;
    out.push((
        "-> guest kernel".to_string(),
        Duration::from_micros(kernel.saturating_sub(start_us + last)),
    ));
    Some(out)
}

/// Microseconds since the Unix epoch, the clock of the events' `ts_us`.
fn wall_us(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// What one round measured.
struct Measured {
    answer: Duration,
    guest: Duration,
    steps: Option<Vec<Duration>>,
    host: Option<Vec<(String, Duration)>>,
}

/// One round: start, query until the answer, stop; the time from start to the answer, the
/// guest's share of it and where it went.
fn round(lab: &Lab, exe: &Path, spec: &Path) -> Result<Measured, String> {
    let prober = first_answer(
        &lab.ns.path(),
        GUEST,
        "www.example.net",
        [192, 0, 2, 80],
        PERIOD,
        GIVE_UP,
    )
    .map_err(|e| format!("the prober: {e}"))?;
    let t = Instant::now();
    let t0 = SystemTime::now();
    // Not waited on here: the clock runs from this start, however long the command takes.
    let mut start = Command::new(exe)
        .arg("start")
        .arg(spec)
        .env("HOST_LAUNCH_STATE_DIR", lab.state_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("host-launch start: {e}"))?;
    let answered = prober.join().unwrap_or(Ok(None));
    let started = start
        .wait()
        .map_err(|e| format!("host-launch start: {e}"))?;
    // The answer can come before the launcher has written the `ready` event.
    let waited = Instant::now();
    let ready_boot_us = |ev: &[serde_json::Value]| -> Option<u64> {
        ev.iter().find(|e| e["event"] == "ready")?["boot_us"].as_u64()
    };
    let mut ev = events(lab);
    while ready_boot_us(&ev).is_none() && waited.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(5));
        ev = events(lab);
    }
    let Some(guest_us) = ready_boot_us(&ev) else {
        return Err("no ready event in events.jsonl 2 s after the first answer".into());
    };
    let guest = Duration::from_micros(guest_us);
    let o = lab.host_launch(&["stop", NAME]);
    if !started.success() {
        let mut err = String::new();
        use std::io::Read;
        start.stderr.take().map(|mut s| s.read_to_string(&mut err));
        return Err(format!("host-launch start failed: {err}"));
    }
    if !o.status.success() {
        return Err(format!("stop: {}", shown(&o)));
    }
    let answered = answered
        .map_err(|e| format!("the prober: {e}"))?
        .ok_or_else(|| format!("no answer within {GIVE_UP:?}"))?;
    let answer = answered.saturating_duration_since(t);
    let steps =
        launcher_started_us(lab).and_then(|l| timeline(wall_us(t0), l, wall_us(t0 + answer), &ev));
    Ok(Measured {
        answer,
        guest,
        steps,
        host: host_steps(lab, wall_us(t0), &ev),
    })
}

/// When the idle appliance's memory is read, in seconds after it was ready: at 3 s, and with
/// `--settle S` again at S, by when free page reporting (the project's kernel, patch 0009: 2 s
/// after a large free, then a sixteenth of each free list per pass) has given back what boot
/// left free (30 s suffice). Without it each case is 3 s, not 30 s, long.
fn idle_after(settle: Option<u64>) -> Vec<u64> {
    std::iter::once(3)
        .chain(settle.filter(|s| *s > 3))
        .collect()
}

/// The idle appliance's host memory at one of [`idle_after`]'s instants.
struct Idle {
    after_s: u64,
    memory: e2e::host::Memory,
    file: Option<e2e::host::MemoryFile>,
}

/// Host memory of the appliance, idle, at each of `after` (seconds after ready).
fn idle_memory(lab: &Lab, spec: &Path, after: &[u64]) -> Result<Vec<Idle>, String> {
    let o = lab.host_launch(&["start", spec.to_str().unwrap(), "--wait-ready", "60"]);
    if !o.status.success() {
        return Err(format!("start: {}", shown(&o)));
    }
    let ready = Instant::now();
    let state = lab.state_dir().join(NAME).join("state.json");
    let state: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).unwrap())
        .map_err(|e| format!("{}: {e}", state.display()))?;
    let pid = state["uml_pid"]
        .as_u64()
        .ok_or("no uml_pid in state.json")? as u32;
    let mut seen = Vec::new();
    for &after_s in after {
        let at = Duration::from_secs(after_s);
        std::thread::sleep(at.saturating_sub(ready.elapsed()));
        seen.push(Idle {
            after_s,
            memory: e2e::host::memory_of(&e2e::host::vm_processes(pid)),
            file: e2e::host::uml_memory_file(pid),
        });
    }
    let o = lab.host_launch(&["stop", NAME]);
    if !o.status.success() {
        return Err(format!("stop: {}", shown(&o)));
    }
    Ok(seen)
}

/// What one kernel's rounds measured.
#[derive(Default)]
struct Series {
    times: Vec<Duration>,
    guest: Vec<Duration>,
    /// Per round, each of [`STEPS`].
    steps: Vec<Vec<Duration>>,
    /// The round (from 1) each entry of `steps` is of.
    rounds: Vec<usize>,
    /// Per round, the host's steps ([`host_steps`]).
    host: Vec<Vec<(String, Duration)>>,
    failures: usize,
}

/// The timeline's medians, step by step, with each one's share of the median first answer.
fn print_timeline(c: &Case) {
    let s = &c.series;
    if s.steps.is_empty() {
        return;
    }
    let total = s.times[s.times.len() / 2].as_secs_f64().max(1e-9);
    println!(
        "image {} kernel {}: where the time goes (median of {} rounds per step; share of the \
         median first answer):",
        c.image,
        c.kernel,
        s.steps.len()
    );
    let mut medians = Vec::new();
    for (i, step) in STEPS.iter().enumerate() {
        let mut v: Vec<Duration> = s.steps.iter().map(|r| r[i]).collect();
        v.sort();
        let median = v[v.len() / 2];
        medians.push(median);
        println!(
            "  {step:<32} median {:>6.1} ms, worst {:>6.1} ms ({:>3.0} %)",
            median.as_secs_f64() * 1e3,
            v[v.len() - 1].as_secs_f64() * 1e3,
            100.0 * median.as_secs_f64() / total
        );
    }
    print_stalls(c, &medians);
    print_host_steps(c);
}

/// The host's steps of a start (the launcher's `host_steps`), each one's median and worst
/// over the rounds that have it, in the order of the first round.
fn print_host_steps(c: &Case) {
    let s = &c.series;
    let Some(first) = s.host.first() else {
        return;
    };
    println!(
        "image {} kernel {}: the host's steps ({} rounds; each from the one before):",
        c.image,
        c.kernel,
        s.host.len()
    );
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    for (name, _) in first {
        let mut v: Vec<Duration> = s
            .host
            .iter()
            .filter_map(|r| r.iter().find(|(n, _)| n == name).map(|(_, d)| *d))
            .collect();
        v.sort();
        println!(
            "  {name:<32} median {:>6.2} ms, worst {:>6.2} ms",
            ms(v[v.len() / 2]),
            ms(v[v.len() - 1])
        );
    }
}

/// A round whose first answer took more than this many times the median is a stall.
const STALL_FACTOR: f64 = 1.5;

/// Each stalled round (the order they came in), with the steps that took longer than twice
/// their median: where a stall of a few rounds in many sits.
fn print_stalls(c: &Case, medians: &[Duration]) {
    let s = &c.series;
    let median = s.times[s.times.len() / 2].as_secs_f64();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    for (round, steps) in s.rounds.iter().zip(&s.steps) {
        let total: Duration = steps.iter().sum();
        if total.as_secs_f64() <= STALL_FACTOR * median {
            continue;
        }
        let slow: Vec<String> = STEPS
            .iter()
            .zip(steps.iter().zip(medians))
            .filter(|(_, (d, m))| d.as_secs_f64() > 2.0 * m.as_secs_f64())
            .map(|(name, (d, m))| format!("{name} {:.1} ms (median {:.1})", ms(*d), ms(*m)))
            .collect();
        println!(
            "  stall: round {round}, {:.1} ms: {}",
            ms(total),
            if slow.is_empty() {
                "no one step over twice its median".to_string()
            } else {
                slow.join(", ")
            }
        );
    }
}

/// The spec's `files` for an image: the class's zone for a dns-class image, else dnsmasq's
/// records.
fn service_files(manifest: &appliance::manifest::Manifest) -> serde_json::Value {
    if manifest.class.is_some() {
        let example = e2e::workspace_root().join("examples/dns.json");
        let spec: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&example).expect("examples/dns.json"))
                .expect("examples/dns.json");
        return spec["files"].clone();
    }
    json!([{"path": "/run/dnsmasq.conf", "mode": "0644",
            "content": "local=/example.net/\nhost-record=www.example.net,192.0.2.80\n"}])
}

/// An image's file size and the blocks it has in use (the file is sparse), in MiB.
fn image_size(image: &Path) -> (f64, f64) {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(image).expect("image");
    let mib = |b: u64| b as f64 / f64::from(1u32 << 20);
    (mib(m.len()), mib(m.blocks() * 512))
}

/// One image on one kernel: its spec and what its rounds measured.
struct Case {
    image: String,
    /// The kernel's label, and `(versus)` for the other host-launch's cases.
    kernel: String,
    exe: PathBuf,
    memory_mib: u32,
    spec: PathBuf,
    series: Series,
}

fn main() {
    // The lab (its namespace, its appliances) is dropped before the exit status is set.
    let failures = measure();
    if failures > 0 {
        eprintln!("{failures} failure(s)");
        std::process::exit(1);
    }
}

/// Runs every round of every case and prints the figures; how many steps failed.
fn measure() -> usize {
    let a = args();
    let kernels = bench_kernels(&a.kernels);
    let lab = Lab::new("first", None);
    let tap = format!("tfa{}", std::process::id() % 100_000);
    let mut cases = Vec::new();
    for name in a.images.split(',') {
        let image = lab.image(name);
        let manifest_path = appliance::manifest::path_beside(&image);
        let manifest =
            appliance::manifest::parse(&std::fs::read(&manifest_path).expect("manifest"))
                .expect("manifest");
        let memory_mib = a.memory_mib.max(manifest.min_memory_mib.unwrap_or(0));
        let (size, used) = image_size(&image);
        println!(
            "image {name}: {size:.1} MiB, {used:.1} MiB in use{}",
            manifest
                .class
                .map(|c| format!(", class {c}"))
                .unwrap_or_default()
        );
        for (label, kernel) in &kernels {
            let spec = lab.write_spec(&json!({
                "name": NAME,
                "image": image,
                "kernel": kernel,
                "memory_mib": memory_mib,
                "files": service_files(&manifest),
                "network": lab.network(&tap, GUEST),
            }));
            let file_label = label.replace('/', "_");
            let path = lab.join(&format!("{NAME}-{name}-{file_label}.json"));
            std::fs::rename(&spec, &path).unwrap();
            cases.push(Case {
                image: name.to_string(),
                kernel: label.clone(),
                exe: PathBuf::new(),
                memory_mib,
                spec: path.clone(),
                series: Series::default(),
            });
            if let Some(v) = &a.versus {
                cases.push(Case {
                    image: name.to_string(),
                    kernel: format!("{label} (versus)"),
                    exe: v.clone(),
                    memory_mib,
                    spec: path,
                    series: Series::default(),
                });
            }
        }
    }
    let exe = release_host_launch();
    for c in cases.iter_mut().filter(|c| c.exe.as_os_str().is_empty()) {
        c.exe = exe.clone();
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("first answer: load average before: {}", load.trim());
    for i in 0..a.rounds {
        for c in cases.iter_mut() {
            let s = &mut c.series;
            match round(&lab, &c.exe, &c.spec) {
                Ok(Measured {
                    answer: d,
                    guest: g,
                    steps,
                    host,
                }) => {
                    eprintln!(
                        "image {} kernel {}: round {}/{}: first answer after {} ms (guest \
                         kernel start -> ready {} ms)",
                        c.image,
                        c.kernel,
                        i + 1,
                        a.rounds,
                        d.as_millis(),
                        g.as_millis()
                    );
                    s.times.push(d);
                    s.guest.push(g);
                    if let Some(steps) = steps {
                        s.steps.push(steps);
                        s.rounds.push(i + 1);
                    }
                    s.host.extend(host);
                }
                Err(e) => {
                    eprintln!(
                        "image {} kernel {}: round {}/{}: FAILED: {e}",
                        c.image,
                        c.kernel,
                        i + 1,
                        a.rounds
                    );
                    s.failures += 1;
                }
            }
        }
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("first answer: load average after: {}", load.trim());
    let mut failures = 0;
    for c in cases.iter_mut() {
        let s = &mut c.series;
        s.times.sort();
        s.guest.sort();
        failures += s.failures;
        if let (Some(median), Some(worst)) = (s.times.get(s.times.len() / 2), s.times.last()) {
            println!(
                "image {} kernel {}: host-launch start -> first DNS answer at {} MiB over {} \
                 rounds (a query every {} ms): median {} ms, best {} ms, worst {} ms",
                c.image,
                c.kernel,
                c.memory_mib,
                s.times.len(),
                PERIOD.as_millis(),
                median.as_millis(),
                s.times[0].as_millis(),
                worst.as_millis()
            );
            println!(
                "image {} kernel {}: of which guest kernel start -> server ready: median {} \
                 ms, worst {} ms",
                c.image,
                c.kernel,
                s.guest[s.guest.len() / 2].as_millis(),
                s.guest[s.guest.len() - 1].as_millis()
            );
        }
        print_timeline(c);
    }
    for c in &cases {
        match idle_memory(&lab, &c.spec, &idle_after(a.settle)) {
            Ok(seen) => {
                for i in seen {
                    let m = i.memory;
                    let file = i
                        .file
                        .map(|f| format!(", memory file {} KiB allocated", f.allocated >> 10))
                        .unwrap_or_default();
                    println!(
                        "image {} kernel {}: idle DNS appliance at {} MiB, {} s after ready: \
                         host PSS {} KiB, RSS {} KiB ({} processes, {} address spaces){file}",
                        c.image,
                        c.kernel,
                        c.memory_mib,
                        i.after_s,
                        m.pss_kib,
                        m.rss_kib,
                        m.processes,
                        m.address_spaces
                    )
                }
            }
            Err(e) => {
                eprintln!("image {} kernel {}: memory: FAILED: {e}", c.image, c.kernel);
                failures += 1;
            }
        }
    }
    failures
}
