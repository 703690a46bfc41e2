//! Every fatal path ends in a clean power-off: the bad-contract corpus, missing disks,
//! interfaces and programs, and contracts too big for the VM.

use super::*;

/// A `hostcontract=` token carrying raw JSON text, valid or not.
fn raw_token(json: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
    format!("{}={b64}", contract::cmdline::PARAM)
}

/// What every fatal boot must show: a `fatal` status event (then `power_off` with reason
/// fatal), no service started, and a clean power-off. Returns the fatal event.
fn check_fatal(outcome: &VmOutcome) -> Result<&Event, String> {
    if !outcome.powered_off_cleanly() {
        return Err("the VM did not power off cleanly".into());
    }
    if !e2e::events::in_order(outcome.events(), &["fatal", "power_off"]) {
        return Err(format!("events {:?}", outcome.event_names()));
    }
    let off = outcome.event("power_off").ok_or("no power_off")?;
    if off.str("reason") != Some("fatal") {
        return Err(format!("power_off reason: {:?}", off.json));
    }
    if outcome.event("service_started").is_some() {
        return Err("the service was started".into());
    }
    if !outcome.console.contains("guest-init: powering off") {
        return Err("no 'powering off' line".into());
    }
    outcome
        .event("fatal")
        .ok_or_else(|| "no fatal event".into())
}

/// Whether the console has a `guest-init: fatal: ` line containing `message`.
fn has_fatal_line(outcome: &VmOutcome, message: &str) -> bool {
    outcome
        .guest_init_lines()
        .iter()
        .filter_map(|l| l.strip_prefix("fatal: "))
        .any(|l| l.contains(message))
}

/// How many corpus VMs boot at once (the machine may have only 2 cores, shared with the
/// other tests).
const CORPUS_JOBS: usize = 2;

/// Whether a corpus file says `@N*TEXT@` somewhere (N digits).
fn repeats(json: &[u8]) -> bool {
    json.split(|b| *b == b'@').skip(1).any(|part| {
        let digits = part.iter().take_while(|b| b.is_ascii_digit()).count();
        digits > 0 && part.get(digits) == Some(&b'*')
    })
}

#[test]
fn every_bad_contract_in_the_corpus_is_fatal_with_its_message() {
    let (_dir, image) = image("corpus");
    let bad = e2e::workspace_root().join("contract/tests/bad");
    let cases: Vec<(String, Vec<u8>, String)> = std::fs::read_dir(&bad)
        .expect("contract/tests/bad")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            let json = std::fs::read(&p).expect("case");
            let expect = std::fs::read_to_string(p.with_extension("expect"))
                .unwrap_or_else(|e| panic!("{name}.expect: {e}"));
            (name, json, expect.trim().to_string())
        })
        .collect();
    // A case written as `@N*TEXT@` (contract/tests/validation.rs expands it) is megabytes:
    // no kernel command line carries it, so the contract crate's test alone checks it.
    let (large, mut cases): (Vec<_>, Vec<_>) =
        cases.into_iter().partition(|(_, json, _)| repeats(json));
    eprintln!(
        "corpus: {} case(s) larger than any command line, checked by contract's tests only: {:?}",
        large.len(),
        large.iter().map(|(n, _, _)| n).collect::<Vec<_>>()
    );
    cases.sort();
    assert!(cases.len() >= 35, "only {} cases", cases.len());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failures = std::sync::Mutex::new(Vec::new());
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..CORPUS_JOBS {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some((name, json, expect)) = cases.get(i) else {
                    return;
                };
                let vm = Vm::new(&image).cmdline_token(raw_token(json)).timeout(BOOT);
                let problem = match vm.run() {
                    Err(e) => Some(format!("running the VM: {e}")),
                    Ok(outcome) => match check_fatal(&outcome) {
                        Err(why) => Some(format!("{why}\n{}", outcome.report())),
                        Ok(fatal) => {
                            let reason = fatal.str("reason").unwrap_or("");
                            if !has_fatal_line(&outcome, expect) {
                                Some(format!(
                                    "no fatal line with {expect:?}\n{}",
                                    outcome.report()
                                ))
                            } else if !reason.contains(expect.as_str()) {
                                Some(format!(
                                    "the fatal event's reason lacks {expect:?}: {reason}"
                                ))
                            } else if fatal.str("field") != Some("contract") {
                                Some(format!("fatal field: {:?}", fatal.json))
                            } else {
                                None
                            }
                        }
                    },
                };
                if let Some(p) = problem {
                    failures
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(format!("=== {name}: {p}"));
                }
            });
        }
    });
    eprintln!(
        "{} bad contracts booted in {:?}",
        cases.len(),
        started.elapsed()
    );
    let failures = failures.into_inner().unwrap_or_else(|e| e.into_inner());
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// Boots a contract that fails at runtime and checks the fatal event names `field` and the
/// console says `message`.
#[track_caller]
pub(super) fn assert_runtime_fatal(outcome: &VmOutcome, field: &str, message: &str) {
    let fatal = check_fatal(outcome).unwrap_or_else(|why| panic!("{why}\n{}", outcome.report()));
    assert_eq!(
        fatal.str("field"),
        Some(field),
        "{:?}\n{}",
        fatal.json,
        outcome.report()
    );
    assert!(
        has_fatal_line(outcome, message),
        "no fatal line with {message:?}\n{}",
        outcome.report()
    );
    let off = outcome.expect_event("power_off");
    assert_eq!(off.str("field"), Some(field), "{:?}", off.json);
}

