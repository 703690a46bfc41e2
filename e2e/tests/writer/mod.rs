//! What the data-disk tests (`faults.rs`, `kill9.rs`) share: the fsync-writer test service
//! (`src/bin/fsync-writer.rs`), a contract that mounts its data disk at `/data`, a VM with that
//! disk, and the numbers the writer prints on the console.
#![allow(dead_code)] // each test binary uses a part

use e2e::Vm;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// The fsync-writer executable (static, built once per test process).
pub fn exe() -> PathBuf {
    e2e::build_static("e2e", "fsync-writer").unwrap_or_else(|e| panic!("{e}"))
}

/// A contract with `service` and the data disk `/dev/ubdb` mounted at `/data`.
pub fn contract(hostname: &str, service: Value, format_if_blank: bool) -> contract::Contract {
    let v = json!({
        "version": 1,
        "hostname": hostname,
        "mounts": {"disks": [
            {"device": "/dev/ubdb", "mount_point": "/data", "format_if_blank": format_if_blank}
        ]},
        "service": service
    });
    contract::parse_json(v.to_string().as_bytes()).unwrap()
}

/// A VM of `image` with the data disk `disk` (writable) and the contract on a config device.
pub fn vm(image: &Path, disk: &Path, c: &contract::Contract) -> Vm {
    Vm::new(image).disk(disk, false).contract_device(c)
}

/// The numbers after `writer: <word> ` on the console (`synced N`, `verified N`, `error N:`).
pub fn numbers(console: &str, word: &str) -> Vec<u64> {
    let prefix = format!("writer: {word} ");
    console
        .lines()
        .filter_map(|l| l.strip_prefix(prefix.as_str()))
        .filter_map(|n| {
            n.split_whitespace()
                .next()?
                .trim_end_matches(':')
                .parse()
                .ok()
        })
        .collect()
}
