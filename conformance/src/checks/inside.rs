//! The probe as the service, with a contract that uses every setting: hostname, IPv4 and IPv6
//! addresses and routes, resolver, sysctls, files, extra, a data disk that already holds a
//! file system, user, groups, capabilities, workdir, environment, tcp readiness, a
//! stop signal of its own and remote syslog (UDP, RFC 5424, facility local3).

use super::{after, contract, ping, probe_lines, probe_value, ready_listening, spawn, stop, BOOT};
use crate::error::{Error, ToolError};
use crate::lab::{debugfs, superblock, Lab, FAR_V4, FAR_V6, GUEST_V4, GUEST_V6, PROBE_PORT};
use crate::report::{one_line, Results};
use crate::syslog;
use ::lab::RunningVm;
use serde_json::{json, Value};
use std::path::Path;

const HOSTNAME: &str = "conf-probe";
const NOTE: &str = "/run/conformance/note.txt";
/// The guest's MAC address: the host side sees it in its neighbour table after a ping.
const MAC: &str = "52:54:00:c0:ff:ee";
/// Only CAP_NET_BIND_SERVICE (bit 10).
const ONE_CAP: &str = "0000000000000400";
/// The probe's RLIMIT_NOFILE (soft, hard) in a version 2 contract.
const NOFILE: (u64, u64) = (3000, 6000);
/// The probe's oom_score_adj in a version 3 contract: negative, which needs privilege.
const OOM_SCORE_ADJ: i32 = -250;

const LABEL: &str = "probe";

pub fn check(lab: &Lab, r: &mut Results) -> Result<(), Error> {
    let disk_mp = lab.manifest.disks.first().map(|d| d.mount_point.clone());
    let env = probe_env(disk_mp.as_deref());
    let extra = json!({"kit": "conformance", "list": [1, 2, 3]});
    let mut vm = lab.vm();
    let mut mounts_json = json!({});
    let disk = match &disk_mp {
        Some(mp) => {
            let path = lab.filled_disk("probe-disk.img", (1234, 1235))?;
            mounts_json["disks"] = json!([{"device": vm.disk_name(0), "mount_point": mp, "options": ["noatime"],
                "format_if_blank": true, "owner_uid": 1234, "owner_gid": 1235}]);
            vm = vm.disk(&path, false);
            Some(path)
        }
        None => None,
    };
    let (log, remote) = syslog::receiver(&lab.ns, "udp", 5514, "rfc5424", "local3")?;
    let uuid_before = disk.as_ref().map(|d| superblock(d, "Filesystem UUID"));
    let c = contract(&lab.contract(HOSTNAME, json!({
        "network": {
            "interfaces": [{"name": "vec0", "mac": MAC, "mtu": 1400, "addresses": [format!("{GUEST_V4}/24"), format!("{GUEST_V6}/64")]}],
            "routes": [{"destination": "198.51.100.0/24", "gateway": "192.0.2.1"},
                       {"destination": "2001:db8:5::/64", "gateway": "2001:db8::1"}],
            "dns_servers": ["192.0.2.1", "2001:db8::1"],
            "search_domains": ["example.test", "corp.example.test"]
        },
        "logging": {"remote": remote},
        "service": probe_service(lab, &env),
        "files": [lab.probe_file(), {"path": NOTE, "mode": "0640", "uid": 1234, "gid": 1235, "content": "note for the probe\n"}],
        "sysctl": {"net.ipv4.ip_forward": "1", "net.ipv6.conf.all.forwarding": "1"},
        "extra": extra,
        "mounts": mounts_json,
    })))?;
    let running = spawn(&vm.contract_device(&c))?;
    while_running(lab, r, &running);
    let (o, _) = stop(running, BOOT)?;
    after(r, LABEL, &o, disk.as_slice());
    let lines = probe_lines(&o.console);
    let logged = log.messages();
    let seen = Seen {
        probe_logged: logged.iter().any(|m| m.contains("=probe= ")),
        env: &env,
        extra: &extra,
        disk: disk_mp.as_deref(),
        version: lab.manifest.contract_version,
    };
    inside_view(r, &lines, &seen);
    arrived(r, &logged, !lines.is_empty());
    match (&disk, &disk_mp) {
        (Some(d), Some(mp)) => disk_after(r, d, mp, uuid_before.as_ref()),
        _ => {
            for id in ["C-DISK-2", "C-DISK-3"] {
                r.skip(
                    id,
                    "the manifest declares no data disk (no mount point to use)",
                );
            }
        }
    }
    Ok(())
}

