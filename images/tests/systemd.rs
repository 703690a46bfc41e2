//! Appliances under a real systemd: a Debian 12 root file system (debootstrap, cached by
//! `scripts/systemd-rootfs`) booted with `systemd-nspawn --boot`, its own network namespace
//! (`--private-network`, which also gives it CAP_NET_ADMIN), nspawn's default capabilities
//! (enough for the VMs' jails: CAP_SYS_ADMIN for the namespaces and mounts, CAP_SYS_PTRACE,
//! CAP_SETPCAP, CAP_SETUID/GID), `/dev/net/tun`, host-launch, the project's kernel and the DNS and web
//! images bound in. Inside it: `host-launch install-systemd`, then the DNS appliance as
//! `host-launch@dns1` answering `dig`, `systemctl status` with READY and the phase, the
//! guest's lines in `journalctl -u`, a SIGKILLed UML restarted, a stopped (SIGSTOP) guest
//! restarted through the watchdog, a clean `systemctl stop`, the web appliance that needs
//! dns1 started after it, and an invalid spec failing once with its field named.
//!
//! Commands run in the container through `nsenter -t LEADER -a` (`machinectl` needs a
//! registered machine). Needs root, debootstrap and systemd-container (`scripts/setup`).

mod common;

use e2e::launch::host_launch_exe;
use e2e::TempDir;
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The booted container, powered off (then killed) on drop.
struct Container {
    nspawn: Child,
    leader: u32,
    log: PathBuf,
}

impl Container {
    fn boot(rootfs: &Path, dir: &Path, binds: &[(PathBuf, &str, bool)]) -> Container {
        std::fs::create_dir_all("/run/systemd/nspawn").expect("/run/systemd/nspawn");
        let log = dir.join("nspawn.log");
        let mut cmd = Command::new("systemd-nspawn");
        cmd.args([
            "--boot",
            "--register=no",
            "--keep-unit",
            "--volatile=overlay",
        ])
        .args(["--private-network", "--bind=/dev/net/tun"])
        .arg(format!("--machine=hl-systemd-{}", std::process::id()))
        .arg("-D")
        .arg(rootfs);
        for (from, to, rw) in binds {
            let opt = if *rw { "--bind" } else { "--bind-ro" };
            cmd.arg(format!("{opt}={}:{to}", from.display()));
        }
        let out = std::fs::File::create(&log).expect("nspawn log");
        let nspawn = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .spawn()
            .expect("systemd-nspawn (package systemd-container) must be installed");
        let mut c = Container {
            leader: 0,
            log,
            nspawn,
        };
        c.leader = c.find_leader();
        let state = c.wait_running();
        assert!(
            state == "running" || state == "degraded",
            "the container's systemd did not come up: {state}\n{}",
            c.console()
        );
        c
    }

