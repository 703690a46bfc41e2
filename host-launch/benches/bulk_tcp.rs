//! Bulk TCP through an appliance's TAP device (issue 24, the data path), as root: the busybox
//! bulk appliance of `tests/bulk_tcp.rs` (48 MiB) on each kernel, and with `--versus
//! HOST_LAUNCH` the same under another build of host-launch, each in a namespace of its own;
//! rounds alternate the cases. Per round a client in the namespace sends `--mib` MiB to the
//! guest (`nc` into `wc -c`) and reads as much from it (`head -c` of /dev/zero); prints the
//! MB/s of each direction (median, min, max), transfers that did not end within
//! `--deadline` seconds, and whether the guest's console complained of cut GSO frames. With
//! the CPU and the load average.
//!
//! ```sh
//! cargo bench -p host-launch --bench bulk_tcp [-- --rounds 5 --mib 64 --kernels project
//!     --versus /tmp/host-launch.before --cpu 1 --deadline 30]
//! ```

#[path = "../tests/common/mod.rs"]
mod common;

use common::bulk::{self, GSO_ERROR};
use common::{launch, netns, require_root_and_busybox, tap_name, temp_dir, Launch, EXE};
use e2e::NetNs;
use std::path::PathBuf;
use std::time::Duration;

struct Args {
    rounds: usize,
    mib: usize,
    kernels: String,
    versus: Option<PathBuf>,
    cpu: Option<usize>,
    deadline: Duration,
}

fn args() -> Args {
    let mut a = Args {
        rounds: 5,
        mib: 64,
        kernels: "project".into(),
        versus: None,
        cpu: None,
        deadline: Duration::from_secs(30),
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{x} needs a value"));
        match x.as_str() {
            "--rounds" => a.rounds = value().parse().expect("--rounds N"),
            "--mib" => a.mib = value().parse().expect("--mib N"),
            "--kernels" => a.kernels = value(),
            "--versus" => a.versus = Some(value().into()),
            "--cpu" => a.cpu = Some(value().parse().expect("--cpu N")),
            "--deadline" => {
                a.deadline = Duration::from_secs(value().parse().expect("--deadline SECONDS"))
            }
            _ => {} // cargo bench passes --bench
        }
    }
    a
}

/// One appliance measured: its label, namespace, run, and each round's MB/s per direction.
struct Case {
    label: String,
    ns: NetNs,
    run: Option<Launch>,
    state: PathBuf,
    to_guest: Vec<f64>,
    from_guest: Vec<f64>,
    unfinished: Vec<String>,
}

fn main() {
    require_root_and_busybox();
    let a = args();
    let bytes = a.mib << 20;
    let dir = temp_dir("bulk-bench");
    let image = bulk::image(dir.path(), bytes);
    let mut builds = vec![(PathBuf::from(EXE), String::new())];
    if let Some(v) = &a.versus {
        builds.push((v.clone(), " (versus)".into()));
    }
    let mut cases = Vec::new();
    for (b, (exe, tag)) in builds.iter().enumerate() {
        for (k, (label, kernel)) in e2e::bench_kernels(&a.kernels).iter().enumerate() {
            let name = format!("bulk{b}{k}");
            let ns = netns(false);
            let tap = tap_name(&format!("{b}{k}"));
            let spec = bulk::spec(dir.path(), &name, &image, &ns, &tap, Some(kernel));
            let state = dir.join(format!("state-{name}"));
            let mut run = e2e::host::started_on(a.cpu, || launch_with(exe, &spec, &name, &state));
            run.wait_ready(Duration::from_secs(60)).unwrap();
            cases.push(Case {
                label: format!("{label}{tag}"),
                ns,
                run: Some(run),
                state: state.join(&name),
                to_guest: Vec::new(),
                from_guest: Vec::new(),
                unfinished: Vec::new(),
            });
        }
    }
    print_context("before");
    for round in 1..=a.rounds {
        for c in &mut cases {
            let t = bulk::send_to_guest(&c.ns, bytes, a.deadline);
            record(
                &mut c.to_guest,
                &mut c.unfinished,
                "host → guest",
                &t,
                round,
            );
            let t = bulk::read_from_guest(&c.ns, a.deadline);
            record(
                &mut c.from_guest,
                &mut c.unfinished,
                "guest → host",
                &t,
                round,
            );
            eprintln!(
                "round {round}: {}: {:.0} / {:.0} MB/s",
                c.label,
                c.to_guest.last().unwrap_or(&0.0),
                c.from_guest.last().unwrap_or(&0.0)
            );
        }
    }
    print_context("after");
    println!(
        "\n{} MiB each way, {} rounds; MB/s median (min–max):\n",
        a.mib, a.rounds
    );
    println!(
        "| case | host → guest | guest → host | not done in {} s | GSO complaint on the console |",
        a.deadline.as_secs()
    );
    println!("|---|---:|---:|---:|---|");
    for c in &mut cases {
        if let Some(run) = c.run.take() {
            run.stop();
        }
        let console = std::fs::read_to_string(c.state.join("console.log")).unwrap_or_default();
        println!(
            "| {} | {} | {} | {} | {} |",
            c.label,
            spread(&c.to_guest),
            spread(&c.from_guest),
            c.unfinished.len(),
            if console.contains(GSO_ERROR) {
                "yes"
            } else {
                "no"
            }
        );
    }
    for c in &cases {
        for u in &c.unfinished {
            println!("{}: {u}", c.label);
        }
    }
}

fn launch_with(
    exe: &std::path::Path,
    spec: &std::path::Path,
    name: &str,
    state: &std::path::Path,
) -> Launch {
    if exe == std::path::Path::new(EXE) {
        launch(spec, name, state)
    } else {
        Launch::start(exe, spec, name, state)
    }
}

/// Keeps a round's MB/s, or what stopped the transfer (its MB/s up to then counts too).
fn record(
    into: &mut Vec<f64>,
    unfinished: &mut Vec<String>,
    way: &str,
    t: &bulk::Transfer,
    round: usize,
) {
    into.push(t.mb_per_s());
    if let Some(e) = &t.error {
        unfinished.push(format!(
            "round {round}: {way}: {} MiB moved: {e}",
            t.bytes >> 20
        ));
    }
}

fn spread(v: &[f64]) -> String {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match (s.first(), s.get(s.len() / 2), s.last()) {
        (Some(lo), Some(mid), Some(hi)) => format!("{mid:.0} ({lo:.0}–{hi:.0})"),
        _ => "–".into(),
    }
}

fn print_context(when: &str) {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "bulk_tcp: CPU {}; load average {when}: {}",
        e2e::host::cpu_model(),
        load.trim()
    );
}
