//! Boot tests: guest-init under User-Mode Linux loads the host contract from the kernel
//! command line and/or the config device, reports every problem, and powers off cleanly.

use base64::Engine;
use contract::{blockdev, Contract};
use e2e::{RootFs, TempDir, Vm, VmOutcome};
use std::path::PathBuf;
use std::time::Duration;

/// A fresh root image with guest-init, in its own temporary directory.
fn root_image(label: &str) -> (TempDir, PathBuf) {
    let dir = TempDir::new(label).expect("temporary directory");
    let image = dir.join("root.img");
    RootFs::new()
        .build(&image)
        .unwrap_or_else(|e| panic!("building the root image: {e}"));
    (dir, image)
}

fn example(name: &str) -> Contract {
    let path = e2e::workspace_root().join("contract/examples").join(name);
    let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    contract::parse_json(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn run(vm: Vm) -> VmOutcome {
    let outcome = vm.run().unwrap_or_else(|e| panic!("running the VM: {e}"));
    eprintln!("{}", outcome.report());
    outcome
}

/// A `hostcontract=` token carrying raw JSON text, valid or not.
fn raw_token(json: &str) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
    format!("{}={b64}", contract::cmdline::PARAM)
}

/// Asserts that guest-init printed each line as a fatal error, in some form containing it.
#[track_caller]
fn assert_fatal_lines(outcome: &VmOutcome, expected: &[String]) {
    let fatal: Vec<&str> = outcome
        .guest_init_lines()
        .into_iter()
        .filter_map(|l| l.strip_prefix("fatal: "))
        .collect();
    for line in expected {
        assert!(
            fatal.iter().any(|f| f.trim() == line.trim()),
            "no fatal line {line:?} among {fatal:#?}\n{}",
            outcome.report()
        );
    }
}

#[test]
fn full_contract_on_the_command_line() {
    let (_dir, image) = root_image("full-cmdline");
    let outcome = run(Vm::new(&image).contract_cmdline(&example("full.json")));
    outcome.assert_clean_poweroff();
    outcome.assert_console_contains(
        "guest-init: contract loaded: hostname=dns1, service=dnsmasq (from kernel command line",
    );
    outcome.assert_console_contains("guest-init: powering off");
}

#[test]
fn minimal_contract_on_the_command_line() {
    let (_dir, image) = root_image("min-cmdline");
    let outcome = run(Vm::new(&image).contract_cmdline(&example("minimal.json")));
    outcome.assert_clean_poweroff();
    outcome.assert_console_contains("guest-init: contract loaded: hostname=hello, service=hello");
}

#[test]
fn contract_on_the_config_device_only() {
    let (_dir, image) = root_image("device");
    let vm = Vm::new(&image).contract_device(&example("full.json"));
    assert_eq!(vm.config_device_name(), "/dev/ubdb");
    let outcome = run(vm);
    outcome.assert_clean_poweroff();
    outcome.assert_console_contains(
        "guest-init: contract loaded: hostname=dns1, service=dnsmasq (from config device /dev/ubdb",
    );
    assert!(!outcome.console.contains("from kernel command line"));
}

#[test]
fn config_device_after_extra_disks() {
    let (dir, image) = root_image("device-disks");
    let data = dir.join("data.img");
    std::fs::write(&data, vec![0u8; 1024 * 1024]).expect("data disk");
    let vm = Vm::new(&image)
        .disk(&data, false)
        .contract_device(&example("minimal.json"));
    assert_eq!(vm.config_device_name(), "/dev/ubdc");
    let outcome = run(vm);
    outcome.assert_clean_poweroff();
    outcome.assert_console_contains("hostname=hello, service=hello (from config device /dev/ubdc");
}

#[test]
fn identical_contracts_on_both_load() {
    let (_dir, image) = root_image("both-same");
    let c = example("full.json");
    let outcome = run(Vm::new(&image).contract_cmdline(&c).contract_device(&c));
    outcome.assert_clean_poweroff();
    outcome.assert_console_contains(
        "contract loaded: hostname=dns1, service=dnsmasq (from kernel command line (hostcontract=) \
         and config device /dev/ubdb",
    );
}

#[test]
fn different_contracts_on_both_are_fatal() {
    let (_dir, image) = root_image("both-differ");
    let outcome = run(Vm::new(&image)
        .contract_cmdline(&example("full.json"))
        .contract_device(&example("minimal.json")));
    outcome.assert_clean_poweroff();
    assert!(!outcome.console.contains("contract loaded"));
    let fatal = outcome
        .guest_init_lines()
        .into_iter()
        .find(|l| l.starts_with("fatal: "))
        .unwrap_or_else(|| panic!("no fatal line\n{}", outcome.report()))
        .to_string();
    assert!(fatal.contains("differ"), "{fatal}");
    assert!(
        fatal.contains("kernel command line (hostcontract=)"),
        "{fatal}"
    );
    assert!(fatal.contains("config device /dev/ubdb"), "{fatal}");
}

#[test]
fn invalid_contract_reports_every_problem_with_its_path() {
    let json = r#"{
        "version": 1,
        "hostname": "bad_host",
        "network": { "interfaces": [ { "name": "vec0", "addresses": ["10.0.0.300/24"] } ] },
        "service": { "argv": ["/bin/x"], "capabilities": ["CAP_FLY"] }
    }"#;
    let expected = match contract::parse_json(json.as_bytes()) {
        Err(e) => e.lines(),
        Ok(_) => panic!("the test contract should be invalid"),
    };
    assert!(expected.len() >= 3, "{expected:#?}");
    for path in [
        "hostname",
        "network.interfaces[0].addresses[0]",
        "service.capabilities[0]",
    ] {
        assert!(
            expected.iter().any(|l| l.starts_with(&format!("{path}: "))),
            "no problem at {path} in {expected:#?}"
        );
    }
    let (_dir, image) = root_image("invalid");
    let outcome = run(Vm::new(&image).cmdline_token(raw_token(json)));
    outcome.assert_clean_poweroff();
    assert!(!outcome.console.contains("contract loaded"));
    outcome.assert_console_contains(
        "guest-init: fatal: bad host contract from the kernel command line (hostcontract=):",
    );
    assert_fatal_lines(&outcome, &expected);
}

