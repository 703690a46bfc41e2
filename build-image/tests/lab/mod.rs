//! A test network for the appliance images (the appliance tests, the upgrade test and its
//! benchmark): a temporary directory (images, disks, specs, host-launch's state) and a network
//! namespace whose host side is 192.0.2.1/24, either on each appliance's TAP device or on a
//! bridge all of them join; appliances run through `host-launch` with the lab's state
//! directory, and those started with `host-launch start` or `upgrade` are stopped, and the
//! namespace removed, on drop. `dns` adds the DNS appliance in versions on a data disk.
//!
//! Needs root (network namespace, TAP devices).
#![allow(dead_code)] // each test binary uses a part

pub mod classes;
pub mod dns;

use e2e::launch::{host_launch_exe, Launch};
use e2e::{NetNs, TempDir};
use serde_json::Value;
use std::cell::RefCell;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

#[allow(unused_imports)] // not every binary that includes the lab checks a disk
pub use e2e::host::assert_fsck_clean;

/// The host side of every test network.
pub const HOST: &str = "192.0.2.1";

pub struct Lab {
    pub dir: TempDir,
    pub ns: NetNs,
    /// The bridge in the namespace the appliances join, if any.
    pub bridge: Option<String>,
    /// Appliances started through the lab, stopped on drop.
    started: RefCell<Vec<String>>,
}

impl Lab {
    /// A lab whose host address is on `bridge` (created in the namespace), or else on each
    /// appliance's TAP device.
    pub fn new(label: &str, bridge: Option<&str>) -> Lab {
        assert!(
            // SAFETY: geteuid has no preconditions.
            unsafe { libc::geteuid() } == 0,
            "this test needs root (network namespace and TAP device)"
        );
        let dir = TempDir::new(&format!("lab-{label}")).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let ns = NetNs::new().unwrap_or_else(|e| panic!("{e} (this test needs root)"));
        if let Some(b) = bridge {
            ns.add_bridge(b, &[&format!("{HOST}/24")])
                .unwrap_or_else(|e| panic!("bridge {b}: {e}"));
        }
        Lab {
            dir,
            ns,
            bridge: bridge.map(str::to_string),
            started: RefCell::new(Vec::new()),
        }
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }

    /// Builds the checked-in recipe `build-image/recipes/<name>.json` into `DIR/<name>.img`;
    /// returns the image.
    pub fn image(&self, name: &str) -> PathBuf {
        let path = recipes_dir().join(format!("{name}.json"));
        let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        self.build_recipe(
            name,
            &text,
            &recipes_dir().join(format!("{name}.lock.json")),
        )
    }

    /// Builds a recipe (JSON) into `DIR/<name>.img` with the lock of the lab's DNS recipes
    /// (modified copies of `recipes/dns.json` with a data disk, so dnsmasq-base and
    /// e2fsprogs: `tests/lab/dns-disk.lock.json`); returns the image.
    pub fn build(&self, recipe: &Value) -> PathBuf {
        let lock = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lab/dns-disk.lock.json");
        self.build_locked(recipe, &lock)
    }

    /// Builds a recipe (JSON) into `DIR/<name>.img` with the lock `lock`.
    pub fn build_locked(&self, recipe: &Value, lock: &Path) -> PathBuf {
        let name = recipe["name"].as_str().unwrap();
        self.build_recipe(name, recipe.to_string().as_bytes(), lock)
    }

    fn build_recipe(&self, name: &str, text: &[u8], lock: &Path) -> PathBuf {
        let out = self.join(&format!("{name}.img"));
        let r = build_image::parse(text).unwrap_or_else(|e| panic!("recipe {name}: {e:#?}"));
        let init = e2e::guest_init().unwrap_or_else(|e| panic!("building guest-init: {e}"));
        let mut o = build_image::Options::new(&out, init);
        o.base_dir = recipes_dir();
        o.lock = Some(lock.to_path_buf());
        build_image::build(&r, &o).unwrap_or_else(|e| panic!("building {name}: {e}"));
        out
    }