/// The probe's `PROBE_*` settings: what it reports and where it writes.
fn probe_env(disk_mp: Option<&str>) -> Value {
    let mounts: Vec<String> = disk_mp.iter().map(|m| m.to_string()).collect();
    let mut env = json!({
        "PROBE_PORT": PROBE_PORT.to_string(), "PROBE_LISTEN_DELAY_MS": "1500",
        "PROBE_SYSCTLS": "net.ipv4.ip_forward,net.ipv6.conf.all.forwarding,net.ipv6.conf.vec0.accept_ra",
        "PROBE_FILE": NOTE, "PROBE_MOUNTS": mounts.join(","), "PROBE_IFACE": "vec0",
    });
    if let Some(mp) = disk_mp {
        env["PROBE_WRITE"] = format!("{mp}/probe-wrote").into();
    }
    env
}

/// The probe's service with every setting the image's contract version has.
fn probe_service(lab: &Lab, env: &Value) -> Value {
    let mut service = lab.probe_service(env.clone(), json!({
        "uid": 1234, "gid": 1235, "groups": [1236, 1237], "capabilities": ["CAP_NET_BIND_SERVICE"],
        "workdir": "/run/conformance", "stop_signal": "SIGUSR1", "stop_timeout_ms": 5000,
        "readiness": {"type": "tcp", "port": PROBE_PORT},
    }));
    if lab.manifest.contract_version >= contract::RLIMITS_SINCE {
        // Above a kernel's default hard limit (4096): set while the init is still root.
        service["rlimits"] = json!({"RLIMIT_NOFILE": {"soft": NOFILE.0, "hard": NOFILE.1}});
    }
    if lab.manifest.contract_version >= contract::OOM_SCORE_SINCE {
        service["oom_score_adj"] = json!(OOM_SCORE_ADJ);
    }
    service
}

/// From outside while it runs: readiness, the addresses and routes (pings), the MAC.
fn while_running(lab: &Lab, r: &mut Results, running: &RunningVm) {
    r.check(
        "C-WIRE-2",
        true,
        format!("{LABEL}: contract on the config device"),
    );
    if !ready_listening(
        lab,
        r,
        running,
        "C-RDY-1",
        LABEL,
        " (the probe listens 1.5 s after its start)",
    ) {
        r.check(
            "C-WIRE-2",
            false,
            format!("{LABEL}: never ready on the config device"),
        );
    }
    for (id, from, to) in [
        ("C-NET-1", None, GUEST_V4),
        ("C-NET-2", None, GUEST_V6),
        ("C-NET-3", Some(FAR_V4), GUEST_V4),
        ("C-NET-4", Some(FAR_V6), GUEST_V6),
    ] {
        let (ok, ev) = ping(lab, from, to);
        r.check(id, ok, format!("{LABEL}: {ev}"));
    }
    // The MAC from outside: the neighbour entry the pings left on the host side.
    let neigh = lab
        .ns
        .output("ip", &["neigh", "show", GUEST_V4])
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    r.check(
        "C-NET-1",
        neigh.contains(MAC),
        format!("{LABEL}: host side: {}", one_line(&neigh, 120)),
    );
}

