//! Supervision: restart back-off, a crash loop's flat footprint, orphan reaping, clean
//! power-off with the data on disk, restart policy `never`, the stop timeout and readiness by
//! notification, the liveness check restarting a hung service, the heartbeat.

use super::*;

#[test]
fn crash_loop_backs_off_exponentially_up_to_the_cap() {
    let (_dir, image) = image("crash");
    let c = service_contract(json!({
        "name": "crasher",
        "argv": ["/bin/sh", "-c", "echo crash; exit 3"],
        "restart": {"policy": "on-failure", "backoff_min_ms": 50, "backoff_max_ms": 400}
    }));
    let vm = spawn(Vm::new(&image).contract_cmdline(&c));
    let restarting = vm
        .wait_for_events("restarting", 6, BOOT)
        .unwrap_or_else(|e| panic!("{e}"));
    let outcome = cad_and_wait(vm);
    outcome.assert_clean_poweroff();
    let delays: Vec<u64> = restarting
        .iter()
        .map(|e| e.u64("delay_ms").expect("delay_ms"))
        .collect();
    assert_eq!(delays[..6], [50, 100, 200, 400, 400, 400], "{delays:?}");
    let exited = outcome.events_named("exited");
    assert!(exited.len() >= 6, "{}", outcome.report());
    for e in &exited {
        if e.i64("code") != Some(3) {
            // The last run may have been stopped by the shutdown.
            assert!(std::ptr::eq(*e, *exited.last().unwrap()), "{:?}", e.json);
        }
    }
    // Each restart came no sooner than its delay after the exit before it.
    let evs = outcome.events();
    for (i, r) in evs
        .iter()
        .enumerate()
        .filter(|(_, e)| e.name == "restarting")
    {
        let exit = evs[..i].iter().rev().find(|e| e.name == "exited").unwrap();
        let Some(next) = evs[i..].iter().find(|e| e.name == "service_started") else {
            continue;
        };
        let waited_ms = (next.boot_us - exit.boot_us) / 1000;
        let delay = r.u64("delay_ms").unwrap();
        assert!(
            waited_ms + 1 >= delay,
            "restart {} came {waited_ms} ms after the exit, before its {delay} ms delay",
            r.u64("restarts").unwrap_or(0)
        );
    }
    assert!(service_lines(&outcome, "crasher").contains(&"crash"));
}

/// PID 1's open descriptors and resident memory, as one restarted service run reports them.
fn pid1_footprint(line: &str) -> Option<(u64, u64)> {
    let mut words = line.split_whitespace();
    let fds = words.next()?.strip_prefix("fds=")?.parse().ok()?;
    let rss = words.next()?.strip_prefix("rss_kb=")?.parse().ok()?;
    Some((fds, rss))
}

#[test]
fn a_crash_loop_costs_no_growing_memory_or_descriptors() {
    let (_dir, image) = image("crash-loop");
    // Each run reports PID 1's open descriptors and resident memory, then fails at once.
    let c = service_contract(json!({
        "name": "looper",
        "argv": ["/bin/sh", "-c",
                 "echo fds=$(ls /proc/1/fd | wc -l) rss_kb=$(awk '/^VmRSS/ {print $2}' /proc/1/status); exit 1"],
        "restart": {"policy": "on-failure", "backoff_min_ms": 1, "backoff_max_ms": 2}
    }));
    let vm = spawn(Vm::new(&image).contract_cmdline(&c));
    vm.wait_for_events("restarting", 300, Duration::from_secs(120))
        .unwrap_or_else(|e| panic!("{e}"));
    let outcome = cad_and_wait(vm);
    outcome.assert_clean_poweroff();
    let runs: Vec<(u64, u64)> = service_lines(&outcome, "looper")
        .iter()
        .filter_map(|l| pid1_footprint(l))
        .collect();
    assert!(runs.len() >= 300, "only {} runs reported", runs.len());
    // A run may look at PID 1 while it is still inside spawn, holding the new run's pipe ends
    // for a moment, so single readings vary; what a leak would raise is the floor. After
    // warming up (the log threads, the first allocations), the floor of the last runs must be
    // that of the first ones.
    let floor = |window: &[(u64, u64)]| {
        let fds = window.iter().map(|r| r.0).min().unwrap_or(0);
        let rss = window.iter().map(|r| r.1).min().unwrap_or(0);
        (fds, rss)
    };
    let (early_fds, early_rss) = floor(&runs[10..60]);
    let (late_fds, late_rss) = floor(&runs[runs.len() - 50..]);
    assert_eq!(
        late_fds,
        early_fds,
        "PID 1's descriptors grew over {} restarts: {runs:?}",
        runs.len()
    );
    assert!(
        late_rss <= early_rss + 64,
        "PID 1's memory grew from {early_rss} kB to {late_rss} kB over {} restarts",
        runs.len()
    );
}

