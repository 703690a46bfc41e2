//! The DNS appliance on a data disk, in versions, for the upgrade test and benchmark: images
//! built from modified copies of `recipes/dns.json`, a test network namespace, and
//! `host-launch` (start, upgrade, stop, status) with a state directory of the lab's own.
//!
//! Needs root (network namespace, TAP device) and dig.
#![allow(dead_code)]

use e2e::TempDir;
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The host side of the lab's TAP device and the appliance's address.
pub const HOST: &str = "192.0.2.1";
pub const GUEST: &str = "192.0.2.53";
/// The name the data disk's hosts file answers, and its address.
pub const DATA_NAME: &str = "data.example.net";
pub const DATA_ADDRESS: &str = "192.0.2.99";

/// The host-launch executable, built once with cargo for the host.
pub fn host_launch_exe() -> PathBuf {
    static EXE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    EXE.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let ok = Command::new(cargo)
            .current_dir(e2e::workspace_root())
            .env("CARGO_TARGET_DIR", e2e::target_dir())
            .args(["build", "-p", "host-launch", "--bin", "host-launch"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "building host-launch failed");
        e2e::target_dir().join("debug/host-launch")
    })
    .clone()
}

/// Who UML runs as: `nobody` when it can open /dev/net/tun (0666 on Debian), else root.
pub fn run_as() -> &'static str {
    let tun_open = std::fs::metadata("/dev/net/tun")
        .map(|m| m.permissions().mode() & 0o006 == 0o006)
        .unwrap_or(false);
    if tun_open {
        "nobody"
    } else {
        "root"
    }
}

/// The checked-in DNS recipe with a data disk on `/data` and `/etc/version.conf` answering
/// `version.example.net TXT "<version>"`; `tweak` changes it further.
pub fn dns_recipe(version: &str, tweak: impl FnOnce(&mut Value)) -> Value {
    let path = e2e::workspace_root().join("images/recipes/dns.json");
    let mut r: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    r["name"] = format!("dns-{version}").into();
    r["files"] = json!([{
        "path": "/etc/version.conf",
        "content": format!("txt-record=version.example.net,\"{version}\"\n")
    }]);
    r["manifest"]["disks"] = json!([{"mount_point": "/data", "format_if_blank": false}]);
    tweak(&mut r);
    r
}

/// The spec's records: the example zone, the image's version record, the data disk's hosts.
pub fn dnsmasq_conf() -> String {
    "local=/example.net/\nhost-record=www.example.net,192.0.2.80\n\
     conf-file=/etc/version.conf\naddn-hosts=/data/hosts\n"
        .to_string()
}

/// A test network namespace and directory; appliances started through it are stopped and
/// the namespace removed on drop.
pub struct Lab {
    pub dir: TempDir,
    pub ns: String,
    pub names: std::cell::RefCell<Vec<String>>,
}

impl Lab {
    pub fn new(label: &str) -> Lab {
        assert!(
            // SAFETY: geteuid has no preconditions.
            unsafe { libc::geteuid() } == 0,
            "this test needs root (network namespace and TAP device)"
        );
        let dir = TempDir::new(&format!("upgrade-{label}")).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let ns = format!("up-{label}-{}", std::process::id());
        let _ = Command::new("ip")
            .args(["netns", "del", &ns])
            .stderr(Stdio::null())
            .status();
        let ok = Command::new("ip")
            .args(["netns", "add", &ns])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "ip netns add {ns} failed (this test needs root)");
        let ok = Command::new("ip")
            .args(["-n", &ns, "link", "set", "lo", "up"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok);
        Lab {
            dir,
            ns,
            names: Default::default(),
        }
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }

