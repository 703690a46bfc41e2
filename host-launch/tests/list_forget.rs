//! `list` (natural order, `--json`, who manages each appliance) and `forget` over state
//! directories made by the test: a running appliance is one whose lock a process holds (here
//! the test itself), as a live launcher holds it. No VM boots.

use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_host-launch");

fn hl(base: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("HOST_LAUNCH_STATE_DIR", base)
        .output()
        .expect("host-launch")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn state(base: &Path, name: &str, phase: &str, systemd: bool) {
    let dir = base.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let mut v = serde_json::json!({
        "name": name, "spec": format!("/etc/host-launch/{name}.json"), "phase": phase,
        "launcher_pid": std::process::id(), "umid": format!("{name}-x"),
        "started_at_ms": 0, "ready": phase == "ready", "exit_code": 0,
    });
    if systemd {
        v["systemd"] = serde_json::json!({
            "unit": format!("host-launch@{name}.service"), "invocation_id": "0123abcd"
        });
    }
    std::fs::write(dir.join("state.json"), v.to_string()).unwrap();
}

#[test]
fn list_is_in_natural_order_and_forget_removes_only_what_is_not_running() {
    let base = std::env::temp_dir().join(format!("hl-list-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    for n in ["d10", "d2", "d1", "d100"] {
        state(&base, n, "exited", false);
    }
    state(&base, "web1", "ready", true);
    let dir = host_launch::state::Dir::new(&base, "web1");
    let _held = host_launch::state::try_lock(&dir).unwrap().expect("lock");

    let text = stdout(&hl(&base, &["list"]));
    let names: Vec<&str> = text
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(names, ["d1", "d2", "d10", "d100", "web1"], "{text}");
    let web = text.lines().find(|l| l.starts_with("web1")).unwrap();
    assert!(
        web.contains("running") && web.ends_with("systemd (host-launch@web1.service)"),
        "{web}"
    );
    assert!(text
        .lines()
        .find(|l| l.starts_with("d1 "))
        .unwrap()
        .ends_with("host-launch"));

    let json: serde_json::Value =
        serde_json::from_str(&stdout(&hl(&base, &["list", "--json"]))).unwrap();
    let rows = json.as_array().unwrap();
    assert_eq!(rows.len(), 5);
    assert_eq!(rows[4]["name"], "web1");
    assert_eq!(rows[4]["running"], true);
    assert_eq!(rows[4]["systemd_unit"], "host-launch@web1.service");
    assert_eq!(rows[0]["status"], "exited");
    assert!(rows[0]["systemd_unit"].is_null());
    // One schema: the same keys in list and status, times in RFC 3339.
    assert_eq!(rows[0]["started_at"], "1970-01-01T00:00:00.000Z");
    assert_eq!(rows[4]["managed_by"], "systemd");
    let status: serde_json::Value =
        serde_json::from_str(&stdout(&hl(&base, &["status", "--format", "json"]))).unwrap();
    let keys =
        |v: &serde_json::Value| -> Vec<String> { v.as_object().unwrap().keys().cloned().collect() };
    assert_eq!(keys(&status[0]), keys(&rows[0]));
    assert_eq!(status.as_array().unwrap().len(), 5);
    let st = stdout(&hl(&base, &["status", "web1"]));
    assert!(
        st.contains("managed:  by systemd: host-launch@web1.service (invocation 0123abcd)"),
        "{st}"
    );

    // One, then all exited; never a running one.
    assert!(hl(&base, &["forget", "d2"]).status.success());
    assert!(!base.join("d2").exists());
    let refused = hl(&base, &["forget", "web1"]);
    assert_eq!(refused.status.code(), Some(121));
    let msg = String::from_utf8_lossy(&refused.stderr);
    assert!(
        msg.contains("is running") && msg.contains("systemctl stop host-launch@web1.service"),
        "{msg}"
    );
    assert_eq!(hl(&base, &["forget", "nope"]).status.code(), Some(126));
    // systemd's appliance is restarted by systemd, never from under its unit.
    let r = hl(&base, &["restart", "web1"]);
    assert_eq!(r.status.code(), Some(121));
    assert!(
        String::from_utf8_lossy(&r.stderr).contains("systemctl restart host-launch@web1.service"),
        "{r:?}"
    );
    // A usage error has its own status, outside the service's range.
    assert_eq!(hl(&base, &["list", "--bogus"]).status.code(), Some(128));
    assert_eq!(hl(&base, &[]).status.code(), Some(128));
    let all = hl(&base, &["forget", "--all-exited"]);
    assert!(all.status.success());
    assert!(
        stdout(&all).contains("3 exited appliance(s) forgotten"),
        "{}",
        stdout(&all)
    );
    let left: Vec<String> = std::fs::read_dir(&base)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["web1"]);
    assert!(base.join("web1/state.json").exists());
    std::fs::remove_dir_all(&base).unwrap();
}