#[test]
fn orphans_are_reaped() {
    let (_dir, image) = image("orphans");
    // 20 subshells each leave a `sleep` behind, re-parented to PID 1; once they have all
    // exited, no process may be left a zombie. (Sleeps of 4 s, so that all 20 still live when
    // counted even on a loaded machine.)
    let script = r#"
        count() {
            n=0
            for f in /proc/[0-9]*/stat; do
                { read -r p c s pp rest < "$f"; } 2>/dev/null || continue
                if [ "$1" = zombies ]; then
                    [ "$s" = Z ] && n=$((n+1))
                else
                    [ "$c" = "(sleep)" ] && [ "$pp" = 1 ] && [ "$s" != Z ] && n=$((n+1))
                fi
            done
            echo $n
        }
        i=0
        while [ $i -lt 20 ]; do (sleep 4 &); i=$((i+1)); done
        echo orphans=$(count orphans)
        t=0
        while [ "$(count orphans)" -gt 0 ] && [ $t -lt 100 ]; do sleep 0.2; t=$((t+1)); done
        echo left=$(count orphans)
        sleep 0.5
        echo zombies=$(count zombies)
    "#;
    let c = service_contract(json!({
        "name": "spawner",
        "argv": ["/bin/sh", "-c", script],
        "restart": {"policy": "never"}
    }));
    let outcome = run(Vm::new(&image).contract_cmdline(&c));
    outcome.assert_clean_poweroff();
    let lines = service_lines(&outcome, "spawner");
    assert!(lines.contains(&"orphans=20"), "{lines:?}");
    assert!(lines.contains(&"left=0"), "{lines:?}");
    assert!(lines.contains(&"zombies=0"), "{lines:?}");
    let off = outcome.expect_event("power_off");
    assert_eq!(off.i64("code"), Some(0), "{:?}", off.json);
}