    /// The container's PID 1: nspawn's child that is systemd.
    fn find_leader(&mut self) -> u32 {
        let me = self.nspawn.id();
        for _ in 0..300 {
            if let Ok(Some(st)) = self.nspawn.try_wait() {
                panic!("systemd-nspawn ended: {st}\n{}", self.console());
            }
            for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
                let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                    continue;
                };
                let status =
                    std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
                let field = |k: &str| {
                    status
                        .lines()
                        .find_map(|l| l.strip_prefix(k))
                        .map(|v| v.trim().to_string())
                };
                if field("PPid:") == Some(me.to_string())
                    && field("Name:").as_deref() == Some("systemd")
                {
                    return pid;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("no systemd in the container after 30 s\n{}", self.console())
    }

    /// Polls `systemctl is-system-running` until the boot is over (at most 90 s): early
    /// on it cannot reach systemd at all, or says "offline" before /run/systemd/system exists.
    fn wait_running(&self) -> String {
        let mut last = String::new();
        for _ in 0..360 {
            let out = self.sh("systemctl is-system-running");
            last = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout).trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
            if last == "running" || last == "degraded" {
                break;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        last
    }

    fn console(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A shell command inside the container (all its namespaces).
    fn sh(&self, script: &str) -> Output {
        Command::new("nsenter")
            .args([
                "-t",
                &self.leader.to_string(),
                "-a",
                "--",
                "sh",
                "-c",
                script,
            ])
            .output()
            .expect("nsenter")
    }

    /// A command that must succeed; its standard output.
    fn ok(&self, script: &str) -> String {
        let out = self.sh(script);
        assert!(
            out.status.success(),
            "`{script}` in the container: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `systemctl show -p PROP UNIT`'s value.
    fn prop(&self, unit: &str, prop: &str) -> String {
        self.ok(&format!("systemctl show -p {prop} --value {unit}"))
            .trim()
            .to_string()
    }

    /// Waits (bounded) until `check` holds; what it saw last when it never does.
    fn until(
        &self,
        what: &str,
        limit: Duration,
        mut check: impl FnMut(&Self) -> Result<(), String>,
    ) {
        let end = Instant::now() + limit;
        loop {
            match check(self) {
                Ok(()) => return,
                Err(last) if Instant::now() >= end => {
                    panic!("{what}: not within {} s; last: {last}", limit.as_secs())
                }
                Err(_) => std::thread::sleep(Duration::from_millis(250)),
            }
        }
    }

    /// The UML pid host-launch recorded for `name`.
    fn uml_pid(&self, name: &str) -> u32 {
        let text = self.ok(&format!("cat /run/host-launch/{name}/state.json"));
        let v: Value = serde_json::from_str(&text).expect("state.json");
        v["uml_pid"].as_u64().expect("uml_pid") as u32
    }

    fn dig(&self, name: &str) -> String {
        let out = self.sh(&format!(
            "ip netns exec hlapps dig @192.0.2.53 {name} +short +tries=1 +time=1"
        ));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        // SIGTERM makes nspawn power the container off (systemd stops the appliances).
        // SAFETY: kill(2) of the nspawn process this test started.
        unsafe { libc::kill(self.nspawn.id() as i32, libc::SIGTERM) };
        for _ in 0..300 {
            if let Ok(Some(_)) = self.nspawn.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.nspawn.kill();
        let _ = self.nspawn.wait();
    }
}

/// Waits until dns1 has been restarted `n` times in all and is running and ready again.
fn restarted(c: &Container, what: &str, n: &str) {
    c.until(what, Duration::from_secs(60), |c| {
        let (restarts, sub) = (
            c.prop("host-launch@dns1", "NRestarts"),
            c.prop("host-launch@dns1", "SubState"),
        );
        let ready = c
            .prop("host-launch@dns1", "StatusText")
            .starts_with("ready");
        if restarts == n && sub == "running" && ready {
            Ok(())
        } else {
            Err(format!("{restarts} {sub}"))
        }
    });
}

fn rootfs() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/systemd-rootfs");
    let out = Command::new(&script)
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} failed (debootstrap must be installed)",
        script.display()
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// A spec from `examples/NAME.json` for the container: images, kernel and network there.
/// `dnsmasq` is the unclassed dnsmasq image's spec, `tests/lab/dnsmasq.json` (the DNS
/// example is a class dns spec now, for NSD or Knot; this test reads dnsmasq's query log).
fn spec(example: &str, image: &str, change: impl FnOnce(&mut Value)) -> String {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let path = match example {
        "dnsmasq" => manifest_dir.join("tests/lab/dnsmasq.json"),
        _ => manifest_dir.join(format!("../examples/{example}.json")),
    };
    let mut v: Value =
        serde_json::from_slice(&std::fs::read(path).expect("example")).expect("json");
    let o = v.as_object_mut().expect("object");
    o.remove("syslog");
    o.insert("image".into(), json!(format!("/srv/images/{image}")));
    o.insert("kernel".into(), json!("/srv/kernel/linux"));
    o["network"]["netns"] = json!("hlapps");
    o["network"]["bridge"] = json!("br-hl");
    change(&mut v);
    serde_json::to_string_pretty(&v).expect("json")
}

#[test]
fn appliances_run_as_systemd_services() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(euid, 0, "this test needs root (systemd-nspawn)");
    let rootfs = rootfs();
    let dir = TempDir::new("systemd").expect("temporary directory");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let images = dir.join("images");
    let specs = dir.join("specs");
    std::fs::create_dir_all(&images).unwrap();
    std::fs::create_dir_all(&specs).unwrap();
    common::build("dns", &images);
    common::build("web", &images);
    std::fs::write(specs.join("dns1.json"), spec("dnsmasq", "dns.img", |_| {})).unwrap();
    std::fs::write(
        specs.join("web1.json"),
        spec("web", "web.img", |v| {
            v["disks"][0]["file"] = json!("/var/lib/host-launch/web1/data.img");
            v["needs"] = json!(["dns1"]);
        }),
    )
    .unwrap();
    let kernel = e2e::kernel_path();
    let binds = [
        (host_launch_exe(), "/usr/local/bin/host-launch", false),
        (kernel, "/srv/kernel/linux", false),
        (images.clone(), "/srv/images", false),
        (specs.clone(), "/etc/host-launch", true),
    ];
    let c = Container::boot(&rootfs, dir.path(), &binds);
    c.ok("ip netns add hlapps && ip -n hlapps link set lo up && \
          ip -n hlapps link add br-hl type bridge && \
          ip -n hlapps addr add 192.0.2.1/24 dev br-hl && ip -n hlapps link set br-hl up");

    // The one install command, then the DNS appliance as a service.
    let installed = c.ok("host-launch install-systemd");
    assert!(installed.contains("systemd reloaded"), "{installed}");
    c.ok("timeout 90 systemctl start host-launch@dns1");
    assert_eq!(c.dig("www.example.net"), "192.0.2.80");
    let status = c.ok("systemctl status --no-pager --lines=0 host-launch@dns1");
    assert!(status.contains("Active: active (running)"), "{status}");
    assert!(
        status.contains("Status: \"ready (the guest's service"),
        "{status}"
    );
    assert!(
        status.contains("50-host-launch-spec.conf"),
        "the generator's drop-in: {status}"
    );
    // The generator's drop-in (properties only: the container's cgroup v1 controllers are
    // mounted read-only, so its systemd cannot enforce them) and its link from
    // multi-user.target (started at boot).
    let dns1 = |p: &str| c.prop("host-launch@dns1", p);
    assert_eq!(dns1("MemoryMax"), (112u64 << 20).to_string());
    assert_eq!(dns1("TasksMax"), "1056");
    let wanted_by = dns1("WantedBy");
    let wanted_by: Vec<&str> = wanted_by.split(' ').collect();
    assert!(
        wanted_by.contains(&"multi-user.target") && wanted_by.contains(&"host-launch@web1.service"),
        "{wanted_by:?}"
    );
    assert_eq!(dns1("UnitFileState"), "enabled-runtime");
    let after = c.prop("host-launch@web1", "After");
    assert!(
        after.split(' ').any(|u| u == "host-launch@dns1.service"),
        "{after}"
    );
    let st = c.ok("host-launch status dns1");
    assert!(
        st.contains("managed:  by systemd: host-launch@dns1.service"),
        "{st}"
    );
    let list = c.ok("host-launch list");
    assert!(
        list.contains("systemd (host-launch@dns1.service)"),
        "{list}"
    );
    // The guest's own lines (guest-init's and dnsmasq's) are in the unit's journal.
    c.until(
        "the guest's lines in the journal",
        Duration::from_secs(20),
        |c| {
            let j = c.ok("journalctl -u host-launch@dns1 --no-pager");
            let want = [
                "console: guest-init: contract loaded",
                "dnsmasq: dnsmasq",
                "query[A] www.example.net",
            ];
            match want.iter().find(|w| !j.contains(*w)) {
                None => Ok(()),
                Some(w) => Err(format!("no '{w}' in:\n{j}")),
            }
        },
    );

    // UML killed with SIGKILL: the launcher ends with a failure, systemd starts it again.
    let uml = c.uml_pid("dns1");
    c.ok(&format!("kill -KILL {uml}"));
    restarted(&c, "restart after SIGKILL", "1");
    assert_eq!(c.dig("www.example.net"), "192.0.2.80");

    // A guest that stops (every UML process SIGSTOPped, as a hung kernel): no heartbeats,
    // no WATCHDOG=1, systemd kills the launcher and starts the appliance again.
    let uml = c.uml_pid("dns1");
    c.ok(&format!("kill -STOP -{uml}"));
    restarted(&c, "restart through the watchdog", "2");
    let j = c.ok("journalctl -u host-launch@dns1 --no-pager");
    assert!(j.contains("Watchdog timeout"), "{j}");
    assert_eq!(c.dig("www.example.net"), "192.0.2.80");

    // systemctl stop: the graceful path, the guest powers off by itself.
    c.ok("timeout 90 systemctl stop host-launch@dns1");
    assert_eq!(c.prop("host-launch@dns1", "ExecMainStatus"), "0");
    assert_eq!(c.prop("host-launch@dns1", "Result"), "success");
    let logs = c.ok("host-launch logs dns1");
    assert!(
        logs.contains("power off: ") && logs.contains("reason=requested"),
        "{logs}"
    );
    let st = c.ok("host-launch status dns1");
    assert!(st.contains("exit status 0"), "{st}");

    // web1 needs dns1: starting web1 alone starts dns1 first.
    c.ok("timeout 120 systemctl start host-launch@web1");
    assert_eq!(c.prop("host-launch@dns1", "ActiveState"), "active");
    let dns_ready: u64 = c
        .prop("host-launch@dns1", "ActiveEnterTimestampMonotonic")
        .parse()
        .unwrap();
    let web_start: u64 = c
        .prop("host-launch@web1", "ExecMainStartTimestampMonotonic")
        .parse()
        .unwrap();
    assert!(
        dns_ready > 0 && dns_ready <= web_start,
        "dns1 ready at {dns_ready}, web1 started at {web_start}"
    );
    // curl prints 000 when nothing answers.
    let page =
        c.ok("ip netns exec hlapps curl -s -o /dev/null -w '%{http_code}' http://192.0.2.80/");
    assert!(
        page != "000" && page.len() == 3,
        "web1 answers HTTP: {page}"
    );
    let list = c.ok("host-launch list --json");
    let v: Value = serde_json::from_str(&list).expect("list --json");
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert_eq!(names, ["dns1", "web1"]);

    // An invalid spec: the unit fails once (no restart), and says which field.
    std::fs::write(
        specs.join("bad1.json"),
        spec("dnsmasq", "dns.img", |v| {
            v["name"] = json!("bad1");
            v["network"]["tap"] = json!("tap-bad1");
            v["memory_mib"] = json!(8);
        }),
    )
    .unwrap();
    c.ok("systemctl daemon-reload");
    assert!(!c
        .sh("timeout 60 systemctl start host-launch@bad1")
        .status
        .success());
    assert_eq!(c.prop("host-launch@bad1", "ExecMainStatus"), "120");
    assert_eq!(c.prop("host-launch@bad1", "NRestarts"), "0");
    let status =
        String::from_utf8_lossy(&c.sh("systemctl status --no-pager host-launch@bad1").stdout)
            .into_owned();
    assert!(status.contains("memory_mib: 8 is out of range"), "{status}");
    c.ok("timeout 60 systemctl stop host-launch@web1 host-launch@dns1");
}
