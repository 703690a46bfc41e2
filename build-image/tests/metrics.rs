//! `host-launch metrics` and `stats` with two real DNS appliances on one bridge (root, about
//! a minute): `mdns` answers dig, `mflap` has a liveness check that always fails, so guest-init
//! restarts its service again and again.
//!
//! - the text parses with `promtool check metrics` (Debian's prometheus), every series names
//!   its appliance, and the labels carry the image's digest and the kernel;
//! - `mdns`'s packets, bytes and CPU grow as it answers dig in the test's namespace; its
//!   service restarts stay 0 while `mflap`'s restarts and liveness failures grow;
//! - `--textfile DIR` writes `host-launch-NAME.prom` per appliance, which Debian's
//!   prometheus-node-exporter (run by the test inside the test's namespace, on its loopback,
//!   with only the textfile collector) serves without a scrape error;
//! - `--listen` serves the same names at /metrics (inside the namespace too);
//! - `stats --format json` gives one sample per appliance;
//! - `top` draws its columns and both appliances in a real terminal (a tmux of the test's
//!   own server socket), changes its order on a key and ends on `q`.
//!
//! Needs root, dig, promtool, prometheus-node-exporter and tmux (scripts/setup installs them).

mod lab;

use lab::dns::dns_recipe;
use lab::{shown, Lab};
use serde_json::json;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const FLAP_ADDRESS: &str = "192.0.2.54";

/// The value of `metric{appliance="NAME",...}` in a metrics text.
fn value(text: &str, metric: &str, appliance: &str) -> Option<f64> {
    let start = format!("{metric}{{appliance=\"{appliance}\",");
    text.lines()
        .find(|l| l.starts_with(&start))
        .and_then(|l| l.rsplit_once(' '))
        .and_then(|(_, v)| v.parse().ok())
}

fn metrics(lab: &Lab) -> String {
    let o = lab.host_launch(&["metrics"]);
    assert!(o.status.success(), "host-launch metrics: {}", shown(&o));
    String::from_utf8(o.stdout).expect("UTF-8 metrics")
}

/// `promtool check metrics` reads the text from its standard input; it must find no problem.
fn promtool_check(text: &str) {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package: run scripts/setup)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Polls `f` every 200 ms for up to `limit` until it gives something.
fn wait_for<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A server the test started inside its namespace, killed on drop.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `curl http://ADDR/metrics` from inside the namespace, once the server answers (10 s).
fn scrape(lab: &Lab, addr: &str) -> String {
    let url = format!("http://{addr}/metrics");
    wait_for(Duration::from_secs(10), || {
        let o = lab
            .command("curl")
            .args(["-sS", "--max-time", "5", &url])
            .output()
            .ok()?;
        o.status
            .success()
            .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
    })
    .unwrap_or_else(|| panic!("nothing answered at {url}"))
}