#[test]
fn ctrl_alt_del_powers_off_cleanly_with_the_data_on_disk() {
    let (dir, image) = image("cad");
    let disk = dir.join("data.img");
    blank_disk(&disk, 64);
    let c = disk_contract(json!({
        "name": "writer",
        "argv": ["/bin/sh", "-c",
                 "echo persisted-data > /data/file; echo written; exec sleep 1000"]
    }));
    let vm = spawn(Vm::new(&image).disk(&disk, false).contract_cmdline(&c));
    let mounted = wait_event(&vm, "disk_mounted", BOOT);
    assert_eq!(
        mounted.field("formatted"),
        &json!(true),
        "{:?}",
        mounted.json
    );
    vm.wait_for_console("writer: written", BOOT)
        .unwrap_or_else(|e| panic!("{e}"));
    let outcome = cad_and_wait(vm);
    outcome.assert_clean_poweroff();
    outcome.assert_events_in_order(&[
        "disk_mounted",
        "service_started",
        "shutting_down",
        "exited",
        "disks_unmounted",
        "power_off",
    ]);
    let down = outcome.expect_event("shutting_down");
    assert_eq!(down.str("reason"), Some("SIGINT (ctrl-alt-del)"));
    let exited = outcome.expect_event("exited");
    assert_eq!(exited.i64("signal"), Some(15), "{:?}", exited.json);
    let unmounted = outcome.expect_event("disks_unmounted");
    assert_eq!(
        unmounted.field("disks"),
        &json!([{"mount_point": "/data", "result": "unmounted"}])
    );
    // The file system is clean and holds the data.
    let fsck = Command::new("e2fsck")
        .args(["-fn"])
        .arg(&disk)
        .output()
        .expect("e2fsck");
    assert!(
        fsck.status.success(),
        "e2fsck -fn: {}\n{}{}",
        fsck.status,
        String::from_utf8_lossy(&fsck.stdout),
        String::from_utf8_lossy(&fsck.stderr)
    );
    let cat = Command::new("debugfs")
        .args(["-R", "cat /file"])
        .arg(&disk)
        .output()
        .expect("debugfs");
    assert_eq!(String::from_utf8_lossy(&cat.stdout), "persisted-data\n");

    // A second boot mounts the disk instead of formatting it. It was cleanly unmounted, so
    // e2fsck would only say "clean": it is not run.
    let c = disk_contract(json!({
        "name": "reader",
        "argv": ["/bin/cat", "/data/file"],
        "restart": {"policy": "never"}
    }));
    let reader = |checked: bool| {
        let outcome = run(Vm::new(&image).disk(&disk, false).contract_cmdline(&c));
        outcome.assert_clean_poweroff();
        let mounted = outcome.expect_event("disk_mounted");
        assert_eq!(
            mounted.field("formatted"),
            &json!(false),
            "{:?}",
            mounted.json
        );
        assert_eq!(
            mounted.field("checked"),
            &json!(checked),
            "{:?}",
            mounted.json
        );
        assert!(service_lines(&outcome, "reader").contains(&"persisted-data"));
    };
    reader(false);
    // A check that is due (here: the maximal mount count, 1, reached) runs e2fsck in the guest.
    let tune = Command::new("tune2fs")
        .args(["-c", "1"])
        .arg(&disk)
        .output()
        .expect("tune2fs");
    assert!(tune.status.success(), "tune2fs: {tune:?}");
    reader(true);
}

#[test]
fn restart_never_powers_off_with_the_exit_code() {
    let (_dir, image) = image("never");
    let c = service_contract(json!({
        "argv": ["/bin/sh", "-c", "echo bye; exit 7"],
        "restart": {"policy": "never"}
    }));
    let outcome = run(Vm::new(&image).contract_cmdline(&c));
    outcome.assert_clean_poweroff();
    outcome.assert_events_in_order(&["service_started", "exited", "power_off"]);
    assert!(
        outcome.event("restarting").is_none(),
        "{}",
        outcome.report()
    );
    let off = outcome.expect_event("power_off");
    assert_eq!(off.i64("code"), Some(7), "{:?}", off.json);
    assert_eq!(off.str("reason"), Some("service ended"), "{:?}", off.json);
    assert_eq!(outcome.expect_event("exited").i64("code"), Some(7));
}

#[test]
fn a_version_2_contract_sets_the_services_resource_limits() {
    let (_dir, image) = image("rlimits");
    // A hard limit above the kernel's default (4096), so it must be set while still root.
    let c = contract(json!({
        "version": 2, "hostname": "svc1",
        "service": {
            "argv": ["/bin/sh", "-c", "echo nofile $(ulimit -Sn) $(ulimit -Hn) core $(ulimit -c)"],
            "uid": 65534, "gid": 65534, "restart": {"policy": "never"},
            "rlimits": {"RLIMIT_NOFILE": {"soft": 8192, "hard": 16384},
                        "RLIMIT_CORE": {"soft": 0, "hard": 0}}
        }
    }));
    let outcome = run(Vm::new(&image).contract_cmdline(&c));
    outcome.assert_clean_poweroff();
    assert_eq!(
        service_lines(&outcome, "sh"),
        ["nofile 8192 16384 core 0"],
        "{}",
        outcome.report()
    );
}

