//! The serving benchmark's parts: its arguments, the targets it measures (the plain
//! processes, an appliance pair per kernel), the site and zone they serve, the report.

pub mod clients;
pub mod plain;

use super::lab::{disk_from_dir, Lab};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

pub struct Args {
    pub rounds: usize,
    pub seconds: u32,
    pub kernels: String,
    /// Another build of host-launch whose appliances are measured beside this tree's.
    pub versus: Option<std::path::PathBuf>,
    /// The host CPU every server (appliances and plain processes) is started on.
    pub cpu: Option<usize>,
}

impl Args {
    pub fn parse() -> Args {
        let mut a = Args {
            rounds: 3,
            seconds: 5,
            kernels: "project,debian".into(),
            versus: None,
            cpu: None,
        };
        let mut it = std::env::args().skip(1);
        while let Some(x) = it.next() {
            let mut value = |what: &str| it.next().unwrap_or_else(|| panic!("{x} {what}"));
            match x.as_str() {
                "--rounds" => a.rounds = value("N").parse().expect("--rounds N"),
                "--seconds" => a.seconds = value("N").parse().expect("--seconds N"),
                "--kernels" => a.kernels = value("project,debian"),
                "--versus" => a.versus = Some(value("HOST_LAUNCH").into()),
                "--cpu" => a.cpu = Some(value("N").parse().expect("--cpu N")),
                _ => {} // cargo bench passes --bench
            }
        }
        a
    }
}

/// The figures, in the order they are printed: (key, unit, higher is better).
const FIGURES: [(&str, &str, bool); 7] = [
    ("knot dnsperf -c8", "qps", true),
    ("dns one at a time p50", "µs", false),
    ("dns one at a time p99", "µs", false),
    ("lighttpd 1 KiB wrk -t2 -c16", "req/s", true),
    ("lighttpd 100 KiB wrk -t2 -c16", "GB/s", true),
    ("dns queries lost (dnsperf)", "queries", false),
    ("dns one at a time unanswered in 1 s", "of 2000", false),
];

/// One side measured: where its DNS and web servers answer, and what each round saw.
pub struct Target {
    pub label: String,
    dns: String,
    web: String,
    figures: BTreeMap<&'static str, Vec<f64>>,
    pub failures: Vec<String>,
}

impl Target {
    pub fn plain(p: &plain::Plain) -> Target {
        Target::new("plain process", &p.addr, &p.addr)
    }

    fn new(label: &str, dns: &str, web: &str) -> Target {
        Target {
            label: label.to_string(),
            dns: dns.to_string(),
            web: web.to_string(),
            figures: BTreeMap::new(),
            failures: Vec::new(),
        }
    }

    /// The Knot and lighttpd appliances on `kernel`, started with host-launch `exe` (the
    /// class example specs, on the lab's bridge at 192.0.2.53+i and .80+i, no remote syslog).
    #[allow(clippy::too_many_arguments)]
    pub fn appliance(
        lab: &Lab,
        exe: &Path,
        label: &str,
        kernel: &Path,
        i: u8,
        knot: &Path,
        web: &Path,
        site: &Path,
    ) -> Target {
        let pid = std::process::id() % 100_000;
        let dns = format!("192.0.2.{}", 53 + i);
        let www = format!("192.0.2.{}", 80 + i);
        let mut d = example("dns");
        d["name"] = format!("dns-k{i}").into();
        d["image"] = knot.to_str().unwrap().into();
        d["network"] = lab.network(&format!("tsd{pid}{i}"), &dns);
        let mut w = example("web");
        w["name"] = format!("web-k{i}").into();
        w["image"] = web.to_str().unwrap().into();
        let disk = lab.join(&format!("web-k{i}-data.img"));
        disk_from_dir(&disk, site);
        w["disks"][0]["file"] = disk.to_str().unwrap().into();
        w["network"] = lab.network(&format!("tsw{pid}{i}"), &www);
        for s in [&mut d, &mut w] {
            s["kernel"] = kernel.to_str().unwrap().into();
            s.as_object_mut().unwrap().remove("syslog");
            lab.start_with(exe, &lab.write_spec(s));
        }
        Target::new(&format!("appliance, {label} kernel"), &dns, &www)
    }

