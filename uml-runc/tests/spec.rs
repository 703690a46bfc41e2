//! What the OCI runtime spec asks of a runtime, as a VM can hold to it, through uml-runc's
//! command line without podman (the caller is conmon's stand-in: its stdout, a plain file,
//! is the monitor's, so the guest's console lands in that file). A busybox root, a real
//! UML boot, the container in a new network namespace without a path:
//! - the hooks run on the host, in the spec's order, each with the state on stdin;
//! - the guest has the spec's /dev links and mount order, the config's sysctl, oomScoreAdj
//!   and noNewPrivileges, loopback only;
//! - `state` names the root as `root.path` does (`.`: the bundle itself);
//! - not one of the service's 20,000 lines is lost on the way to the file;
//! - a graceful stop of a guest whose service spins completes within the stop timeout;
//! - what the spec makes an error (a bad `ociVersion`) or a VM cannot do (hooks inside the
//!   container) is refused with the field named.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Lines the service prints at full speed; more than the guest's console queue holds many
/// times over, so a path that drops at a full queue loses some.
const LINES: u32 = 20_000;

struct Fixture {
    dir: e2e::TempDir,
    root: PathBuf,
    init: PathBuf,
}

impl Fixture {
    fn new(label: &str) -> Fixture {
        let dir = e2e::TempDir::new(label).expect("a temporary directory");
        let init = e2e::guest_init().expect("building the static guest-init");
        let root = dir.join("state");
        Fixture { dir, root, init }
    }