#[test]
fn the_root_device_reads_nothing_ahead() {
    let (_dir, image) = image("readahead");
    let c = service_contract(json!({
        "argv": ["/bin/cat", "/sys/block/ubda/queue/read_ahead_kb"],
        "restart": {"policy": "never"}
    }));
    let outcome = run(Vm::new(&image).contract_cmdline(&c));
    outcome.assert_clean_poweroff();
    // guest-init's ROOT_READAHEAD_KB; the kernel's default is 128.
    assert_eq!(
        service_lines(&outcome, "cat"),
        ["0"],
        "{}",
        outcome.report()
    );
}

#[test]
fn a_service_ignoring_the_stop_signal_is_killed_after_the_stop_timeout() {
    let (_dir, image) = image("stubborn");
    let c = service_contract(json!({
        "name": "stubborn",
        "argv": ["/bin/sh", "-c", "trap '' TERM; echo trapped; sleep 1000"],
        "stop_timeout_ms": 1000
    }));
    let vm = spawn(Vm::new(&image).contract_cmdline(&c));
    vm.wait_for_console("stubborn: trapped", BOOT)
        .unwrap_or_else(|e| panic!("{e}"));
    let outcome = cad_and_wait(vm);
    outcome.assert_clean_poweroff();
    outcome.assert_events_in_order(&["shutting_down", "stop_timeout", "exited", "power_off"]);
    let asked = outcome.expect_event("shutting_down");
    let killed = outcome.expect_event("stop_timeout");
    let waited_ms = (killed.boot_us - asked.boot_us) / 1000;
    assert!(
        (1000..2500).contains(&waited_ms),
        "killed {waited_ms} ms after the stop signal; stop_timeout_ms is 1000"
    );
    let exited = outcome.expect_event("exited");
    assert_eq!(exited.i64("signal"), Some(9), "{:?}", exited.json);
}

#[test]
fn readiness_by_notification() {
    let (_dir, image) = image("notify");
    let c = service_contract(json!({
        "argv": ["/bin/sh", "-c", "sleep 0.3; echo >&3; sleep 100"],
        "readiness": {"type": "notify", "fd": 3}
    }));
    let vm = spawn(Vm::new(&image).contract_cmdline(&c));
    let ready = wait_event(&vm, "ready", BOOT);
    let started = vm
        .events()
        .into_iter()
        .find(|e| e.name == "service_started")
        .expect("service_started before ready");
    let outcome = cad_and_wait(vm);
    outcome.assert_clean_poweroff();
    assert_eq!(ready.str("via"), Some("notify"), "{:?}", ready.json);
    let after = ready.u64("after_ms").expect("after_ms");
    assert!(
        after >= 300,
        "ready after {after} ms, before the notification"
    );
    assert!(ready.boot_us - started.boot_us >= 300_000);
}

// ---------------------------------------------------------------------------------------------
// 10.-11. Fatal paths
// ---------------------------------------------------------------------------------------------

