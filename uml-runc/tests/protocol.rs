//! runc's protocol as conmon drives it, without podman: this test is the subreaper (as
//! conmon is) and waits on the pid `create` wrote to `--pid-file`. The bundle is a CRI pod
//! sandbox (no VM), so the lifecycle itself is what is checked: created → running (start) →
//! stopped (kill SIGTERM, exit status 0 to the waiter) → gone (delete), and the errors a
//! caller gets for a wrong id, a second create, a refused signal and a delete of a running
//! container.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Runs uml-runc; its output goes through files, as the monitor `create` leaves keeps the
/// descriptors it was given (conmon's pipes) open for as long as the container lives.
fn runtime(root: &Path, args: &[&str]) -> Output {
    let out = root.with_extension("out");
    let err = root.with_extension("err");
    let file = |p: &Path| std::fs::File::create(p).expect("an output file");
    let status = Command::new(e2e::build_host("uml-runc", "uml-runc"))
        .arg("--root")
        .arg(root)
        .args(args)
        .stdout(file(&out))
        .stderr(file(&err))
        .status()
        .expect("running uml-runc");
    Output {
        status,
        stdout: std::fs::read(&out).unwrap_or_default(),
        stderr: std::fs::read(&err).unwrap_or_default(),
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn status(root: &Path, id: &str) -> serde_json::Value {
    let o = runtime(root, &["state", id]);
    assert!(o.status.success(), "state: {}", text(&o));
    serde_json::from_slice(&o.stdout).expect("state JSON")
}

#[test]
fn the_lifecycle_as_conmon_sees_it() {
    // SAFETY: prctl on this process only; orphans are then reparented to it, as to conmon.
    let subreaper = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    assert_eq!(subreaper, 0);
    let dir = e2e::TempDir::new("urunc-protocol").expect("temp dir");
    let root = dir.join("state");
    let bundle = dir.join("bundle");
    std::fs::create_dir_all(bundle.join("rootfs")).expect("bundle");
    std::fs::write(
        bundle.join("config.json"),
        serde_json::json!({
            "ociVersion": "1.0.2",
            "process": {"args": ["/pause"], "cwd": "/"},
            "root": {"path": "rootfs"},
            "annotations": {"io.kubernetes.cri.container-type": "sandbox"}
        })
        .to_string(),
    )
    .expect("config.json");
    let pid_file = dir.join("pid");
    let b = bundle.to_str().unwrap_or_default();
    let p = pid_file.to_str().unwrap_or_default();
    let o = runtime(&root, &["create", "--bundle", b, "--pid-file", p, "sb1"]);
    assert!(o.status.success(), "create: {}", text(&o));
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .expect("the pid file")
        .trim()
        .parse()
        .expect("a pid");
    let s = status(&root, "sb1");
    assert_eq!(s["status"], "created");
    assert_eq!(s["pid"], pid);
    assert_eq!(
        s["annotations"]["io.kubernetes.cri.container-type"],
        "sandbox"
    );
    let again = runtime(&root, &["create", "--bundle", b, "sb1"]);
    assert!(!again.status.success() && text(&again).contains("exists already"));
    assert!(runtime(&root, &["start", "sb1"]).status.success());
    assert_eq!(status(&root, "sb1")["status"], "running");
    let o = runtime(&root, &["kill", "sb1", "USR1"]);
    assert!(
        !o.status.success() && text(&o).contains("passes only SIGTERM"),
        "{}",
        text(&o)
    );
    let o = runtime(&root, &["delete", "sb1"]);
    assert!(
        !o.status.success() && text(&o).contains("is running"),
        "{}",
        text(&o)
    );
    assert!(runtime(&root, &["kill", "sb1", "TERM"]).status.success());
    let mut st = 0;
    // SAFETY: waitpid on our (adopted) child, into an int we own.
    let waited = unsafe { libc::waitpid(pid, &mut st, 0) };
    assert_eq!(
        waited, pid,
        "the monitor is the waiter's child, as conmon's"
    );
    assert!(
        libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0,
        "status {st}"
    );
    let until = Instant::now() + Duration::from_secs(5);
    while status(&root, "sb1")["status"] != "stopped" && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(status(&root, "sb1")["status"], "stopped");
    assert!(runtime(&root, &["delete", "sb1"]).status.success());
    assert!(
        !root.join("sb1").exists(),
        "delete left the state directory"
    );
    let o = runtime(&root, &["state", "sb1"]);
    assert!(!o.status.success() && text(&o).contains("does not exist"));
    let o = runtime(&root, &["state", "../x"]);
    assert!(!o.status.success() && text(&o).contains("only letters"));
    let o = runtime(&root, &["exec", "sb1", "sh"]);
    assert!(!o.status.success() && text(&o).contains("not supported"));
    let o = runtime(&root, &["--version"]);
    assert!(text(&o).contains("uml-runc version"));
    let o = runtime(&root, &["features"]);
    let f: serde_json::Value = serde_json::from_slice(&o.stdout).expect("features JSON");
    assert_eq!(f["ociVersionMin"], "1.0.0");
}