/// The data disk after the stop: its file system kept, the service's write on it.
fn disk_after(
    r: &mut Results,
    d: &Path,
    mp: &str,
    uuid_before: Option<&Result<String, ToolError>>,
) {
    let marker = debugfs(d, "cat /kit-marker").unwrap_or_default();
    let uuid = superblock(d, "Filesystem UUID");
    let same_uuid = match (uuid_before, &uuid) {
        (Some(Ok(a)), Ok(b)) => a == b,
        (Some(Err(a)), Err(b)) => a.to_string() == b.to_string(),
        _ => false,
    };
    let kept = marker.contains("made by the kit") && same_uuid;
    r.check("C-DISK-2", kept, format!("{LABEL}: {mp} with a file system and format_if_blank: marker {}, UUID {} before, {} after", if marker.contains("made by the kit") { "kept" } else { "gone" }, uuid_before.map_or("None".into(), |f| format!("Some({})", shown(f))), shown(&uuid)));
    let wrote = debugfs(d, "cat /probe-wrote").unwrap_or_default();
    r.check(
        "C-DISK-3",
        wrote.contains("written by the probe"),
        format!(
            "{LABEL}: the service's write {} on the disk after the stop",
            if wrote.contains("written by") {
                "is"
            } else {
                "is not"
            }
        ),
    );
}

/// A superblock field as the evidence shows it: `Ok("...")` or `Err("...")`.
fn shown(field: &Result<String, ToolError>) -> String {
    match field {
        Ok(v) => format!("Ok({v:?})"),
        Err(e) => format!("Err({:?})", e.to_string()),
    }
}

/// What the kit gave the probe, to compare with what it saw.
struct Seen<'a> {
    /// Whether probe lines reached the log host.
    probe_logged: bool,
    env: &'a Value,
    extra: &'a Value,
    disk: Option<&'a str>,
    /// The image's contract version.
    version: u32,
}

/// The requirements only the probe's report shows.
const PROBED: [&str; 17] = [
    "C-HOST-1",
    "C-DNS-1",
    "C-DNS-2",
    "C-SYSCTL-1",
    "C-FILE-1",
    "C-FILE-2",
    "C-EXTRA-1",
    "C-SVC-1",
    "C-SVC-2",
    "C-SVC-3",
    "C-SVC-4",
    "C-SVC-5",
    "C-SVC-6",
    "C-NET-5",
    "C-NET-6",
    "C-STOP-1",
    "C-ORDER-1",
];

/// The probe's report, read: a value by key, and whether everything checked at the start was
/// there (C-ORDER-1).
struct View<'a> {
    lines: &'a [(String, String)],
    order: bool,
}

impl View<'_> {
    fn v(&self, key: &str, prefix: &str) -> String {
        probe_value(self.lines, key, prefix).unwrap_or_else(|| "(not reported)".into())
    }

    fn ck(&mut self, r: &mut Results, id: &'static str, ok: bool, ev: String, at_start: bool) {
        self.order &= !at_start || ok;
        r.check(id, ok, format!("probe: {}", one_line(&ev, 300)));
    }
}

/// What the probe saw inside.
fn inside_view(r: &mut Results, lines: &[(String, String)], seen: &Seen<'_>) {
    if lines.is_empty() {
        no_probe(r, seen.probe_logged);
        return;
    }
    let mut view = View { lines, order: true };
    r.check(
        "C-FILE-2",
        true,
        "probe: a base64 contract file of mode 0755 ran as the service",
    );
    let stderr = lines.iter().any(|(k, v)| k == "stderr" && v == "ok");
    r.check(
        "C-LOG-1",
        stderr,
        format!(
            "probe: {} of its lines on the console, its stderr line {}",
            lines.len(),
            if stderr { "too" } else { "missing" }
        ),
    );
    network_view(r, &mut view);
    files_view(r, &mut view, seen.extra);
    service_view(r, &mut view, seen.env);
    limits_view(r, &mut view, seen.version);
    runtime_view(r, &mut view, seen.disk);
    let order = view.order;
    r.check(
        "C-ORDER-1",
        order,
        format!(
            "probe: settings, files and disks {} when the service started",
            if order {
                "were all there"
            } else {
                "were not all there"
            }
        ),
    );
}

/// No probe line on the console: its checks are skipped (or its log went elsewhere).
fn no_probe(r: &mut Results, probe_logged: bool) {
    if probe_logged {
        r.check(
            "C-LOG-1",
            false,
            "probe: its lines reached the log host but not the console",
        );
    } else {
        r.skip(
            "C-LOG-1",
            "probe: nothing of it on the console or at the log host",
        );
    }
    for id in PROBED
        .iter()
        .chain(["C-DISK-3", "C-RLIMIT-1", "C-OOM-1"].iter())
    {
        r.skip(id, "the probe did not run or its output did not reach the console (optional for images that cannot run it)");
    }
}

