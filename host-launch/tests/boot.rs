//! End to end: a busybox httpd appliance built with the e2e harness, run by `host-launch run`
//! as an unprivileged user inside a test network namespace with a TAP device, answering HTTP,
//! refusing a second launch, and stopping cleanly on SIGTERM (exit 0, TAP removed, data disk
//! clean under `e2fsck -fn`).
//!
//! Needs root (network namespace, TAP device); fails, rather than skips, without it.

mod common;

use common::{host_launch, http_get, launch, setup, Appliance, Launch, Setup, GUEST};
use e2e::host::{assert_fsck_clean, output_text};
use std::time::Duration;

#[test]
fn busybox_httpd_appliance_boots_answers_and_stops_cleanly() {
    let Setup {
        dir,
        ns,
        tap,
        spec,
        data,
    } = setup("web", 64);
    let state = dir.join("state");
    let mut run = launch(&spec, "web", &state);
    let ready = run.wait_ready(Duration::from_secs(30)).unwrap();
    let body = http_get(&ns, &format!("{GUEST}:8080")).expect("HTTP from the guest");
    assert!(body.contains("hello from the appliance"), "{body}");

    // Status, and a second launch refused.
    let status = host_launch(&state, &["status", "web"]).output().unwrap();
    let status_text = String::from_utf8_lossy(&status.stdout).to_string();
    assert!(status_text.contains("web: running"), "{status_text}");
    assert!(status_text.contains("ready:    yes"), "{status_text}");
    let second = host_launch(&state, &["run"]).arg(&spec).output().unwrap();
    assert_eq!(second.status.code(), Some(121));
    assert!(String::from_utf8_lossy(&second.stderr).contains("already running"));
    let st = run.state_json();
    let mem = common::memory_of(&host_launch::state::process_group(run.uml_pid()));
    eprintln!(
        "measured: ready {:.2} s after launch (ready_after_ms {}), UML: {} processes ({} \
         address spaces), RSS {} KiB, PSS {} KiB",
        ready.as_secs_f64(),
        st["ready_after_ms"],
        mem.processes,
        mem.address_spaces,
        mem.rss_kib,
        mem.pss_kib
    );

    // SIGTERM: a clean shutdown through mconsole's ctrl-alt-del.
    let (code, all) = run.stop();
    assert_eq!(code, Some(0), "{all}");
    assert!(
        all.contains("power off: processes_killed=0 reason=requested"),
        "{all}"
    );
    assert!(all.contains("disks unmounted"), "{all}");
    assert!(!ns.has_link(&tap), "the TAP device was left behind");
    let st: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state.join("web/state.json")).unwrap()).unwrap();
    assert_eq!(st["phase"], "exited");
    assert_eq!(st["exit_code"], 0);
    assert_fsck_clean(&data);
    let logs = host_launch(&state, &["events", "web"]).output().unwrap();
    assert!(String::from_utf8_lossy(&logs.stdout).contains("ready: "));
}

/// The smallest memory the issue asks for, several times in a row: before host-launch turned
/// off the host's address-space randomization for UML about every second boot at 32 MiB
/// panicked ("System is deadlocked on memory"). `cargo bench -p host-launch --bench boot`
/// does 50.
#[test]
fn boots_at_32_mib_five_times_in_a_row() {
    let Setup {
        dir,
        ns,
        tap,
        spec,
        data,
    } = setup("m32", 32);
    let state = dir.join("state");
    for i in 1..=5 {
        let mut run = launch(&spec, "m32", &state);
        if let Err(e) = run.wait_ready(Duration::from_secs(30)) {
            panic!("boot {i} of 5 at 32 MiB: {e}");
        }
        let body = http_get(&ns, &format!("{GUEST}:8080")).expect("HTTP from the guest");
        assert!(body.contains("hello from the appliance"), "{body}");
        let console = run.console_tail(200);
        let (code, all) = run.stop();
        assert_eq!(code, Some(0), "boot {i} of 5 at 32 MiB:\n{all}\n{console}");
        assert!(!ns.has_link(&tap));
    }
    assert_fsck_clean(&data);
}

