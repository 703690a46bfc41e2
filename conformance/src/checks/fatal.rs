//! Contracts an image must refuse: another version, two encodings that differ, a key twice,
//! an unknown field, a config device that fails its checksum, and one it cannot honour (a
//! mount point the image lacks). Each must end in a `fatal` event and a clean power-off, with
//! the service never started.

use super::{contract, status_lines, BOOT};
use crate::error::Error;
use crate::lab::{Lab, PROBE_PATH};
use crate::report::{one_line, Results};
use ::lab::{Vm, VmOutcome};
use base64::Engine;
use serde_json::json;

/// A command-line token carrying these exact JSON bytes.
fn token(json: &str) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
    format!("{}={b64}", contract::cmdline::PARAM)
}

/// One refusal: `id` is the requirement that says to refuse, `field` the JSON path the fatal
/// event should name.
fn refused(
    r: &mut Results,
    id: &'static str,
    label: &str,
    vm: Vm,
    field: Option<&str>,
) -> Result<(), Error> {
    let o: VmOutcome = vm.timeout(BOOT).run()?;
    let fatal = o.events.iter().find(|e| e.name == "fatal");
    let started =
        o.events.iter().any(|e| e.name == "service_started") || o.console.contains("=probe= ");
    let off = o.powered_off_cleanly() && o.events.last().is_some_and(|e| e.name == "power_off");
    let ok = fatal.is_some() && !started && off;
    let ev = format!(
        "{label}: {}, service {}, {}",
        fatal
            .map(|e| format!("fatal at {:?}", e.str("field")))
            .unwrap_or_else(|| "no fatal event".into()),
        if started { "started" } else { "not started" },
        if off {
            "powered off".to_string()
        } else {
            format!(
                "no clean power-off ({}, console ends {})",
                o.status,
                one_line(o.console.lines().last().unwrap_or(""), 120)
            )
        }
    );
    r.check(id, ok, &ev);
    if id != "C-FATAL-3" {
        r.check("C-FATAL-1", ok, &ev);
    }
    status_lines(r, label, &o);
    // The field, or for a document that does not parse, its reason names the path at fault.
    if let (Some(want), Some(f)) = (field, fatal) {
        let got = f.str("field").unwrap_or("");
        let reason = f.str("reason").unwrap_or("");
        let ok = got.starts_with(want) || (got == "contract" && reason.contains(want));
        r.check(
            "C-FATAL-2",
            ok,
            format!(
                "{label}: field {got:?}, reason {:?}, wanted {want:?}",
                one_line(reason, 160)
            ),
        );
    }
    Ok(())
}

pub fn check(lab: &Lab, r: &mut Results) -> Result<(), Error> {
    let svc = format!(r#"{{"argv":["{PROBE_PATH}"]}}"#);
    // A version no image can speak yet: the one after this kit's newest.
    let future = contract::VERSION + 1;
    let newer = format!(r#"{{"version":{future},"hostname":"conf-v3","service":{svc}}}"#);
    refused(
        r,
        "C-WIRE-4",
        &format!("version {future}"),
        lab.vm().cmdline_token(token(&newer)),
        Some("version"),
    )?;
    if lab.manifest.contract_version >= contract::RLIMITS_SINCE {
        let svc1 = format!(
            r#"{{"argv":["{PROBE_PATH}"],"rlimits":{{"RLIMIT_NOFILE":{{"soft":64,"hard":64}}}}}}"#
        );
        let v1_with_2 = format!(r#"{{"version":1,"hostname":"conf-v1r","service":{svc1}}}"#);
        refused(
            r,
            "C-WIRE-4",
            "version 1 with rlimits",
            lab.vm().cmdline_token(token(&v1_with_2)),
            Some("service.rlimits"),
        )?;
    }
    let twice =
        format!(r#"{{"version":1,"hostname":"conf-a","hostname":"conf-b","service":{svc}}}"#);
    refused(
        r,
        "C-WIRE-5",
        "a key twice",
        lab.vm().cmdline_token(token(&twice)),
        Some("hostname"),
    )?;
    let unknown = format!(r#"{{"version":1,"hostname":"conf-u","service":{svc},"surprise":true}}"#);
    refused(
        r,
        "C-WIRE-6",
        "an unknown field",
        lab.vm().cmdline_token(token(&unknown)),
        Some("surprise"),
    )?;
    let a = contract(&lab.contract("conf-a", json!({"service": {"argv": [PROBE_PATH]}})))?;
    let b = contract(&lab.contract("conf-b", json!({"service": {"argv": [PROBE_PATH]}})))?;
    refused(
        r,
        "C-WIRE-3",
        "two encodings that differ",
        lab.vm().contract_cmdline(&a).contract_device(&b),
        None,
    )?;
    // A config device whose payload no longer matches its CRC (one byte of the JSON changed).
    let mut bytes = contract::blockdev::encode(&a);
    bytes[contract::blockdev::HEADER_LEN + 2] ^= 0x20;
    bytes.resize(bytes.len().max(contract::blockdev::MIN_DEVICE_BYTES), 0);
    refused(
        r,
        "C-WIRE-2",
        "a config device with a bad payload CRC",
        lab.vm().config_device_bytes(bytes),
        None,
    )?;
    let vm = lab.vm();
    let disk = lab.filled_disk("fatal-disk.img", (0, 0))?;
    let missing = contract(&lab.contract("conf-m", json!({
        "service": {"argv": [PROBE_PATH]},
        "mounts": {"disks": [{"device": vm.disk_name(0), "mount_point": "/conformance-not-in-the-image"}]}
    })))?;
    refused(
        r,
        "C-FATAL-3",
        "a mount point the image lacks",
        vm.disk(&disk, false).contract_device(&missing),
        Some("mounts.disks[0]"),
    )
}
