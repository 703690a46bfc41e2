//! A guest process's FP registers are its own: the static `syscall-probe` (e2e/syscall-probe)
//! holds a value in `xmm7` across each blocking system call of a ping-pong between two guest
//! processes and between two threads of one guest process (which share one host process under
//! UML), each side with a different value, and reports whether every value survived. The
//! project's kernel skips writing a host process's FP state back when it already holds it
//! (kernel/patches/0006); a switch that left one side with the other's state, or with none,
//! fails this test. On the kernel the tests run on (`UML_KERNEL`).

use e2e::{RootFs, TempDir, Vm};
use std::time::Duration;

#[test]
fn fp_registers_survive_switches_between_guest_processes_and_threads() {
    let probe = e2e::build_static("syscall-probe", "syscall-probe")
        .unwrap_or_else(|e| panic!("building the probe: {e}"));
    let dir = TempDir::new("fp-state").unwrap();
    let image = dir.join("root.img");
    RootFs::new()
        .file("/probe", &probe, 0o755)
        .build(&image)
        .unwrap();
    let contract = contract::parse_json(
        serde_json::json!({
            "version": 1,
            "hostname": "fp",
            "service": {"argv": ["/probe"], "restart": {"policy": "never"}}
        })
        .to_string()
        .as_bytes(),
    )
    .unwrap();
    let outcome = Vm::new(&image)
        .contract_cmdline(&contract)
        .timeout(Duration::from_secs(180))
        .run()
        .unwrap();
    outcome.assert_clean_poweroff();
    for op in ["ctx_switch", "thread_switch"] {
        let line = outcome
            .console
            .lines()
            .find(|l| l.contains(&format!("probe {op} ")))
            .unwrap_or_else(|| panic!("no {op} line from the probe:\n{}", outcome.console));
        assert!(
            line.contains("fp_kept=yes"),
            "{op}: a guest's FP register changed across a switch: {line}"
        );
    }
}