    /// Runs uml-runc with `out` as its stdout and stderr (the monitor keeps them).
    fn runtime(&self, args: &[&str], out: &Path) -> Output {
        let file = |p: &Path| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .expect("an output file")
        };
        let before = std::fs::metadata(out).map(|m| m.len()).unwrap_or(0);
        let status = Command::new(env!("CARGO_BIN_EXE_uml-runc"))
            .env("UML_RUNC_GUEST_INIT", &self.init)
            .arg("--root")
            .arg(&self.root)
            .args(args)
            .stdout(file(out))
            .stderr(file(out))
            .status()
            .expect("running uml-runc");
        let all = std::fs::read(out).unwrap_or_default();
        Output {
            status,
            stdout: all.get(before as usize..).unwrap_or_default().to_vec(),
            stderr: Vec::new(),
        }
    }

    fn state(&self, id: &str) -> serde_json::Value {
        let o = self.runtime(&["state", id], &self.dir.join("state.out"));
        assert!(o.status.success(), "state: {}", text(&o));
        serde_json::from_slice(&o.stdout).expect("state JSON")
    }

    fn wait_status(&self, id: &str, want: &str, within: Duration) {
        let until = Instant::now() + within;
        let mut last = serde_json::Value::Null;
        while Instant::now() < until {
            last = self.state(id);
            if last["status"] == want {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("container {id} not {want} within {within:?}: {last}");
    }

    /// A bundle whose root is busybox (the bundle itself: `root.path` is `.`).
    fn bundle(&self, name: &str, script: &str, extra: serde_json::Value) -> PathBuf {
        let bundle = self.dir.join(name);
        let bin = bundle.join("bin");
        std::fs::create_dir_all(&bin).expect("bundle/bin");
        std::fs::copy(busybox(), bin.join("busybox")).expect("copying busybox");
        for applet in [
            "sh", "cat", "cut", "tr", "ls", "seq", "sed", "readlink", "sleep", "grep",
        ] {
            std::os::unix::fs::symlink("busybox", bin.join(applet)).expect("an applet link");
        }
        let mut config = serde_json::json!({
            "ociVersion": "1.0.2",
            "process": {
                "args": ["/bin/sh", "-c", script],
                "env": ["PATH=/bin"],
                "cwd": "/",
                "user": {"uid": 0, "gid": 0}
            },
            "root": {"path": "."},
            "hostname": name,
            "linux": {"namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "mount"}]}
        });
        merge(&mut config, extra);
        std::fs::write(bundle.join("config.json"), config.to_string()).expect("config.json");
        bundle
    }
}

fn merge(into: &mut serde_json::Value, extra: serde_json::Value) {
    match (into, extra) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

fn busybox() -> PathBuf {
    let p = PathBuf::from("/bin/busybox");
    let is_static = std::fs::read(&p)
        .ok()
        .and_then(|b| e2e::elf_has_interpreter(&b).ok())
        == Some(false);
    assert!(
        is_static,
        "a static /bin/busybox is missing: scripts/setup installs busybox-static"
    );
    p
}

fn text(o: &Output) -> String {
    format!("{}: {}", o.status, String::from_utf8_lossy(&o.stdout))
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

/// A hook that appends its name, then its stdin, to `log`.
fn hook(name: &str, log: &Path) -> serde_json::Value {
    serde_json::json!({
        "path": "/bin/sh",
        "args": ["sh", "-c", format!("echo {name} >> {l}; cat >> {l}; echo >> {l}", l = log.display())],
        "timeout": 10
    })
}

#[test]
fn a_vm_holds_to_the_spec_hooks_defaults_sysctl_and_every_line() {
    let f = Fixture::new("urunc-spec");
    let hooks_log = f.dir.join("hooks.log");
    let script = format!(
        "echo links $(for l in fd stdin stdout stderr ptmx; do readlink /dev/$l; done | tr '\\n' ' '); \
         echo mounts $(cut -d' ' -f5 /proc/self/mountinfo | tr '\\n' ' '); \
         echo ip_forward $(cat /proc/sys/net/ipv4/ip_forward); \
         echo interfaces $(ls /sys/class/net | tr '\\n' ' '); \
         echo oom_score_adj $(cat /proc/self/oom_score_adj); \
         echo $(grep NoNewPrivs /proc/self/status); \
         seq 1 {LINES} | sed 's/^/line /'; echo all printed"
    );
    let hooks = serde_json::json!({
        "prestart": [hook("prestart", &hooks_log)],
        "createRuntime": [hook("createRuntime", &hooks_log)],
        "poststart": [hook("poststart", &hooks_log)],
        "poststop": [hook("poststop", &hooks_log)]
    });
    let bundle = f.bundle(
        "spec1",
        &script,
        serde_json::json!({
            "hooks": hooks,
            "annotations": {"org.example.test": "hooks"},
            "process": {"oomScoreAdj": -300, "noNewPrivileges": true},
            "linux": {"sysctl": {"net.ipv4.ip_forward": "1"}}
        }),
    );
    let console = f.dir.join("console.out");
    let o = f.runtime(&["create", "--bundle", path(&bundle), "spec1"], &console);
    assert!(o.status.success(), "create: {}", text(&o));
    let created = f.state("spec1");
    assert_eq!(created["status"], "created");
    assert_eq!(created["rootfs"], path(&bundle), "root.path is the bundle");
    assert_eq!(created["bundle"], path(&bundle));
    let o = f.runtime(&["start", "spec1"], &console);
    assert!(o.status.success(), "start: {}", text(&o));
    // The service prints, exits 0, and the VM powers off: the container is stopped.
    f.wait_status("spec1", "stopped", Duration::from_secs(120));
    let o = f.runtime(&["delete", "spec1"], &f.dir.join("delete.out"));
    assert!(o.status.success(), "delete: {}", text(&o));

    let out =
        String::from_utf8_lossy(&std::fs::read(&console).expect("the console file")).into_owned();
    let shown = || {
        out.lines()
            .filter(|l| !l.contains("line "))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let said = |key: &str| {
        out.lines()
            .find_map(|l| {
                l.split_once(&format!("{key} "))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| panic!("no {key} line in the console:\n{}", shown()))
    };
    assert_eq!(
        said("links"),
        "/proc/self/fd /proc/self/fd/0 /proc/self/fd/1 /proc/self/fd/2 pts/ptmx"
    );
    let mounts: Vec<String> = said("mounts").split(' ').map(str::to_string).collect();
    let at = |m: &str| {
        mounts
            .iter()
            .position(|x| x == m)
            .unwrap_or_else(|| panic!("{m} not mounted: {mounts:?}"))
    };
    // /dev is the kernel's devtmpfs, there before init; the rest in the spec's order.
    assert!(at("/proc") < at("/dev/pts"), "{mounts:?}");
    assert!(
        at("/dev/pts") < at("/dev/shm")
            && at("/dev/shm") < at("/dev/mqueue")
            && at("/dev/mqueue") < at("/sys"),
        "{mounts:?}"
    );
    assert_eq!(said("ip_forward"), "1", "linux.sysctl reached the guest");
    assert_eq!(said("oom_score_adj"), "-300", "process.oomScoreAdj");
    assert_eq!(said("NoNewPrivs:"), "1", "process.noNewPrivileges");
    assert_eq!(
        said("interfaces"),
        "lo",
        "a new network namespace: loopback only"
    );
    // Every line, in order, none dropped.
    let mut want = 1u32;
    for l in out.lines() {
        if let Some(n) = l
            .rsplit_once("line ")
            .and_then(|(_, n)| n.trim().parse::<u32>().ok())
        {
            assert_eq!(n, want, "line {want} lost (next seen: {n})");
            want += 1;
        }
    }
    assert_eq!(want, LINES + 1, "lines lost at the end:\n{}", shown());
    assert!(out.contains("all printed"), "{}", shown());
    assert!(!out.contains("dropped"), "{}", shown());

    // The hooks: in the spec's order, each with the state as it was then.
    let log = std::fs::read_to_string(&hooks_log).expect("the hooks ran");
    let mut lines = log.lines().filter(|l| !l.is_empty());
    let mut seen = Vec::new();
    while let (Some(name), Some(json)) = (lines.next(), lines.next()) {
        let s: serde_json::Value = serde_json::from_str(json)
            .unwrap_or_else(|e| panic!("{name}'s stdin is not the state ({e}): {json}"));
        assert_eq!(s["id"], "spec1", "{name}: {s}");
        assert_eq!(s["bundle"], path(&bundle), "{name}: {s}");
        assert_eq!(s["annotations"]["org.example.test"], "hooks", "{name}: {s}");
        if name != "poststop" {
            assert_eq!(s["pid"], created["pid"], "{name}: {s}");
        }
        seen.push((
            name.to_string(),
            s["status"].as_str().unwrap_or("").to_string(),
        ));
    }
    let seen: Vec<(&str, &str)> = seen.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    assert_eq!(
        seen,
        [
            ("prestart", "created"),
            ("createRuntime", "created"),
            ("poststart", "running"),
            ("poststop", "stopped")
        ]
    );
}

#[test]
fn a_graceful_stop_of_a_busy_guest_completes_within_the_stop_timeout() {
    let f = Fixture::new("urunc-stop");
    // The service spins on the guest's CPU and ignores nothing: SIGTERM ends it.
    let bundle = f.bundle("stop1", "while :; do :; done", serde_json::json!({}));
    let out = f.dir.join("stop.out");
    let o = f.runtime(&["create", "--bundle", path(&bundle), "stop1"], &out);
    assert!(o.status.success(), "create: {}", text(&o));
    assert!(f.runtime(&["start", "stop1"], &out).status.success());
    // At once, while the VM boots (the race the spec's kill must survive), and with the
    // host's cores busy too.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load: Vec<_> = (0..2)
        .map(|_| {
            let stop = std::sync::Arc::clone(&stop);
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            })
        })
        .collect();
    let o = f.runtime(&["kill", "stop1", "TERM"], &out);
    assert!(o.status.success(), "kill: {}", text(&o));
    // The default stop timeout (10 s) is what podman waits before its SIGKILL.
    let until = Instant::now() + Duration::from_secs(10);
    while f.state("stop1")["status"] != "stopped" && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in load {
        let _ = t.join();
    }
    let log = String::from_utf8_lossy(&std::fs::read(&out).unwrap_or_default()).into_owned();
    assert_eq!(
        f.state("stop1")["status"],
        "stopped",
        "not stopped 10 s after kill TERM: {log}"
    );
    assert!(
        !log.contains("killing the VM") && !log.contains("Restarting system"),
        "the stop rebooted the guest or had to kill it: {log}"
    );
    assert!(f.runtime(&["delete", "stop1"], &out).status.success());
}

#[test]
fn what_the_spec_makes_an_error_is_refused_naming_the_field() {
    let f = Fixture::new("urunc-refuse");
    let out = f.dir.join("refuse.out");
    let cases = [
        (
            serde_json::json!({"ociVersion": "invalid"}),
            "ociVersion: \"invalid\" is not a version",
        ),
        (
            serde_json::json!({"hooks": {"createContainer": [{"path": "/bin/true"}]}}),
            "hooks.createContainer[0] (/bin/true)",
        ),
        (
            serde_json::json!({"linux": {"namespaces": [{"type": "pid"}]}}),
            "shares the host's network",
        ),
    ];
    for (i, (extra, want)) in cases.into_iter().enumerate() {
        let bundle = f.bundle(&format!("bad{i}"), "true", extra);
        let o = f.runtime(
            &["create", "--bundle", path(&bundle), &format!("bad{i}")],
            &out,
        );
        assert!(
            !o.status.success() && text(&o).contains(want),
            "{want}: {}",
            text(&o)
        );
        assert!(
            !f.root.join(format!("bad{i}")).exists(),
            "a refused create left state"
        );
    }
}