    /// Builds a recipe (JSON) into `DIR/<name>.img`; returns the image.
    pub fn build(&self, recipe: &Value) -> PathBuf {
        let name = recipe["name"].as_str().unwrap();
        let out = self.join(&format!("{name}.img"));
        let r = image_builder::parse(recipe.to_string().as_bytes())
            .unwrap_or_else(|e| panic!("recipe {name}: {e:#?}"));
        let init = e2e::guest_init().unwrap_or_else(|e| panic!("building guest-init: {e}"));
        let mut o = image_builder::Options::new(&out, init);
        o.base_dir = e2e::workspace_root().join("images/recipes");
        image_builder::build(&r, &o).unwrap_or_else(|e| panic!("building {name}: {e}"));
        out
    }

    /// An ext4 data disk made on the host holding `/hosts` (the data the service answers).
    pub fn data_disk(&self, file: &str) -> PathBuf {
        let path = self.join(file);
        let content = self.join(&format!("{file}.content"));
        std::fs::create_dir_all(&content).unwrap();
        std::fs::write(
            content.join("hosts"),
            format!("{DATA_ADDRESS} {DATA_NAME}\n"),
        )
        .unwrap();
        let ok = Command::new("mkfs.ext4")
            .args(["-q", "-F", "-E", "root_owner=0:0", "-d"])
            .arg(&content)
            .arg(&path)
            .arg("16M")
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "mkfs.ext4 -d");
        if run_as() == "nobody" {
            std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
        }
        path
    }

    /// Writes the spec of DNS appliance `name` on `image` with the data disk; returns its path.
    pub fn spec(&self, name: &str, image: &Path, disk: &Path, tap: &str) -> PathBuf {
        let spec = json!({
            "name": name,
            "image": image,
            "memory_mib": 48,
            "run_as": run_as(),
            "disks": [{"file": disk}],
            "files": [{"path": "/run/dnsmasq.conf", "mode": "0644", "content": dnsmasq_conf()}],
            "network": {
                "tap": tap, "netns": self.ns, "host_address": format!("{HOST}/24"),
                "addresses": [format!("{GUEST}/24")],
                "routes": [{"destination": "0.0.0.0/0", "gateway": HOST}]
            }
        });
        let path = self.join(&format!("{name}.json"));
        std::fs::write(&path, serde_json::to_string_pretty(&spec).unwrap()).unwrap();
        path
    }

    /// `host-launch ARGS` with the lab's state directory.
    pub fn hl(&self, args: &[&str]) -> Output {
        if let ["start" | "upgrade", spec, ..] = args {
            let v: Value = serde_json::from_slice(&std::fs::read(spec).unwrap()).unwrap();
            let name = v["name"].as_str().unwrap().to_string();
            let mut names = self.names.borrow_mut();
            if !names.contains(&name) {
                names.push(name);
            }
        }
        Command::new(host_launch_exe())
            .args(args)
            .env("HOST_LAUNCH_STATE_DIR", self.state_dir())
            .output()
            .expect("running host-launch")
    }

    /// A command run inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns, program]);
        c
    }

    /// `dig +short` of one name and type at the appliance (one try, one second).
    pub fn dig(&self, name: &str, rtype: &str) -> String {
        let out = self
            .command("dig")
            .args([
                &format!("@{GUEST}"),
                "+short",
                "+tries=1",
                "+time=1",
                rtype,
                name,
            ])
            .output()
            .expect("dig");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The version the appliance answers (`""` when it does not answer).
    pub fn version(&self) -> String {
        self.dig("version.example.net", "TXT").replace('"', "")
    }

    /// `state.json` of an appliance.
    pub fn state(&self, name: &str) -> Value {
        let p = self.state_dir().join(name).join("state.json");
        serde_json::from_slice(&std::fs::read(&p).unwrap_or_default()).unwrap_or(Value::Null)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for name in self.names.take() {
            let _ = self.hl(&["stop", &name, "--timeout", "30"]);
        }
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
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

/// `e2fsck -fn` passes (nothing to fix).
#[track_caller]
pub fn assert_fsck_clean(disk: &Path) {
    let out = Command::new("e2fsck")
        .arg("-fn")
        .arg(disk)
        .output()
        .expect("e2fsck");
    assert!(
        out.status.success(),
        "e2fsck -fn {}: {}",
        disk.display(),
        shown(&out)
    );
}
