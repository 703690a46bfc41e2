//! The bad-spec corpus: each case is run with `host-launch run` and must fail before anything
//! boots, with its own message naming the field or file, the documented exit status, and
//! nothing left behind: no disk file, no state directory, no TAP device.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

const MANIFEST: &str = r#"{"contract_version":1,"service":{"argv":["/bin/busybox","true"]},
    "disks":[{"mount_point":"/data","format_if_blank":true}]}"#;

struct Case {
    name: &'static str,
    /// The spec; `DIR` is replaced by the case's directory.
    spec: &'static str,
    /// The manifest beside `root.img` (default [`MANIFEST`]).
    manifest: Option<&'static str>,
    expect: &'static str,
    code: i32,
}

/// A spec built at run time, kept for the whole test like the literal ones.
fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn cases() -> Vec<Case> {
    let c = |name, spec, expect| Case {
        name,
        spec,
        manifest: None,
        expect,
        code: 120,
    };
    vec![
        c("not-json", r#"{"name":"#, "spec.json: not valid JSON: EOF"),
        c(
            "missing-image",
            r#"{"name":"bad","image":"nope.img","disks":[{"file":"data.img","size_mib":8}]}"#,
            "image: DIR/nope.img cannot be used",
        ),
        c(
            "image-is-a-directory",
            r#"{"name":"bad","image":"sub","disks":[{"file":"data.img","size_mib":8}]}"#,
            "image: DIR/sub is not a regular file",
        ),
        c(
            "missing-manifest",
            r#"{"name":"bad","image":"root.img","manifest":"other.json","disks":[{"file":"data.img","size_mib":8}]}"#,
            "manifest: cannot read DIR/other.json",
        ),
        Case {
            manifest: Some(r#"{"contract_version":5,"service":{"argv":["/x"]},"new":1}"#),
            ..c(
                "manifest-contract-version",
                r#"{"name":"bad","image":"root.img","disks":[{"file":"data.img","size_mib":8}]}"#,
                "contract_version: the image speaks host contract version 5",
            )
        },
        Case {
            manifest: Some(r#"{"contract_version":1,"service":{"argv":["/x"]}}"#),
            ..c(
                "rlimits-for-a-version-1-image",
                r#"{"name":"bad","image":"root.img","rlimits":{"RLIMIT_NOFILE":{"soft":64,"hard":64}}}"#,
                "rlimits: resource limits need contract version 2, and this contract is version 1 (the image's)",
            )
        },
        Case {
            manifest: Some(r#"{"contract_version":1,"service":{"argv":["/x"],"usr":1}}"#),
            ..c(
                "manifest-unknown-field",
                r#"{"name":"bad","image":"root.img","disks":[{"file":"data.img","size_mib":8}]}"#,
                "root.img.manifest.json: service.usr: unknown field `usr`",
            )
        },
        c(
            "unknown-spec-field",
            r#"{"name":"bad","image":"root.img","memroy_mib":64,"disks":[{"file":"data.img","size_mib":8}]}"#,
            "memroy_mib: unknown field `memroy_mib`",
        ),
        c(
            "future-spec-version",
            r#"{"spec_version":2,"name":"bad","image":"root.img","disks":[{"file":"data.img","size_mib":8}]}"#,
            "spec_version: 2 is not supported",
        ),
        c(
            "bad-name",
            r#"{"name":"Web_1","image":"root.img","disks":[{"file":"data.img","size_mib":8}]}"#,
            "name: 'Web_1' is not an appliance name",
        ),
        c(
            "bad-host-cidr",
            r#"{"name":"bad","image":"root.img","disks":[{"file":"data.img","size_mib":8}],
                "network":{"tap":"hlbad0","host_address":"192.0.2.1/33"}}"#,
            "network.host_address: '192.0.2.1/33': the prefix length must be 0 to 32",
        ),
        c(
            "bad-guest-address",
            r#"{"name":"bad","image":"root.img","disks":[{"file":"data.img","size_mib":8}],
                "network":{"tap":"hlbad1","addresses":["192.0.2.300/24"]}}"#,
            "network.addresses[0]: '192.0.2.300/24' is not an IPv4 CIDR",
        ),
        c(
            "bridge-and-address",
            r#"{"name":"bad","image":"root.img","disks":[{"file":"data.img","size_mib":8}],
                "network":{"tap":"hlbad2","bridge":"br0","host_address":"192.0.2.1/24"}}"#,
            "network.bridge: give either host_address or bridge",
        ),
        c(
            "missing-netns",
            r#"{"name":"bad","image":"root.img","disks":[{"file":"data.img","size_mib":8}],
                "network":{"tap":"hlbad3","netns":"hl-no-such-ns"}}"#,
            "network.netns: namespace 'hl-no-such-ns' does not exist",
        ),
        c(
            "egress-not-an-address",
            r#"{"name":"bad","image":"root.img","disks":[{"file":"data.img","size_mib":8}],
                "network":{"tap":"hlbad1","addresses":["192.0.2.10/24"],
                "egress":[{"to":"example.net","protocol":"tcp","port":443}]}}"#,
            "network.egress[0].to: 'example.net' is not an IPv4 address (expected e.g. '192.0.2.1'); give an address or a CIDR block",
        ),
        c(
            "egress-port-zero",
            r#"{"name":"bad","image":"root.img","disks":[{"file":"data.img","size_mib":8}],
                "network":{"tap":"hlbad1","addresses":["192.0.2.10/24"],
                "egress":[{"to":"192.0.2.1","protocol":"udp","port":0}]}}"#,
            "network.egress[0].port: 0 is not a port; give 1 to 65535",
        ),
        c(
            "reach-unknown",
            r#"{"name":"bad","image":"root.img","disks":[{"file":"data.img","size_mib":8}],
                "network":{"tap":"hlbad1","addresses":["192.0.2.10/24"],"reach":"all"}}"#,
            "network.reach: unknown variant `all`, expected one of `declared`, `open-inbound`, `open-outbound`, `open`",
        ),
        c(
            "missing-required-disk",
            r#"{"name":"bad","image":"root.img"}"#,
            "disks: the image needs a data disk at /data (ext4)",
        ),
        c(
            "disk-in-an-unwritable-place",
            r#"{"name":"bad","image":"root.img","disks":[{"file":"/dev/null/data.img","size_mib":8}]}"#,
            "disks[0].file: cannot create /dev/null/data.img: /dev/null is not a directory",
        ),
        c(
            "disk-directory-missing",
            r#"{"name":"bad","image":"root.img","disks":[{"file":"no/such/dir/data.img","size_mib":8}]}"#,
            "the directory DIR/no/such/dir does not exist",
        ),
        c(
            "disk-without-size",
            r#"{"name":"bad","image":"root.img","disks":[{"file":"data.img"}]}"#,
            "disks[0].size_mib: DIR/data.img does not exist, and without size_mib",
        ),
        c(
            "same-disk-twice",
            r#"{"name":"bad","image":"root.img","disks":[{"file":"data.img","size_mib":8},
                {"file":"data.img","size_mib":8,"mount_point":"/srv"}]}"#,
            "disks[1].file: 'data.img' is attached twice",
        ),
        c(
            "memory-too-small",
            r#"{"name":"bad","image":"root.img","memory_mib":8,"disks":[{"file":"data.img","size_mib":8}]}"#,
            "memory_mib: 8 is out of range",
        ),
        c(
            "bad-env-name",
            r#"{"name":"bad","image":"root.img","env":{"1X":"y"},"disks":[{"file":"data.img","size_mib":8}]}"#,
            "env.1X: '1X' is not a valid variable name",
        ),
        c(
            "syslog-host-not-an-ip",
            r#"{"name":"bad","image":"root.img","disks":[{"file":"data.img","size_mib":8}],
                "syslog":{"transport":"udp","host":"logs.example.net","format":"rfc5424"}}"#,
            "syslog.host: 'logs.example.net' is not an IPv4 address",
        ),
        c(
            "missing-kernel",
            r#"{"name":"bad","image":"root.img","kernel":"/nonexistent/linux","disks":[{"file":"data.img","size_mib":8}]}"#,
            "kernel: /nonexistent/linux not found",
        ),
        c(
            "unknown-user",
            r#"{"name":"bad","image":"root.img","run_as":"hl-no-such-user","disks":[{"file":"data.img","size_mib":8}]}"#,
            "run_as:",
        ),
        c(
            "duplicate-spec-key",
            r#"{"name":"bad","image":"root.img","memory_mib":64,"memory_mib":32,"disks":[{"file":"data.img","size_mib":8}]}"#,
            "spec.json: memory_mib: the key \"memory_mib\" appears twice in one object",
        ),
        Case {
            manifest: Some(
                r#"{"contract_version":1,"service":{"argv":["/x"],"argv":["/y"]},
                "disks":[{"mount_point":"/data","format_if_blank":true}]}"#,
            ),
            ..c(
                "duplicate-manifest-key",
                r#"{"name":"bad","image":"root.img","disks":[{"file":"data.img","size_mib":8}]}"#,
                "root.img.manifest.json: service.argv: the key \"argv\" appears twice",
            )
        },
        c(
            "spec-with-a-bom",
            "\u{feff}{\"name\":\"bad\",\"image\":\"root.img\"}",
            "spec.json: the text starts with a UTF-8 byte-order mark",
        ),
        c(
            "nul-in-a-name-prints-escaped",
            r#"{"name":"a\u0000b","image":"root.img","disks":[{"file":"data.img","size_mib":8}]}"#,
            "name: 'a\\u{0}b' is not an appliance name",
        ),
        c(
            "too-many-files",
            leak(format!(
                r#"{{"name":"bad","image":"root.img","disks":[{{"file":"data.img","size_mib":8}}],"files":[{}]}}"#,
                (0..1100)
                    .map(|i| format!(r#"{{"path":"/run/f{i}","content":"x"}}"#))
                    .collect::<Vec<_>>()
                    .join(",")
            )),
            "files: 1100 files; at most 1024 can be written to /run",
        ),
        c(
            "files-bigger-than-memory",
            leak(format!(
                r#"{{"name":"bad","image":"root.img","memory_mib":32,"disks":[{{"file":"data.img","size_mib":8}}],"files":[{{"path":"/run/big","content":"{}"}}]}}"#,
                "x".repeat(3 << 20)
            )),
            "files[0].content: 1 file takes 16 MiB of guest memory",
        ),
        c(
            "gateway-on-no-subnet",
            r#"{"name":"bad","image":"root.img","disks":[{"file":"data.img","size_mib":8}],
                "network":{"tap":"hlbad1","addresses":["192.0.2.10/24"],
                "routes":[{"destination":"0.0.0.0/0","gateway":"198.51.100.1"}]}}"#,
            "network.routes[0].gateway: '198.51.100.1' is on none of the subnets",
        ),
        c(
            "guest-address-is-the-broadcast",
            r#"{"name":"bad","image":"root.img","disks":[{"file":"data.img","size_mib":8}],
                "network":{"tap":"hlbad1","addresses":["192.0.2.255/24"]}}"#,
            "network.addresses[0]: '192.0.2.255/24' is the broadcast address of 192.0.2.0/24",
        ),
        c(
            "escape-in-the-image-path-prints-escaped",
            r#"{"name":"bad","image":"root\u001b[2J.img","disks":[{"file":"data.img","size_mib":8}]}"#,
            "image: DIR/root\\u{1b}[2J.img cannot be used",
        ),
        Case {
            code: 121,
            ..c(
                "duplicate-name",
                r#"{"name":"busy","image":"root.img","disks":[{"file":"data.img","size_mib":8}]}"#,
                "appliance 'busy' is already running",
            )
        },
        c(
            "needs-itself",
            r#"{"name":"bad","image":"root.img","needs":["dns1","bad"],"disks":[{"file":"data.img","size_mib":8}]}"#,
            "needs[1]: 'bad' is this appliance itself",
        ),
        c(
            "cpu-weight-zero",
            r#"{"name":"bad","image":"root.img","cpu_weight":0,"disks":[{"file":"data.img","size_mib":8}]}"#,
            "cpu_weight: 0 is out of range; give 1 to 10000",
        ),
        c(
            "liveness-timeout",
            r#"{"name":"bad","image":"root.img","liveness":{"check":{"type":"tcp","port":53},"timeout_ms":60000},"disks":[{"file":"data.img","size_mib":8}]}"#,
            "liveness.timeout_ms: 60000 is out of range; use 1 to 10000",
        ),
    ]
}