#[test]
fn unknown_field_and_garbage_tokens_are_fatal() {
    let (_dir, image) = root_image("garbage");
    let outcome = run(Vm::new(&image).cmdline_token("hostcontract=!!not*base64!!"));
    outcome.assert_clean_poweroff();
    outcome.assert_console_contains("guest-init: fatal:   the hostcontract= value");
    let json = r#"{"version":1,"hostname":"a","service":{"argv":["/bin/x"]},"colour":"red"}"#;
    let expected = contract::parse_json(json.as_bytes()).unwrap_err().lines();
    let outcome = run(Vm::new(&image).cmdline_token(raw_token(json)));
    outcome.assert_clean_poweroff();
    assert_fatal_lines(&outcome, &expected);
}

#[test]
fn corrupted_config_device_is_fatal() {
    let (_dir, image) = root_image("corrupt");
    let mut bytes = blockdev::encode(&example("full.json"));
    bytes[blockdev::SECTOR + 20] ^= 0x20;
    let expected = blockdev::decode(&bytes).unwrap_err().lines();
    let outcome = run(Vm::new(&image).config_device_bytes(bytes));
    outcome.assert_clean_poweroff();
    assert!(!outcome.console.contains("contract loaded"));
    outcome.assert_console_contains(
        "guest-init: fatal: bad host contract from the config device /dev/ubdb \
         (hostcontract_dev=/dev/ubdb):",
    );
    assert_fatal_lines(&outcome, &expected);
    assert!(expected[0].contains("checksum"), "{expected:?}");
}

#[test]
fn config_device_without_a_contract_is_fatal() {
    let (_dir, image) = root_image("blank");
    let bytes = vec![0u8; 4096];
    let expected = blockdev::decode(&bytes).unwrap_err().lines();
    let outcome = run(Vm::new(&image).config_device_bytes(bytes));
    outcome.assert_clean_poweroff();
    assert_fatal_lines(&outcome, &expected);
}

#[test]
fn no_contract_is_fatal() {
    let (_dir, image) = root_image("none");
    let outcome = run(Vm::new(&image));
    outcome.assert_clean_poweroff();
    outcome.assert_console_contains(
        "guest-init: fatal: no host contract: give hostcontract=... or hostcontract_dev=...",
    );
}

#[test]
fn root_image_is_attached_read_only() {
    let (_dir, image) = root_image("readonly");
    let before = std::fs::read(&image).expect("image");
    // Even when the kernel is asked to mount the root read-write, the ubd device refuses
    // writes, so the kernel falls back to a read-only mount and the image stays unchanged.
    let outcome = run(Vm::new(&image).arg("rw"));
    outcome.assert_clean_poweroff();
    outcome.assert_console_contains("guest-init: fatal: no host contract");
    assert!(
        std::fs::read(&image).expect("image") == before,
        "the root image was modified"
    );
}

#[test]
fn a_vm_past_its_timeout_is_killed() {
    let dir = TempDir::new("timeout").expect("temporary directory");
    let image = dir.join("root.img");
    RootFs::new()
        .busybox(&["sleep"])
        .build(&image)
        .unwrap_or_else(|e| panic!("building the root image: {e}"));
    // A service that outlives the timeout: a fatal boot powers off within 200 ms on a fast
    // kernel.
    let mut c = example("minimal.json");
    c.service.argv = vec!["/bin/sleep".into(), "60".into()];
    let outcome = run(Vm::new(&image)
        .contract_cmdline(&c)
        .timeout(Duration::from_millis(200)));
    assert!(outcome.timed_out, "{}", outcome.report());
    assert!(!outcome.status.success());
    assert!(!outcome.powered_off_cleanly());
}

#[test]
fn guest_init_is_static() {
    let exe = e2e::guest_init().unwrap_or_else(|e| panic!("{e}"));
    let bytes = std::fs::read(&exe).expect("guest-init executable");
    assert!(!e2e::elf_has_interpreter(&bytes).expect("an ELF executable"));
}