/// Two appliances from one root image at once: the image shared read-only, each with its own
/// name, TAP device (on one bridge), address and data disk; both answer at the same time and
/// both stop cleanly; the image is unchanged.
#[test]
fn two_appliances_from_one_image_run_at_once() {
    common::require_root_and_busybox();
    let dir = common::temp_dir("two");
    let image = common::build_image(dir.path(), "hello from the shared image\n");
    let image_before = std::fs::read(&image).unwrap();
    let ns = common::netns(true);
    let state = dir.join("state");
    let apps: Vec<Appliance> = ["a", "b"]
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let data = dir.join(format!("data-{n}.img"));
            common::data_disk(&data);
            Appliance {
                name: format!("two-{n}"),
                memory_mib: 32,
                image: image.clone(),
                data,
                tap: common::tap_name(n),
                netns: ns.name().to_string(),
                bridge: true,
                address: format!("192.0.2.{}", 11 + i),
            }
        })
        .collect();
    let mut runs: Vec<Launch> = apps
        .iter()
        .map(|a| launch(&a.write_spec(dir.path()), &a.name, &state))
        .collect();
    for r in &mut runs {
        r.wait_ready(Duration::from_secs(60)).unwrap();
    }
    // Both up at once, each at its own address, with its own disk and TAP device.
    for a in &apps {
        let body = http_get(&ns, &format!("{}:8080", a.address)).expect("HTTP");
        assert!(
            body.contains("hello from the shared image"),
            "{}: {body}",
            a.name
        );
        assert!(ns.has_link(&a.tap));
    }
    let list = host_launch(&state, &["list"]).output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout).to_string();
    for a in &apps {
        let row = list.lines().find(|l| l.starts_with(&a.name)).unwrap_or("");
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert!(
            cols.get(1) == Some(&"running") && cols.get(3) == Some(&"yes"),
            "{list}"
        );
    }
    let pids: Vec<u32> = runs.iter().map(|r| r.uml_pid()).collect();
    assert_ne!(pids[0], pids[1]);
    for (r, a) in runs.iter().zip(&apps) {
        let cmdline = std::fs::read(format!("/proc/{}/cmdline", r.uml_pid())).unwrap();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        assert!(
            cmdline.contains(&format!("ubd0r={} ", image.display())),
            "{cmdline}"
        );
        assert!(
            cmdline.contains(&format!("ubd1={} ", a.data.display())),
            "{cmdline}"
        );
    }
    // Both stop cleanly, one after the other while the other still runs.
    for (r, a) in runs.into_iter().zip(&apps) {
        let (code, all) = r.stop();
        assert_eq!(code, Some(0), "{}: {all}", a.name);
        assert!(all.contains("power off: processes_killed=0"), "{all}");
        assert!(!ns.has_link(&a.tap));
        assert_fsck_clean(&a.data);
    }
    assert!(
        std::fs::read(&image).unwrap() == image_before,
        "the shared image changed"
    );
}