/// A service that stops working without exiting (its liveness file goes, then it sleeps
/// forever): the exec check fails `failure_threshold` times in a row, guest-init says so and
/// kills it, the restart policy starts it again; meanwhile PID 1's heartbeat keeps coming.
#[test]
fn the_liveness_check_restarts_a_service_that_hangs_without_exiting() {
    let (_dir, image) = image("liveness");
    let c = service_contract(json!({
        "name": "hanger",
        "argv": ["/bin/sh", "-c",
                 "touch /tmp/alive; echo working; sleep 2; rm /tmp/alive; echo hung; exec sleep 1000"],
        "restart": {"policy": "on-failure", "backoff_min_ms": 50, "backoff_max_ms": 50},
        "liveness": {"check": {"type": "exec", "argv": ["/bin/test", "-e", "/tmp/alive"]},
                     "interval_ms": 300, "timeout_ms": 200, "failure_threshold": 2}
    }));
    let vm = spawn(Vm::new(&image).contract_cmdline(&c));
    let started = vm
        .wait_for_events("service_started", 2, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(started[1].u64("restarts"), Some(1));
    let outcome = cad_and_wait(vm);
    outcome.assert_clean_poweroff();
    let evs = outcome.events();
    let failed: Vec<_> = evs.iter().filter(|e| e.name == "liveness_failed").collect();
    assert!(failed.len() >= 2, "{}", outcome.report());
    assert_eq!(failed[0].u64("failures"), Some(1));
    assert_eq!(failed[1].u64("failures"), Some(2));
    assert_eq!(failed[1].u64("threshold"), Some(2));
    assert_eq!(
        failed[0].json["check"], "exec /bin/test -e /tmp/alive",
        "{:?}",
        failed[0].json
    );
    assert!(failed[0].json["error"]
        .as_str()
        .unwrap_or("")
        .contains("code 1"));
    // While the file was there (2 s), every check passed.
    let first = evs.iter().find(|e| e.name == "service_started").unwrap();
    assert!(
        failed[0].boot_us - first.boot_us >= 2_000_000,
        "a check failed while the service worked: {}",
        outcome.report()
    );
    // The hung run ended by SIGKILL after the second failure, and was restarted.
    let i = evs.iter().position(|e| std::ptr::eq(e, failed[1])).unwrap();
    let exited = evs[i..]
        .iter()
        .find(|e| e.name == "exited")
        .expect("exited");
    assert_eq!(exited.i64("signal"), Some(9), "{:?}", exited.json);
    assert!(evs[i..].iter().any(|e| e.name == "restarting"));
    assert!(service_lines(&outcome, "hanger").contains(&"hung"));
    // The heartbeat: about one a second while PID 1 supervised, never on the console.
    let beats = outcome.events_named("heartbeat");
    assert!(beats.len() >= 3, "{}", outcome.report());
    assert!(beats.windows(2).all(|w| w[1].boot_us > w[0].boot_us));
    assert!(
        !outcome.console.contains("heartbeat"),
        "heartbeats go to the host only"
    );
}

/// The host sets the heartbeat on the kernel command line (`contract::status::HEARTBEAT_PARAM`):
/// `0` stops it (an idle guest then wakes less), a number of ms sets its interval, and a bad
/// value is a warning with the default kept, never a fatal error.
#[test]
fn the_host_sets_or_stops_the_heartbeat_on_the_kernel_command_line() {
    let (_dir, image) = image("heartbeat");
    let c = service_contract(json!({
        "name": "idle",
        "argv": ["/bin/sh", "-c", "echo up; exec sleep 1000"]
    }));
    let param = contract::status::HEARTBEAT_PARAM;
    let run = |value: &str| {
        let vm = spawn(
            Vm::new(&image)
                .arg(format!("{param}={value}"))
                .contract_cmdline(&c),
        );
        vm.wait_for_events("service_started", 1, Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("{e}"));
        std::thread::sleep(Duration::from_millis(2_500));
        let outcome = cad_and_wait(vm);
        outcome.assert_clean_poweroff();
        outcome
    };
    let off = run("0");
    assert!(
        off.events_named("heartbeat").is_empty(),
        "heartbeats although the host asked for none: {}",
        off.report()
    );
    let fast = run("200");
    let beats = fast.events_named("heartbeat");
    assert!(beats.len() >= 8, "{} beats in 2.5 s at 200 ms", beats.len());
    let gaps: Vec<u64> = beats
        .windows(2)
        .map(|w| w[1].boot_us - w[0].boot_us)
        .collect();
    assert!(
        gaps.iter().all(|g| (150_000..1_000_000).contains(g)),
        "gaps {gaps:?} (µs) at 200 ms"
    );
    let bad = run("soon");
    assert!(bad.events_named("heartbeat").len() >= 2, "{}", bad.report());
    let warned = bad
        .events_named("warning")
        .iter()
        .any(|e| e.str("reason").unwrap_or("").contains(param));
    assert!(warned, "no warning naming {param}: {}", bad.report());
}

/// A `tcp` liveness check: the service's listener goes away (its helper is killed) while the
/// service itself hangs on; the connect is refused, and at the threshold guest-init restarts
/// the service, whose new run listens again and passes.
#[test]
fn a_tcp_liveness_check_restarts_a_service_whose_port_closed() {
    let (_dir, image) = image("liveness-tcp");
    let c = service_contract(json!({
        "name": "closer",
        "argv": ["/bin/sh", "-c",
                 "httpd -p 8080 -h /www; sleep 2; kill $(cat /proc/*/stat | awk '$2 == \"(httpd)\" {print $1}'); echo closed; exec sleep 1000"],
        "readiness": {"type": "tcp", "port": 8080},
        "restart": {"policy": "on-failure", "backoff_min_ms": 50, "backoff_max_ms": 50},
        "liveness": {"check": {"type": "tcp", "port": 8080},
                     "interval_ms": 300, "timeout_ms": 250, "failure_threshold": 2}
    }));
    let vm = spawn(Vm::new(&image).contract_cmdline(&c));
    vm.wait_for_events("ready", 2, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}"));
    let outcome = cad_and_wait(vm);
    outcome.assert_clean_poweroff();
    let failed = outcome.events_named("liveness_failed");
    assert!(failed.len() >= 2, "{}", outcome.report());
    assert_eq!(failed[0].json["check"], "tcp 127.0.0.1:8080");
    let error = failed[0].json["error"].as_str().unwrap_or("");
    assert!(error.contains("refused"), "{error}");
    assert_eq!(failed[1].u64("failures"), Some(2));
    let started = outcome.events_named("service_started");
    assert!(started.len() >= 2 && started[1].u64("restarts") == Some(1));
    assert!(service_lines(&outcome, "closer").contains(&"closed"));
}

/// The `exited` event of a `never`-restarted service whose script is `script`, after the VM
/// powered off cleanly with that service's SIGKILL as the reason.
fn sigkilled_exit(label: &str, script: &str) -> Value {
    let (_dir, image) = image(label);
    let c = service_contract(json!({
        "name": label,
        "argv": ["/bin/sh", "-c", script],
        "restart": {"policy": "never"}
    }));
    let outcome = run(Vm::new(&image).contract_cmdline(&c));
    outcome.assert_clean_poweroff();
    let off = outcome.expect_event("power_off");
    assert_eq!(off.str("reason"), Some("service ended"), "{:?}", off.json);
    let exited = outcome.expect_event("exited");
    assert_eq!(exited.i64("signal"), Some(9), "{}", outcome.report());
    exited.json.clone()
}

#[test]
fn a_service_the_guests_oom_killer_ends_is_reported_as_oom_killed() {
    // The shell itself grows a string by 1 MiB a round past the guest's 64 MiB, so the OOM
    // killer's victim is the service's own pid.
    let script = "m=a; i=0; while [ $i -lt 20 ]; do m=$m$m; i=$((i+1)); done; \
                  echo grown; s=; while :; do s=$s$m; done";
    let exited = sigkilled_exit("oomer", script);
    assert_eq!(exited["oom"], json!(true), "{exited}");
}

#[test]
fn a_kill_9_of_the_service_is_not_an_oom_kill() {
    let exited = sigkilled_exit("killed", "echo bye; kill -9 $$");
    assert_eq!(exited.get("oom"), None, "{exited}");
}

#[test]
fn the_guests_figures_come_at_once_and_say_its_memory() {
    let (_dir, image) = image("figures");
    let c = service_contract(json!({"name": "idle", "argv": ["/bin/sleep", "1000"]}));
    let vm = spawn(Vm::new(&image).memory_mib(64).contract_cmdline(&c));
    let f = wait_event(&vm, "figures", BOOT);
    let outcome = cad_and_wait(vm);
    outcome.assert_clean_poweroff();
    let total = f.u64("mem_total_kb").expect("mem_total_kb");
    let available = f.u64("mem_available_kb").expect("mem_available_kb");
    // 64 MiB less the kernel's own share.
    assert!((16 * 1024..=64 * 1024).contains(&total), "{:?}", f.json);
    assert!(available > 0 && available < total, "{:?}", f.json);
    assert!(f.json["uptime_s"].as_f64() > Some(0.0), "{:?}", f.json);
    assert!(f.json["load1"].as_f64() >= Some(0.0), "{:?}", f.json);
}