    /// One round of every figure; a client's error is kept and the round goes on.
    pub fn measure(&mut self, lab: &Lab, a: &Args, round: usize) {
        let mut got = |key: &'static str, r: Result<f64, String>| match r {
            Ok(v) => self.figures.entry(key).or_default().push(v),
            Err(e) => self.failures.push(format!("round {round}: {key}: {e}")),
        };
        match clients::dnsperf(lab, &self.dns, a.seconds) {
            Ok((qps, lost)) => {
                got(FIGURES[0].0, Ok(qps));
                got(FIGURES[5].0, Ok(lost as f64));
            }
            Err(e) => got(FIGURES[0].0, Err(e)),
        }
        match clients::one_at_a_time(lab, &self.dns, 2000) {
            // A query lost under load is a figure of its own, not a failed round.
            Ok((rtt, lost)) if !rtt.is_empty() => {
                got(FIGURES[1].0, Ok(clients::percentile(&rtt, 50.0)));
                got(FIGURES[2].0, Ok(clients::percentile(&rtt, 99.0)));
                got(FIGURES[6].0, Ok(lost as f64));
            }
            Ok(_) => got(FIGURES[1].0, Err("no query answered".into())),
            Err(e) => got(FIGURES[1].0, Err(e)),
        }
        let url = |f: &str| format!("http://{}/{f}", self.web);
        got(FIGURES[3].0, clients::wrk(lab, &url("1k.bin"), a.seconds));
        let big = clients::wrk(lab, &url("100k.bin"), a.seconds);
        got(FIGURES[4].0, big.map(|rps| rps * 102_400.0 / 1e9));
        eprintln!(
            "round {round}/{}: {}: {:?}",
            a.rounds,
            self.label,
            self.figures
                .iter()
                .map(|(k, v)| (k, v.last().copied().unwrap_or(0.0).round()))
                .collect::<Vec<_>>()
        );
    }

    fn median(&self, key: &str) -> Option<f64> {
        let mut v = self.figures.get(key)?.clone();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied()
    }
}

/// A class example spec of the checkout (`examples/NAME.json`).
fn example(name: &str) -> Value {
    let path = e2e::workspace_root().join(format!("examples/{name}.json"));
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

/// The zone of `examples/dns.json`.
pub fn zone() -> String {
    example("dns")["files"][0]["content"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The web site both sides serve: `www/` with an index, a 1 KiB and a 100 KiB file.
pub fn site(lab: &Lab) -> std::path::PathBuf {
    let site = lab.join("site");
    std::fs::create_dir_all(site.join("www")).unwrap();
    std::fs::write(site.join("www/index.html"), "<h1>serving</h1>\n").unwrap();
    std::fs::write(site.join("www/1k.bin"), vec![b'x'; 1024]).unwrap();
    std::fs::write(site.join("www/100k.bin"), vec![b'y'; 102_400]).unwrap();
    site
}

/// The CPU and the load average, printed before and after the rounds.
pub fn print_context() {
    let cpu = e2e::host::cpu_model();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "serving: CPU {cpu}, {} cores; load average {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load.trim()
    );
}

/// The median of each figure per target and its ratio to the plain process (the first
/// target), as a Markdown table; fails the bench if any round of any client failed.
pub fn report(targets: &[Target], a: &Args) {
    println!(
        "\nmedian over {} rounds of {} s (ratio to the plain process):\n",
        a.rounds, a.seconds
    );
    print!("| work |");
    for t in targets {
        print!(" {} |", t.label);
    }
    println!();
    println!("|---|{}", "---|".repeat(targets.len()));
    for (key, unit, _) in FIGURES {
        print!("| {key} ({unit}) |");
        let base = targets[0].median(key);
        for t in targets {
            match (t.median(key), base) {
                (Some(v), Some(b)) if b > 0.0 && !std::ptr::eq(t, &targets[0]) => {
                    print!(" {} (×{:.2}) |", shown(v), v / b)
                }
                (Some(v), _) => print!(" {} |", shown(v)),
                (None, _) => print!(" – |"),
            }
        }
        println!();
    }
    let failures: Vec<&String> = targets.iter().flat_map(|t| &t.failures).collect();
    for f in &failures {
        println!("FAILED: {f}");
    }
    assert!(
        failures.is_empty(),
        "{} measurements failed",
        failures.len()
    );
}

fn shown(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2}")
    } else {
        format!("{:.0}", v)
    }
}