#[test]
fn metrics_follow_real_appliances() {
    let lab = Lab::new("metrics", Some("br0"));
    let image = lab.build(&dns_recipe("v1", |_| {}));
    let pid = std::process::id() % 100_000;
    let dns_spec = lab.spec(
        "mdns",
        &image,
        &lab.data_disk("d1.img"),
        &format!("md{pid}"),
    );
    let flap_spec = {
        let path = lab.spec_at(
            "mflap",
            &image,
            &lab.data_disk("d2.img"),
            &format!("mf{pid}"),
            FLAP_ADDRESS,
        );
        let mut s: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        // Nobody listens on 5300: each check fails, and one failure restarts the service.
        s["liveness"] = json!({"check": {"type": "tcp", "port": 5300}, "interval_ms": 500,
                               "timeout_ms": 200, "failure_threshold": 1});
        lab.write_spec(&s)
    };
    lab.start(&dns_spec);
    lab.start(&flap_spec);

    let before = metrics(&lab);
    promtool_check(&before);
    for l in before.lines().filter(|l| !l.starts_with('#')) {
        assert!(
            l.contains("appliance=\"mdns\"") || l.contains("appliance=\"mflap\""),
            "a series of no appliance: {l}"
        );
    }
    assert_eq!(
        value(&before, "appliance_up", "mdns"),
        Some(1.0),
        "{before}"
    );
    assert!(before.contains("digest=\"sha256:"), "{before}");
    assert!(before.contains("kernel=\""), "{before}");
    let mem = value(&before, "appliance_memory_bytes", "mdns").expect("memory");
    assert!(mem > 8e6 && mem < 200e6, "PSS of a 48 MiB appliance: {mem}");
    assert!(value(&before, "appliance_ready_seconds", "mdns").is_some_and(|s| s > 0.0));
    // The guest's own figures (its first figures event comes as supervision starts).
    let total = value(&before, "appliance_guest_memory_total_bytes", "mdns").expect("guest's");
    let available = value(&before, "appliance_guest_memory_available_bytes", "mdns");
    assert!(
        total > 16e6 && total <= 48.0 * 1048576.0,
        "MemTotal of 48 MiB: {total}"
    );
    assert!(available.is_some_and(|a| a > 0.0 && a < total), "{before}");
    assert!(value(&before, "appliance_guest_uptime_seconds", "mdns") > Some(0.0));

    // Traffic: 30 answered queries are at least 30 frames each way.
    for _ in 0..30 {
        answer(&lab);
    }
    let after = metrics(&lab);
    for m in [
        "appliance_network_receive_packets_total",
        "appliance_network_transmit_packets_total",
    ] {
        let (b, a) = (value(&before, m, "mdns"), value(&after, m, "mdns"));
        assert!(
            a.zip(b).is_some_and(|(a, b)| a >= b + 30.0),
            "{m}: {b:?} -> {a:?}"
        );
    }
    let grew = |m: &str| value(&after, m, "mdns") > value(&before, m, "mdns");
    assert!(grew("appliance_network_receive_bytes_total"));
    // The kernel counts CPU time in ticks (10 ms): 30 answers may fit in one on a quiet
    // host, so the queries go on, in rounds of 30, until it moves (never, if it is broken).
    let cpu = |t: &str| value(t, "appliance_cpu_seconds_total", "mdns");
    let busier = (0..40).find_map(|_| {
        for _ in 0..30 {
            answer(&lab);
        }
        let t = metrics(&lab);
        (cpu(&t) > cpu(&before)).then_some(t)
    });
    assert!(busier.is_some(), "CPU seconds never grew: {before}");

    // The flapping service's restarts are its own.
    let flapped = wait_for(Duration::from_secs(60), || {
        let t = metrics(&lab);
        (value(&t, "appliance_service_restarts_total", "mflap")? >= 2.0).then_some(t)
    })
    .expect("mflap's service restarted twice within 60 s");
    assert!(value(&flapped, "appliance_liveness_failures_total", "mflap") >= Some(2.0));
    assert!(value(&flapped, "appliance_service_exits_total", "mflap") >= Some(2.0));
    // Its exits are the liveness check's stops, not the guest's OOM killer's.
    assert_eq!(
        value(&flapped, "appliance_service_oom_kills_total", "mflap"),
        Some(0.0),
        "{flapped}"
    );
    assert_eq!(
        value(&flapped, "appliance_service_restarts_total", "mdns"),
        Some(0.0)
    );
    promtool_check(&flapped);

    top_draws_in_tmux(&lab);
    textfiles_reach_node_exporter(&lab);
    listen_serves_the_same(&lab);

    let o = lab.host_launch(&["stats", "--format", "json"]);
    assert!(o.status.success(), "{}", shown(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("stats JSON");
    assert_eq!(v[0]["name"], "mdns", "{v}");
    assert_eq!(v[1]["name"], "mflap", "{v}");
    assert!(v[0]["usage"]["memory_bytes"].as_u64() > Some(0), "{v}");
    assert!(v[1]["service"]["restarts"].as_u64() >= Some(2), "{v}");
    let o = lab.host_launch(&["stats", "mdns"]);
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(table.starts_with("NAME "), "{table}");
    assert!(
        table.lines().nth(1).is_some_and(|l| l.starts_with("mdns ")),
        "{table}"
    );
}

/// `metrics --textfile DIR`, read by Debian's node_exporter's textfile collector.
fn textfiles_reach_node_exporter(lab: &Lab) {
    let dir = lab.join("textfiles");
    let o = lab.host_launch(&["metrics", "--textfile", dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", shown(&o));
    for name in ["mdns", "mflap"] {
        let file = dir.join(format!("host-launch-{name}.prom"));
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file:?}: {e}"));
        promtool_check(&text);
    }
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| !n.to_string_lossy().ends_with(".prom"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

    let addr = "127.0.0.1:9100";
    let _exporter = Server(
        lab.command("prometheus-node-exporter")
            .args([
                "--collector.disable-defaults",
                "--collector.textfile",
                &format!("--collector.textfile.directory={}", dir.display()),
                &format!("--web.listen-address={addr}"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus-node-exporter (run scripts/setup)"),
    );
    let text = scrape(lab, addr);
    for name in ["mdns", "mflap"] {
        assert!(
            text.contains(&format!("appliance_up{{appliance=\"{name}\"")),
            "node_exporter's /metrics lacks {name}: {text}"
        );
    }
    assert!(
        text.lines().any(|l| l == "node_textfile_scrape_error 0"),
        "node_exporter could not read the textfiles: {text}"
    );
}

/// `metrics --listen ADDR`, scraped from inside the namespace.
fn listen_serves_the_same(lab: &Lab) {
    let addr = "127.0.0.1:9847";
    let _server = Server(
        lab.command(e2e::launch::host_launch_exe().to_str().unwrap())
            .args(["metrics", "--listen", addr])
            .env("HOST_LAUNCH_STATE_DIR", lab.state_dir())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("host-launch metrics --listen"),
    );
    let text = scrape(lab, addr);
    promtool_check(&text);
    assert!(value(&text, "appliance_up", "mdns") == Some(1.0), "{text}");
    assert!(value(&text, "appliance_up", "mflap") == Some(1.0), "{text}");
}

/// A tmux server of the test's own (`-L`), killed on drop.
struct Tmux(String);

impl Tmux {
    fn cmd(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.0)
            .args(args)
            .output()
            .expect("tmux (run scripts/setup)")
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.cmd(&["capture-pane", "-p", "-t", "top"]).stdout).into_owned()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

/// `host-launch top` in a 120x30 tmux window: the header, the columns, both appliances; `a`
/// orders by name, `q` ends it.
fn top_draws_in_tmux(lab: &Lab) {
    let tmux = Tmux(format!("hl-top-{}", std::process::id()));
    let state = format!("HOST_LAUNCH_STATE_DIR={}", lab.state_dir().display());
    let exe = e2e::launch::host_launch_exe();
    let o = tmux.cmd(&[
        "new-session",
        "-d",
        "-s",
        "top",
        "-x",
        "120",
        "-y",
        "30",
        "-e",
        &state,
        exe.to_str().unwrap(),
        "top",
        "--interval",
        "1",
        "--sort",
        "mem",
    ]);
    assert!(o.status.success(), "tmux new-session: {}", shown(&o));
    // The second frame has rates: a CPU% figure on mdns's row.
    let screen = wait_for(Duration::from_secs(15), || {
        let s = tmux.screen();
        let row = s.lines().find(|l| l.starts_with("mdns "))?;
        (!row.split_whitespace().nth(3)?.starts_with('-')).then_some(s)
    })
    .unwrap_or_else(|| panic!("top's rows with a CPU%: {}", tmux.screen()));
    let header = screen
        .lines()
        .find(|l| l.starts_with("NAME "))
        .expect("the columns");
    let columns: Vec<&str> = header
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    for c in [
        "NAME",
        "STATE",
        "READY",
        "CPU%",
        "MEM MiB",
        "NET IN/s",
        "NET OUT/s",
        "RESTARTS",
        "UPTIME",
    ] {
        assert!(header.contains(c), "column {c} in {columns:?}");
    }
    assert!(screen.contains("2 appliances, 2 running"), "{screen}");
    assert!(screen.contains("sorted by mem"), "{screen}");
    assert!(screen.lines().any(|l| l.starts_with("mflap ")), "{screen}");

    tmux.cmd(&["send-keys", "-t", "top", "a"]);
    // The header comes first in a frame: the screen is taken again until the rows are
    // there too (tmux may show a frame half drawn).
    let rows = |s: &str| -> Vec<String> {
        s.lines()
            .skip_while(|l| !l.starts_with("NAME "))
            .skip(1)
            .filter_map(|l| l.split_whitespace().next().map(str::to_string))
            .collect()
    };
    let by_name = wait_for(Duration::from_secs(5), || {
        let s = tmux.screen();
        (s.contains("sorted by name") && rows(&s) == ["mdns", "mflap"]).then_some(s)
    });
    assert!(by_name.is_some(), "after 'a', by name: {}", tmux.screen());

    tmux.cmd(&["send-keys", "-t", "top", "q"]);
    let ended = wait_for(Duration::from_secs(5), || {
        (!tmux.cmd(&["has-session", "-t", "top"]).status.success()).then_some(())
    });
    assert!(ended.is_some(), "top did not end on q: {}", tmux.screen());
}

/// One answered query: dig tries up to three times (1 s each), since a 2-core host running
/// other work may delay one reply past a second; what is counted here is the traffic.
fn answer(lab: &Lab) {
    let got = (0..3)
        .map(|_| lab.dig("www.example.net", "A"))
        .find(|a| a == "192.0.2.80");
    assert!(
        got.is_some(),
        "mdns did not answer www.example.net in three tries"
    );
}
