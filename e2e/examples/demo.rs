//! Boots the example appliance: guest-init in a fresh root image, with a contract on the
//! kernel command line (or, with `--device`, on a config device), showing the console.
//!
//! Usage: `cargo run -p e2e --example demo -- [CONTRACT.json] [--device] [--kernel-log]`
//! (default contract: contract/examples/full.json). Run it through `scripts/demo`.

use e2e::{RootFs, TempDir, Vm};
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    match demo() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("demo: {e}");
            ExitCode::FAILURE
        }
    }
}

fn demo() -> Result<bool, Box<dyn std::error::Error>> {
    let mut contract_path = e2e::workspace_root().join("contract/examples/full.json");
    let (mut device, mut kernel_log) = (false, false);
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--device" => device = true,
            "--kernel-log" => kernel_log = true,
            other if other.starts_with('-') => return Err(format!("unknown option {other}").into()),
            other => contract_path = PathBuf::from(other),
        }
    }
    let text =
        std::fs::read(&contract_path).map_err(|e| format!("{}: {e}", contract_path.display()))?;
    let contract = contract::parse_json(&text).map_err(|e| {
        format!(
            "{} is not a valid contract:\n  {}",
            contract_path.display(),
            e.lines().join("\n  ")
        )
    })?;

    eprintln!("demo: building guest-init (static, musl) ...");
    let guest_init = e2e::guest_init()?;
    eprintln!("demo: {}", guest_init.display());
    let dir = TempDir::new("demo")?;
    let image = dir.join("root.img");
    RootFs::new().init(&guest_init).build(&image)?;
    eprintln!("demo: root image {image:?}");

    let mut vm = Vm::new(&image).kernel_log(kernel_log).echo(true);
    vm = if device {
        vm.contract_device(&contract)
    } else {
        vm.contract_cmdline(&contract)
    };
    eprintln!(
        "demo: booting {} with {} via the {}\n",
        e2e::kernel_path().display(),
        contract_path.display(),
        if device {
            "config device"
        } else {
            "kernel command line"
        }
    );
    let outcome = vm.run()?;
    eprintln!(
        "\ndemo: command: {}\ndemo: linux exited with {} after {:.2?}{}",
        outcome.command_line,
        outcome.status,
        outcome.duration,
        if outcome.timed_out {
            " (killed: timeout)"
        } else {
            ""
        }
    );
    Ok(outcome.powered_off_cleanly())
}