#[test]
fn a_missing_data_disk_is_fatal() {
    let (_dir, image) = image("nodisk");
    let c = disk_contract(json!({"argv": ["/bin/true"]}));
    let outcome = run(Vm::new(&image).contract_cmdline(&c));
    assert_runtime_fatal(
        &outcome,
        "mounts.disks[0].device",
        "mounts.disks[0].device: /dev/ubdb does not exist",
    );
}

#[test]
fn a_missing_interface_is_fatal() {
    let (_dir, image) = image("noif");
    let c = contract(json!({
        "version": 1,
        "hostname": "noif",
        "network": {"interfaces": [{"name": "eth9", "addresses": ["192.0.2.10/24"]}]},
        "service": {"argv": ["/bin/true"]}
    }));
    let outcome = run(Vm::new(&image).contract_cmdline(&c));
    assert_runtime_fatal(&outcome, "network.interfaces[0].name", "eth9");
}

#[test]
fn a_missing_program_is_fatal() {
    let (_dir, image) = image("noprog");
    let c = service_contract(json!({"argv": ["/usr/bin/nope", "--flag"]}));
    let outcome = run(Vm::new(&image).contract_cmdline(&c));
    assert_runtime_fatal(
        &outcome,
        "service.argv[0]",
        "service.argv[0] '/usr/bin/nope': No such file or directory",
    );
}

// ---------------------------------------------------------------------------------------------
// Resources: what a contract makes the guest hold is bounded (contract::budget)
// ---------------------------------------------------------------------------------------------

/// 20,000 small files in a 48 MiB guest once ended in "Kernel panic - not syncing: System is
/// deadlocked on memory" while they were written to /run. A host that skipped the check
/// (the config device carries it unchecked) must now get a fatal at `files` and a clean
/// power-off.
#[test]
fn twenty_thousand_files_in_48_mib_are_fatal_not_a_kernel_panic() {
    let (_dir, image) = image("manyfiles");
    let files: Vec<Value> = (0..20_000)
        .map(|i| json!({"path": format!("/run/many/f{i}"), "content": "small\n"}))
        .collect();
    let c = contract(json!({
        "version": 1,
        "hostname": "many",
        "service": {"argv": ["/bin/true"]},
        "files": files
    }));
    let outcome = run(Vm::new(&image).memory_mib(48).contract_device(&c));
    assert!(
        !outcome.console.contains("Kernel panic"),
        "{}",
        outcome.report()
    );
    assert_runtime_fatal(&outcome, "files", "files: 20000 files; at most 1024");
}

/// /run and the contract's tmpfs mounts carry size and inode limits, a tmpfs without
/// `size_mib` included, so a full one is ENOSPC for its writer, not a kernel deadlock.
#[test]
fn run_and_tmpfs_mounts_have_size_and_inode_limits() {
    let (_dir, image) = image("tmpfslimits");
    let c = contract(json!({
        "version": 1,
        "hostname": "limits",
        "service": {
            "argv": ["/bin/sh", "-c", "grep -E ' /(run|data) ' /proc/mounts"],
            "restart": {"policy": "never"}
        },
        "mounts": {"tmpfs": [{"mount_point": "/data"}]}
    }));
    let outcome = run(Vm::new(&image).memory_mib(64).contract_cmdline(&c));
    outcome.assert_clean_poweroff();
    let lines = service_lines(&outcome, "sh");
    let mount = |point: &str| {
        lines
            .iter()
            .find(|l| l.contains(&format!(" {point} tmpfs ")))
            .unwrap_or_else(|| panic!("no {point} in {lines:?}\n{}", outcome.report()))
            .to_string()
    };
    // 64 MiB: the contract may claim (64 - 12) / 2 = 26 MiB; a tmpfs without a size gets a
    // quarter of that, 6 MiB, and one inode per page.
    let run = mount("/run");
    assert!(run.contains("size=26624k"), "{run}");
    assert!(
        run.contains(&format!("nr_inodes={}", contract::budget::RUN_INODES)),
        "{run}"
    );
    let data = mount("/data");
    assert!(
        data.contains("size=6144k") && data.contains("nr_inodes=1536"),
        "{data}"
    );
}

/// A config device near its 16 MiB limit cannot be read, let alone parsed, in a 32 MiB VM:
/// guest-init refuses it from the header's length, before allocating the payload.
#[test]
fn a_contract_too_big_for_the_vm_is_refused_before_it_is_read() {
    let (_dir, image) = image("bigcontract");
    let c = contract(json!({
        "version": 1,
        "hostname": "big",
        "service": {"argv": ["/bin/true"]},
        "extra": {"blob": "x".repeat(12 << 20)}
    }));
    let outcome = run(Vm::new(&image).memory_mib(32).contract_device(&c));
    assert!(
        !outcome.console.contains("Kernel panic"),
        "{}",
        outcome.report()
    );
    assert_runtime_fatal(
        &outcome,
        "contract",
        "a VM of 32 MiB takes a contract of at most",
    );
}
