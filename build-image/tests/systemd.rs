//! Appliances under a real systemd: a Debian 12 root file system (debootstrap, cached by
//! `scripts/systemd-rootfs`) booted with `systemd-nspawn --boot`, its own network namespace
//! (`--private-network`, which also gives it CAP_NET_ADMIN), nspawn's default capabilities
//! (enough for the VMs' jails: CAP_SYS_ADMIN for the namespaces and mounts, CAP_SYS_PTRACE,
//! CAP_SETPCAP, CAP_SETUID/GID), `/dev/net/tun`, host-launch, the project's kernel and the DNS and web
//! images bound in. Inside it: `host-launch install-systemd`, then the DNS appliance as
//! `host-launch@dns1` answering `dig`, `systemctl status` with READY and the phase, the
//! guest's lines in `journalctl -u`, a SIGKILLed UML restarted, a stopped (SIGSTOP) guest
//! restarted through the watchdog, a clean `systemctl stop`, the web appliance that needs
//! dns1 started after it, and an invalid spec failing once with its field named. And
//! `host-launch update` of two unit-run appliances to a new image (each spec rewritten, each
//! unit restarted), and broken images rolled back by the unit (old spec, unit active): one
//! that does not stay healthy through `update`'s settle, one never ready by `upgrade`.
//!
//! The container is `e2e::nspawn`'s. Needs root, debootstrap and systemd-container
//! (`scripts/setup`).

mod common;

use e2e::launch::host_launch_exe;
use e2e::nspawn::Container;
use e2e::TempDir;
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

/// The UML pid host-launch recorded for `name`.
fn uml_pid(c: &Container, name: &str) -> u32 {
    let text = c.ok(&format!("cat /run/host-launch/{name}/state.json"));
    let v: Value = serde_json::from_str(&text).expect("state.json");
    v["uml_pid"].as_u64().expect("uml_pid") as u32
}