fn tap_exists(name: &str) -> bool {
    Command::new("ip")
        .args(["link", "show", "dev", name])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn run_case(root: &Path, case: &Case) -> (i32, String) {
    let dir = root.join(case.name);
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("root.img"), vec![0u8; 4096]).unwrap();
    std::fs::write(
        dir.join("root.img.manifest.json"),
        case.manifest.unwrap_or(MANIFEST),
    )
    .unwrap();
    let spec = dir.join("spec.json");
    std::fs::write(&spec, case.spec).unwrap();
    let state = dir.join("state");
    // A launcher that holds the lock of "busy" for the duplicate-name case.
    let _held = (case.name == "duplicate-name").then(|| {
        let d = host_launch::state::Dir::new(&state, "busy");
        std::fs::create_dir_all(&d.path).unwrap();
        host_launch::state::try_lock(&d).unwrap().unwrap()
    });
    let out = Command::new(env!("CARGO_BIN_EXE_host-launch"))
        .arg("run")
        .arg(&spec)
        .env("HOST_LAUNCH_STATE_DIR", &state)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).replace(&dir.display().to_string(), "DIR");
    // Nothing left behind.
    assert!(
        !dir.join("data.img").exists(),
        "{}: a disk file was created",
        case.name
    );
    let leftovers: Vec<PathBuf> = std::fs::read_dir(&state)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    if case.name == "duplicate-name" {
        let busy = state.join("busy");
        assert!(
            !busy.join("state.json").exists(),
            "the running one's state was touched"
        );
    } else {
        assert!(
            leftovers.is_empty(),
            "{}: state left behind: {leftovers:?}",
            case.name
        );
    }
    for i in 0..4 {
        assert!(!tap_exists(&format!("hlbad{i}")), "{}: TAP left", case.name);
    }
    (out.status.code().unwrap_or(-1), stderr)
}

#[test]
fn every_bad_spec_fails_clearly_and_leaves_nothing_behind() {
    let root = std::env::temp_dir().join(format!("hl-bad-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let cases = cases();
    assert!(cases.len() >= 15);
    let mut messages = BTreeSet::new();
    let mut failures = Vec::new();
    for case in &cases {
        let (code, stderr) = run_case(&root, case);
        if code != case.code || !stderr.contains(case.expect) {
            failures.push(format!(
                "{}: exit {code} (want {}), stderr:\n{stderr}\nwant: {}",
                case.name, case.code, case.expect
            ));
        }
        assert!(
            stderr.starts_with("host-launch: "),
            "{}: {stderr}",
            case.name
        );
        messages.insert(stderr);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert_eq!(messages.len(), cases.len(), "each case has its own message");
    std::fs::remove_dir_all(&root).unwrap();
}