/// The interface, hostname, resolver, hosts and sysctls.
fn network_view(r: &mut Results, view: &mut View<'_>) {
    let iface = view.v("iface", "vec0 ");
    let ok = iface == format!("mtu=1400 address={MAC}");
    view.ck(r, "C-NET-1", ok, format!("vec0 {iface}"), true);
    let host = view.v("hostname", "");
    let ok = host == HOSTNAME;
    view.ck(r, "C-HOST-1", ok, format!("hostname {host}"), true);
    let resolv = view.v("resolv", "");
    let ns4 = resolv.find("nameserver 192.0.2.1");
    let ns6 = resolv.find("nameserver 2001:db8::1");
    let ok = matches!((ns4, ns6), (Some(a), Some(b)) if a < b)
        && resolv.contains("search example.test corp.example.test");
    view.ck(
        r,
        "C-DNS-1",
        ok,
        format!("/etc/resolv.conf: {resolv}"),
        true,
    );
    let hosts = view.v("hosts", "");
    let ok = hosts.contains("localhost") && hosts.contains(HOSTNAME);
    view.ck(r, "C-DNS-2", ok, format!("/etc/hosts: {hosts}"), true);
    let s4 = view.v("sysctl", "net.ipv4.ip_forward=");
    let s6 = view.v("sysctl", "net.ipv6.conf.all.forwarding=");
    let ev = format!("ip_forward={s4}, ipv6 forwarding={s6}");
    view.ck(r, "C-SYSCTL-1", s4 == "1" && s6 == "1", ev, true);
    // vec0 has IPv6 here: it keeps it, without router advertisements.
    let ra = view.v("sysctl", "net.ipv6.conf.vec0.accept_ra=");
    let ev = format!("an interface with IPv6: accept_ra={ra}");
    view.ck(r, "C-NET-6", ra == "0", ev, true);
}

/// The contract file and extra.json.
fn files_view(r: &mut Results, view: &mut View<'_>, extra: &Value) {
    let file = view.v("file", &format!("{NOTE} "));
    let ok = file == "mode=640 uid=1234 gid=1235 content=note for the probe";
    view.ck(r, "C-FILE-1", ok, format!("{NOTE}: {file}"), true);
    let got_extra = view.v("extra", "");
    let same = contract::json::parse_value(got_extra.as_bytes())
        .ok()
        .as_ref()
        == Some(extra);
    let ev = format!("/run/contract/extra.json: {got_extra}");
    view.ck(r, "C-EXTRA-1", same, ev, true);
}

/// argv, environment, credentials, capabilities, workdir.
fn service_view(r: &mut Results, view: &mut View<'_>, env: &Value) {
    let argv = view.v("argv", "");
    let ok = argv == crate::lab::PROBE_PATH;
    view.ck(r, "C-SVC-1", ok, format!("argv {argv}"), false);
    let mut want: Vec<&str> = env
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    want.sort();
    let keys = view.v("env", "");
    let ev = format!("environment {keys}, contract {}", want.join(","));
    view.ck(r, "C-SVC-2", keys == want.join(","), ev, false);
    let (uid, gid, groups) = (
        view.v("status", "Uid:"),
        view.v("status", "Gid:"),
        view.v("status", "Groups:"),
    );
    let ok = uid == "1234 1234 1234 1234" && gid == "1235 1235 1235 1235" && groups == "1236 1237";
    let ev = format!("Uid {uid}, Gid {gid}, Groups {groups}");
    view.ck(r, "C-SVC-3", ok, ev, false);
    let caps: Vec<String> = ["CapEff:", "CapPrm:", "CapBnd:"]
        .iter()
        .map(|k| view.v("status", k))
        .collect();
    let ok = caps.iter().all(|c| c == ONE_CAP);
    let ev = format!("effective, permitted, bounding: {caps:?}");
    view.ck(r, "C-SVC-4", ok, ev, false);
    let cwd = view.v("cwd", "");
    let ok = cwd == "/run/conformance";
    view.ck(r, "C-SVC-5", ok, format!("cwd {cwd}"), false);
}