fn dig(c: &Container, name: &str) -> String {
    let out = c.sh(&format!(
        "ip netns exec hlapps dig @192.0.2.53 {name} +short +tries=1 +time=1"
    ));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
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
    let rootfs = e2e::nspawn::systemd_rootfs();
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
    assert_eq!(dig(&c, "www.example.net"), "192.0.2.80");
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
    let uml = uml_pid(&c, "dns1");
    c.ok(&format!("kill -KILL {uml}"));
    restarted(&c, "restart after SIGKILL", "1");
    assert_eq!(dig(&c, "www.example.net"), "192.0.2.80");

    // A guest that stops (every UML process SIGSTOPped, as a hung kernel): no heartbeats,
    // no WATCHDOG=1, systemd kills the launcher and starts the appliance again.
    let uml = uml_pid(&c, "dns1");
    c.ok(&format!("kill -STOP -{uml}"));
    restarted(&c, "restart through the watchdog", "2");
    let j = c.ok("journalctl -u host-launch@dns1 --no-pager");
    assert!(j.contains("Watchdog timeout"), "{j}");
    assert_eq!(dig(&c, "www.example.net"), "192.0.2.80");

    // systemctl stop: the graceful path, the guest powers off by itself.
    c.ok("timeout 90 systemctl stop host-launch@dns1");
    assert_eq!(c.prop("host-launch@dns1", "ExecMainStatus"), "0");
    assert_eq!(c.prop("host-launch@dns1", "Result"), "success");
    let logs = c.ok("host-launch events dns1");
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

/// The DNS image `dns-VERSION` (recipes/dns.json with its lock) answering
/// `version.example.net TXT "VERSION"` from `/etc/version.conf`; `tweak` changes the recipe.
fn dns_version(images: &Path, version: &str, tweak: impl FnOnce(&mut Value)) -> String {
    let path = common::recipes_dir().join("dns.json");
    let mut r: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    r["name"] = json!(format!("dns-{version}"));
    r["files"] = json!([{
        "path": "/etc/version.conf",
        "content": format!("txt-record=version.example.net,\"{version}\"\n")
    }]);
    tweak(&mut r);
    let recipe = build_image::parse(r.to_string().as_bytes()).expect("recipe");
    let name = format!("dns-{version}.img");
    let mut o = common::options(&images.join(&name));
    o.lock = Some(common::lock("dns"));
    build_image::build(&recipe, &o).unwrap_or_else(|e| panic!("building {name}: {e}"));
    format!("/srv/images/{name}")
}

/// The spec of unit-run appliance `name` at `address` on `image` (a container path); its
/// dnsmasq also answers the image's version.
fn versioned_spec(name: &str, address: &str, image: &str) -> String {
    spec("dnsmasq", "unused", |v| {
        v["name"] = json!(name);
        v["image"] = json!(image);
        v["network"]["tap"] = json!(format!("tap-{name}"));
        v["network"]["addresses"] = json!([format!("{address}/24")]);
        let conf = v["files"][0]["content"].as_str().unwrap().to_string();
        v["files"][0]["content"] = json!(format!("{conf}conf-file=/etc/version.conf\n"));
    })
}

/// The version each appliance answers ("" for none), three tries of a second each.
fn versions(c: &Container, addresses: &[&str]) -> Vec<String> {
    addresses
        .iter()
        .map(|a| {
            let out = c.sh(&format!(
                "ip netns exec hlapps dig @{a} version.example.net TXT +short +tries=3 +time=1"
            ));
            String::from_utf8_lossy(&out.stdout).trim().replace('"', "")
        })
        .collect()
}

/// `host-launch ARGS --json` in the container: exit status, its JSON, all it said.
fn host_launch_json(c: &Container, args: &str) -> (Option<i32>, Value, String) {
    let out = c.sh(&format!("host-launch {args} --json"));
    let v = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    let text = format!(
        "host-launch {args}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), v, text)
}

/// The image a spec file in the bound /etc/host-launch names now.
fn spec_image(specs: &Path, name: &str) -> String {
    let text = std::fs::read(specs.join(format!("{name}.json"))).expect("spec");
    let v: Value = serde_json::from_slice(&text).expect("the spec stays valid JSON");
    v["image"].as_str().expect("image").to_string()
}

/// The report's steps.
fn steps_of(report: &Value) -> Vec<Value> {
    report["appliances"].as_array().cloned().unwrap_or_default()
}

/// Each appliance's digest as `status --json` shows it.
fn digests(c: &Container, names: &[&str]) -> Vec<String> {
    let (code, v, text) = host_launch_json(c, "status");
    assert_eq!(code, Some(0), "{text}");
    names
        .iter()
        .map(|n| {
            let row = v
                .as_array()
                .and_then(|a| a.iter().find(|r| r["name"] == *n));
            let row = row.unwrap_or_else(|| panic!("{n} not in status: {text}"));
            row["digest"].as_str().unwrap_or_default().to_string()
        })
        .collect()
}

/// Both units active and running, each with its main PID.
fn active_pids(c: &Container, units: &[&str]) -> Vec<String> {
    units
        .iter()
        .map(|u| {
            assert_eq!(
                (c.prop(u, "ActiveState"), c.prop(u, "SubState")),
                ("active".to_string(), "running".to_string()),
                "{u}: {}",
                c.ok(&format!("journalctl -u {u} --no-pager | tail -n 30"))
            );
            c.prop(u, "MainPID")
        })
        .collect()
}

/// `host-launch update` on appliances their units run (host-launch@NAME): the new image goes
/// into each spec in /etc/host-launch (atomically, the old one kept as NAME.json.previous) and
/// the unit is restarted, so the new VM is the unit's; a broken image is rolled back the same
/// way: by `update` when the canary does not settle (its liveness check fails; the other not
/// attempted), and by `upgrade` itself when the image never becomes ready.
#[test]
fn update_moves_unit_run_appliances_and_rolls_a_broken_image_back() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(euid, 0, "this test needs root (systemd-nspawn)");
    // Where the time goes, on stderr (the test is slow on a loaded host).
    let t0 = std::time::Instant::now();
    let phase = |what: &str| eprintln!("[{:6.1} s] {what}", t0.elapsed().as_secs_f64());
    let rootfs = e2e::nspawn::systemd_rootfs();
    let dir = TempDir::new("systemd-update").expect("temporary directory");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let (images, specs) = (dir.join("images"), dir.join("specs"));
    std::fs::create_dir_all(&images).unwrap();
    std::fs::create_dir_all(&specs).unwrap();
    let v1 = dns_version(&images, "v1", |_| {});
    let v2 = dns_version(&images, "v2", |_| {});
    // Never ready: it waits for a port its dnsmasq does not open.
    let broken = dns_version(&images, "v3", |r| {
        r["manifest"]["service"]["readiness"] = json!({"type": "tcp", "port": 5300});
    });
    // Ready, then its liveness check (a port nothing opens) fails at once.
    let unhealthy = dns_version(&images, "v4", |r| {
        r["manifest"]["service"]["liveness"] = json!({
            "check": {"type": "tcp", "port": 5300},
            "interval_ms": 200, "timeout_ms": 100, "failure_threshold": 1
        });
    });
    phase("four images built");
    let (names, addresses) = (["dns1", "dns2"], ["192.0.2.53", "192.0.2.54"]);
    let units = ["host-launch@dns1", "host-launch@dns2"];
    for (n, a) in names.iter().zip(addresses) {
        std::fs::write(specs.join(format!("{n}.json")), versioned_spec(n, a, &v1)).unwrap();
    }
    let binds = [
        (host_launch_exe(), "/usr/local/bin/host-launch", false),
        (e2e::kernel_path(), "/srv/kernel/linux", false),
        (images.clone(), "/srv/images", false),
        (specs.clone(), "/etc/host-launch", true),
    ];
    let c = Container::boot(&rootfs, dir.path(), &binds);
    phase("the container is up");
    c.ok("ip netns add hlapps && ip -n hlapps link set lo up && \
          ip -n hlapps link add br-hl type bridge && \
          ip -n hlapps addr add 192.0.2.1/24 dev br-hl && ip -n hlapps link set br-hl up");
    c.ok("host-launch install-systemd");
    c.ok("timeout 120 systemctl start host-launch@dns1 host-launch@dns2");
    assert_eq!(versions(&c, &addresses), ["v1", "v1"]);
    let pids_v1 = active_pids(&c, &units);
    phase("both units run v1");

    // v1 -> v2: both, one at a time, each restarted by its unit.
    let (code, report, text) = host_launch_json(
        &c,
        &format!("update --image {v2} --from {v1} --settle 3 --timeout 60"),
    );
    phase("update to v2 done");
    assert_eq!(code, Some(0), "{text}");
    let results: Vec<&str> = report["appliances"]
        .as_array()
        .unwrap_or_else(|| panic!("{text}"))
        .iter()
        .map(|s| s["result"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(results, ["updated", "updated"], "{text}");
    let v2_digest = report["digest"].as_str().expect("digest").to_string();
    for s in steps_of(&report) {
        eprintln!("{}: updated, down {} s", s["name"], s["downtime_s"]);
    }
    assert_eq!(
        digests(&c, &names),
        [v2_digest.as_str(), v2_digest.as_str()],
        "{text}"
    );
    assert_eq!(versions(&c, &addresses), ["v2", "v2"], "{text}");
    let pids_v2 = active_pids(&c, &units);
    for i in 0..2 {
        assert_ne!(pids_v1[i], pids_v2[i], "{} has a new main PID", units[i]);
        assert_eq!(spec_image(&specs, names[i]), v2);
        let previous = std::fs::read(specs.join(format!("{}.json.previous", names[i])))
            .expect("the old spec is kept");
        let previous: Value = serde_json::from_slice(&previous).unwrap();
        assert_eq!(previous["image"], v1.as_str());
        // The VM is the unit's: its launcher is the unit's main process.
        let st = c.ok(&format!("host-launch status {}", names[i]));
        assert!(
            st.contains(&format!("managed:  by systemd: {}.service", units[i])),
            "{st}"
        );
        let state = c.ok(&format!("cat /run/host-launch/{}/state.json", names[i]));
        let state: Value = serde_json::from_str(&state).unwrap();
        assert_eq!(state["launcher_pid"].to_string(), pids_v2[i], "{state}");
    }
    let leftovers: Vec<_> = std::fs::read_dir(&specs)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary specs left: {leftovers:?}");

    // An image that becomes ready and then fails its liveness check: the canary does not
    // settle, is moved back by its unit (its spec names v2 again), the other is not attempted.
    let (code, report, text) = host_launch_json(
        &c,
        &format!("update --image {unhealthy} --from {v2} --settle 3 --timeout 60"),
    );
    phase("update to the unhealthy image done");
    assert_eq!(code, Some(127), "{text}");
    let steps = report["appliances"]
        .as_array()
        .unwrap_or_else(|| panic!("{text}"));
    let results: Vec<&str> = steps
        .iter()
        .map(|s| s["result"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(results, ["rolled-back", "not-attempted"], "{text}");
    let detail = steps[0]["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("not healthy on the new image"), "{text}");
    // A never-ready image by upgrade itself, on the other one.
    let out = c.sh(&format!(
        "host-launch upgrade /etc/host-launch/dns2.json --image {broken} --timeout 10"
    ));
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(127), "{said}");
    assert!(
        said.contains("rolled back: host-launch@dns2.service runs the old image"),
        "{said}"
    );
    phase("upgrade of dns2 to the broken image done");
    let pids_back = active_pids(&c, &units);
    for i in 0..2 {
        assert_eq!(spec_image(&specs, names[i]), v2, "{text}");
        assert_ne!(pids_back[i], pids_v2[i], "{} was restarted twice", units[i]);
    }
    assert_eq!(
        digests(&c, &names),
        [v2_digest.as_str(), v2_digest.as_str()]
    );
    assert_eq!(versions(&c, &addresses), ["v2", "v2"], "{text}");
    c.ok("timeout 90 systemctl stop host-launch@dns1 host-launch@dns2");
    phase("stopped");
}