    /// The trust policy host-launch uses in this lab: `DIR/trust.json` (no such file, so no
    /// policy, unless a test writes one), never the host's.
    pub fn trust_file(&self) -> PathBuf {
        self.join("trust.json")
    }

    /// A command run inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        self.ns
            .command(program)
            .unwrap_or_else(|e| panic!("{program} in the lab's namespace: {e}"))
    }

    /// Runs a command inside the namespace and returns its standard output; it must exit 0.
    pub fn run(&self, args: &[&str]) -> String {
        let out = self
            .ns
            .run(args[0], &args[1..])
            .unwrap_or_else(|e| panic!("{args:?}: {e}"));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The `network` of a spec: the guest's address, its TAP device on the lab's bridge or
    /// with the host address, a default route to the host side.
    pub fn network(&self, tap: &str, guest: &str) -> Value {
        let mut n = serde_json::json!({
            "tap": tap, "netns": self.ns.name(),
            "addresses": [format!("{guest}/24")],
            "routes": [{"destination": "0.0.0.0/0", "gateway": HOST}]
        });
        match &self.bridge {
            Some(b) => n["bridge"] = b.as_str().into(),
            None => n["host_address"] = format!("{HOST}/24").into(),
        }
        n
    }

    /// Writes a spec into the lab directory; returns its path.
    pub fn write_spec(&self, spec: &Value) -> PathBuf {
        let name = spec["name"].as_str().expect("spec name");
        let path = self.join(&format!("{name}.json"));
        std::fs::write(&path, serde_json::to_string_pretty(spec).unwrap()).unwrap();
        path
    }

    /// `host-launch ARGS` with the lab's state directory; the appliance of a `start` or
    /// `upgrade` is stopped on drop.
    pub fn host_launch(&self, args: &[&str]) -> Output {
        self.host_launch_of(&host_launch_exe(), args)
    }

    /// [`Lab::host_launch`] with another build of host-launch (a benchmark's `--versus`).
    pub fn host_launch_of(&self, exe: &Path, args: &[&str]) -> Output {
        if let ["start" | "upgrade", spec, ..] = args {
            let name = spec_name(Path::new(spec));
            let mut started = self.started.borrow_mut();
            if !started.contains(&name) {
                started.push(name);
            }
        }
        Command::new(exe)
            .args(args)
            .env("HOST_LAUNCH_STATE_DIR", self.state_dir())
            .env("HOST_LAUNCH_TRUST", self.trust_file())
            .output()
            .expect("running host-launch")
    }

    /// `host-launch upgrade SPEC --image IMAGE`.
    pub fn upgrade(&self, spec: &Path, image: &Path) -> Output {
        self.host_launch(&[
            "upgrade",
            spec.to_str().unwrap(),
            "--image",
            image.to_str().unwrap(),
        ])
    }

    /// `host-launch run SPEC` as a child of the test, once the service is ready (40 s).
    pub fn run_appliance(&self, spec: &Value) -> Launch {
        let path = self.write_spec(spec);
        let name = spec["name"].as_str().expect("spec name");
        let mut run = Launch::start(&host_launch_exe(), &path, name, &self.state_dir());
        if let Err(e) = run.wait_ready(Duration::from_secs(40)) {
            panic!("{}: {e}", path.display());
        }
        run
    }

    /// `host-launch start SPEC --wait-ready 60`; the appliance is stopped on drop.
    pub fn start(&self, spec: &Path) {
        self.start_with(&host_launch_exe(), spec)
    }

    /// [`Lab::start`] with another build of host-launch.
    pub fn start_with(&self, exe: &Path, spec: &Path) {
        let args = ["start", spec.to_str().unwrap(), "--wait-ready", "60"];
        let out = self.host_launch_of(exe, &args);
        assert!(
            out.status.success(),
            "host-launch start {}: {}\n{}",
            spec_name(spec),
            shown(&out),
            self.appliance_logs(&spec_name(spec))
        );
    }

    /// `host-launch stop NAME`; returns the exit code of the appliance's launcher and its
    /// output.
    pub fn stop(&self, name: &str) -> (Option<i64>, String) {
        let out = self.host_launch(&["stop", name, "--timeout", "40"]);
        assert!(
            out.status.success(),
            "host-launch stop {name}: {}",
            shown(&out)
        );
        self.started.borrow_mut().retain(|n| n != name);
        let status = self.host_launch(&["status", name, "--json"]);
        let v: Value = serde_json::from_slice(&status.stdout).unwrap();
        let log = std::fs::read_to_string(self.state_dir().join(name).join("launcher.log"))
            .unwrap_or_default();
        (v[0]["state"]["exit_code"].as_i64(), log)
    }

    /// The tails of an appliance's launcher log, events and console, for a failure message.
    pub fn appliance_logs(&self, name: &str) -> String {
        ["launcher.log", "events.jsonl", "console.log", "state.json"]
            .iter()
            .map(|f| {
                let tail = self.state_file_tail(name, f, 6000);
                format!("--- {f} (last 6000 bytes):\n{tail}")
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The last `bytes` of the file `file` in an appliance's state directory (empty when it
    /// has none).
    pub fn state_file_tail(&self, name: &str, file: &str, bytes: usize) -> String {
        let text = std::fs::read(self.state_dir().join(name).join(file)).unwrap_or_default();
        String::from_utf8_lossy(&text[text.len().saturating_sub(bytes)..]).into_owned()
    }

    /// `state.json` of an appliance (null when there is none).
    pub fn state(&self, name: &str) -> Value {
        let p = self.state_dir().join(name).join("state.json");
        serde_json::from_slice(&std::fs::read(&p).unwrap_or_default()).unwrap_or(Value::Null)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for name in self.started.take() {
            let _ = self.host_launch(&["stop", &name, "--timeout", "30"]);
        }
    }
}

fn recipes_dir() -> PathBuf {
    e2e::workspace_root().join("build-image/recipes")
}

/// The `name` of a spec file.
fn spec_name(spec: &Path) -> String {
    let v: Value = serde_json::from_slice(&std::fs::read(spec).unwrap()).unwrap();
    v["name"].as_str().expect("spec name").to_string()
}

/// An ext4 data disk of 16 MiB made on the host the way an operator would, holding what is
/// in `content`, handed to the VM's user.
pub fn disk_from_dir(disk: &Path, content: &Path) {
    let ok = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-E", "root_owner=0:0", "-d"])
        .arg(content)
        .arg(disk)
        .arg("16M")
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "mkfs.ext4 -d");
}

/// `request` of `debugfs` on `disk` (a guest-written file system), run as `uid`, which owns
/// the file meanwhile: never root, so a crafted file system meets an unprivileged reader.
pub fn debugfs_as(disk: &Path, uid: u32, request: &str) -> String {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(disk).unwrap_or_else(|e| panic!("{}: {e}", disk.display()));
    std::os::unix::fs::chown(disk, Some(uid), Some(uid)).unwrap();
    let out = e2e::host::as_uid(Command::new("debugfs").args(["-R", request]).arg(disk), uid)
        .output()
        .expect("debugfs");
    std::os::unix::fs::chown(disk, Some(m.uid()), Some(m.gid())).unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Text of a host-launch run, for messages.
pub fn shown(o: &Output) -> String {
    format!(
        "{}\n{}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// host-launch's release build, as an operator runs it (the lab's own is the debug build).
pub fn release_host_launch() -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let ok = Command::new(cargo)
        .current_dir(e2e::workspace_root())
        .env("CARGO_TARGET_DIR", e2e::target_dir())
        .args([
            "build",
            "--release",
            "-p",
            "host-launch",
            "--bin",
            "host-launch",
        ])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "building host-launch failed");
    e2e::target_dir().join("release/host-launch")
}

/// The kernels a benchmark compares, side by side in one run (`e2e::bench_kernels`).
#[allow(unused_imports)] // only the benchmarks compare kernels
pub use e2e::bench_kernels;