#[test]
fn a_killed_launcher_leaves_nothing_that_blocks_the_next_launch() {
    let Setup {
        dir, ns, tap, spec, ..
    } = setup("kill", 64);
    let state = dir.join("state");
    // Exit code (-1 for a signal) and output.
    let hl = |args: &[&str]| output_text(&mut host_launch(&state, args));
    let spec_s = spec.to_str().unwrap();
    let (code, out) = hl(&["start", spec_s, "--wait-ready", "30"]);
    assert_eq!(code, 0, "{out}");
    let st: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state.join("kill/state.json")).unwrap()).unwrap();
    let launcher = st["launcher_pid"].as_i64().unwrap() as i32;
    let uml = st["uml_pid"].as_u64().unwrap() as u32;
    let umid = st["umid"].as_str().unwrap().to_string();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(launcher),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    // The VM died with its launcher (PR_SET_PDEATHSIG on UML): it does not run on unseen.
    let state_of = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| s.rsplit_once(')').map(|(_, r)| r.trim().chars().next()))
            .flatten()
    };
    assert!(
        matches!(state_of(uml), None | Some('Z') | Some('X')),
        "UML outlived its launcher: state {:?}",
        state_of(uml)
    );
    let helpers = host_launch::state::process_group(uml)
        .into_iter()
        .filter(|p| host_launch::state::is_uml_with_umid(*p, &umid) && state_of(*p) != Some('Z'))
        .count();
    eprintln!("after SIGKILL of the launcher: UML main dead, {helpers} helper process(es) left");
    let chains = |ns: &e2e::NetNs| {
        let o = ns.output("nft", &["list", "ruleset"]).expect("nft");
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert!(
        chains(&ns).contains("chain from_guest_kill {"),
        "no policy while it ran"
    );
    // `status` says so and only reads; `stop` cleans what is left: UML's helper processes,
    // the network policy, the TAP device, the mconsole socket.
    let (_, out) = hl(&["status", "kill"]);
    assert!(
        out.contains("its launcher died; `host-launch stop kill` cleans up"),
        "{out}"
    );
    assert!(out.contains("kill: dead (stale state)"), "{out}");
    assert!(ns.has_link(&tap), "status changed the host: {out}");
    let (code, out) = hl(&["stop", "kill"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("its launcher had died; cleaned up"), "{out}");
    assert!(
        out.contains("removed its chains from the nftables table host-launch"),
        "{out}"
    );
    assert!(
        !ns.has_link(&tap),
        "the dead launcher's TAP device is still there after stop"
    );
    let left = chains(&ns);
    assert!(
        !left.contains("chain"),
        "the dead launcher's chains: {left}"
    );
    assert!(host_launch::state::process_group(uml)
        .iter()
        .all(|p| !host_launch::state::is_uml_with_umid(*p, &umid)));
    assert!(!state.join("kill/uml").exists(), "UML's runtime directory");
    // The next launch comes up.
    let (code, out) = hl(&["start", spec_s, "--wait-ready", "30"]);
    assert_eq!(code, 0, "{out}");
    let body = http_get(&ns, &format!("{GUEST}:8080")).expect("HTTP from the guest");
    assert!(body.contains("hello from the appliance"), "{body}");
    let (code, out) = hl(&["stop", "kill"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("clean power-off"), "{out}");
    assert!(!ns.has_link(&tap));
    let (_, out) = hl(&["list"]);
    assert!(out.contains("kill") && out.contains("exited"), "{out}");
}

/// The TAP device is made with the kernel's ioctls (no iproute2): a bridge that is not in
/// the namespace is named as the spec's `network.bridge` with the fix, and the half-made TAP
/// device is gone again; an IPv6 host address reaches the device as given.
#[test]
fn a_missing_bridge_is_named_and_leaves_no_tap_device() {
    let Setup { dir, ns, tap, .. } = setup("nobridge", 64);
    let image = common::build_image(dir.path(), "x\n");
    let mut spec = Appliance {
        name: "nobridge".into(),
        memory_mib: 64,
        image,
        data: dir.join("data.img"),
        tap: tap.clone(),
        netns: ns.name().to_string(),
        bridge: true,
        address: GUEST.to_string(),
    }
    .write_spec(dir.path());
    let state = dir.join("state");
    let (code, out) = output_text(&mut host_launch(&state, &["run", spec.to_str().unwrap()]));
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("network.bridge"), "{out}");
    assert!(out.contains("\"br0\" does not exist"), "{out}");
    assert!(
        !ns.has_link(&tap),
        "the half-made TAP device was left: {out}"
    );

    // An IPv6 host address, set by SIOCSIFADDR on an AF_INET6 socket, is on the device while
    // the appliance runs.
    let text = std::fs::read_to_string(&spec).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["network"].as_object_mut().unwrap().remove("bridge");
    v["network"]["host_address"] = "2001:db8:7::1/64".into();
    v["network"]["addresses"] = serde_json::json!(["2001:db8:7::10/64"]);
    v["network"]["routes"] = serde_json::json!([]);
    spec = dir.join("v6.json");
    std::fs::write(&spec, v.to_string()).unwrap();
    let mut run = launch(&spec, "nobridge", &state);
    run.wait_ready(Duration::from_secs(60)).unwrap();
    let shown = ns
        .output("ip", &["-6", "addr", "show", "dev", &tap])
        .unwrap();
    let shown = String::from_utf8_lossy(&shown.stdout).to_string();
    assert!(shown.contains("2001:db8:7::1/64"), "{shown}");
    let (code, all) = run.stop();
    assert_eq!(code, Some(0), "{all}");
    assert!(!ns.has_link(&tap), "the TAP device was left behind");
}