/// The resource limit and oom_score_adj, where the image's contract version has them.
fn limits_view(r: &mut Results, view: &mut View<'_>, version: u32) {
    if version >= contract::RLIMITS_SINCE {
        let nofile = view.v("limits", "nofile");
        let ok = nofile == format!("{} {}", NOFILE.0, NOFILE.1);
        let ev = format!("RLIMIT_NOFILE {nofile}, contract {} {}", NOFILE.0, NOFILE.1);
        view.ck(r, "C-RLIMIT-1", ok, ev, false);
    } else {
        r.skip(
            "C-RLIMIT-1",
            "the image speaks contract version 1, which has no resource limits",
        );
    }
    if version >= contract::OOM_SCORE_SINCE {
        let adj = view.v("oom_score_adj", "");
        let ok = adj == OOM_SCORE_ADJ.to_string();
        let ev = format!("oom_score_adj {adj}, contract {OOM_SCORE_ADJ}");
        view.ck(r, "C-OOM-1", ok, ev, false);
    } else {
        r.skip(
            "C-OOM-1",
            format!("the image speaks contract version {version}, which has no oom_score_adj"),
        );
    }
}

/// no_new_privs, loopback, the stop signal, the data disk's mount and the write on it.
fn runtime_view(r: &mut Results, view: &mut View<'_>, disk: Option<&str>) {
    let nnp = view.v("status", "NoNewPrivs:");
    view.ck(r, "C-SVC-6", nnp == "1", format!("NoNewPrivs {nnp}"), false);
    let lo = view.v("loopback", "");
    let ev = format!("connect to 127.0.0.1:{PROBE_PORT}: {lo}");
    view.ck(r, "C-NET-5", lo == "ok", ev, false);
    let sig = view.v("signal", "");
    let ev = format!("stop signal SIGUSR1 (10): the probe got {sig}");
    view.ck(r, "C-STOP-1", sig == "10 stopping", ev, false);
    if let Some(mp) = disk {
        let m = view.v("mount", &format!("{mp} "));
        let wrote = view.v("wrote", "");
        let ok = m.starts_with("ext4 ") && m.contains("noatime") && !wrote.contains("(not");
        view.ck(r, "C-DISK-3", ok, format!("{mp}: {m}; wrote {wrote}"), true);
    }
}

/// What arrived at the UDP RFC 5424 receiver.
fn arrived(r: &mut Results, logged: &[String], probe_ran: bool) {
    let label = "probe, udp rfc5424 local3";
    let first = logged.iter().find(|m| m.contains("=probe= start 1"));
    match first {
        None if !probe_ran && logged.is_empty() => {
            for id in ["C-LOG-2", "C-LOG-4", "C-LOG-6", "C-ORDER-2"] {
                r.skip(
                    id,
                    format!("{label}: the probe did not run and nothing arrived"),
                );
            }
        }
        None => {
            let ev = format!(
                "{label}: the service's first line did not arrive ({} messages, e.g. {})",
                logged.len(),
                one_line(logged.first().map(String::as_str).unwrap_or(""), 160)
            );
            for id in ["C-LOG-2", "C-LOG-4", "C-ORDER-2"] {
                r.check(id, false, &ev);
            }
        }
        Some(m) => {
            let parsed = syslog::parse_5424(m);
            r.check(
                "C-LOG-2",
                parsed.is_some(),
                format!("{label}: {}", one_line(m, 200)),
            );
            r.check(
                "C-LOG-4",
                true,
                format!("{label}: one datagram per message"),
            );
            r.check(
                "C-ORDER-2",
                true,
                format!("{label}: the service's first line arrived"),
            );
            let ok = parsed
                .as_ref()
                .is_some_and(|p| p.facility == 19 && p.hostname == HOSTNAME && p.app == "probe");
            r.check("C-LOG-6", ok, format!("{label}: {parsed:?}"));
        }
    }
}
