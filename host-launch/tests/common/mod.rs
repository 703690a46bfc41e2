//! What the end-to-end tests and the boot benchmark share: a busybox httpd appliance image
//! built with the e2e harness, network namespaces, specs, a `host-launch run` that is waited
//! on until "ready" and stopped with SIGTERM, and the host memory of a running VM.
//!
//! Needs root (network namespace, TAP device) and `busybox-static`.

#![allow(dead_code)] // each test binary uses a part

pub mod boundary;
pub mod bulk;
pub mod writer;

#[allow(unused_imports)] // the boot benchmark uses it
pub use e2e::host::memory_of;
pub use e2e::launch::Launch;
use e2e::{NetNs, RootFs, TempDir};
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub const EXE: &str = env!("CARGO_BIN_EXE_host-launch");

/// The host side of every test network.
pub const HOST_ADDRESS: &str = "192.0.2.1/24";

/// A test network namespace; with `bridge`, a bridge `br0` with the host address in it, for
/// several appliances in one subnet.
pub fn netns(bridge: bool) -> NetNs {
    let ns = NetNs::new().expect("ip netns add (this test needs root)");
    if bridge {
        ns.add_bridge("br0", &[HOST_ADDRESS]).expect("bridge br0");
    }
    ns
}

/// An HTTP GET from inside the namespace (on a thread that enters it).
pub fn http_get(ns: &NetNs, addr: &str) -> std::io::Result<String> {
    let addr: std::net::SocketAddr = addr.parse().expect("addr");
    ns.enter(move || {
        let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
        s.set_read_timeout(Some(Duration::from_secs(3)))?;
        s.write_all(b"GET / HTTP/1.0\r\nHost: appliance\r\n\r\n")?;
        let mut body = String::new();
        s.read_to_string(&mut body)?;
        Ok(body)
    })
    .map_err(|e| std::io::Error::other(e.to_string()))?
}

/// `host-launch ARGS` with the state base directory `state`.
pub fn host_launch(state: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(EXE);
    c.args(args).env("HOST_LAUNCH_STATE_DIR", state);
    c
}

/// `host-launch run SPEC` for appliance `name`, its output collected (see [`Launch`]).
pub fn launch(spec: &Path, name: &str, state: &Path) -> Launch {
    Launch::start(Path::new(EXE), spec, name, state)
}

/// Fails the test without root or busybox.
pub fn require_root_and_busybox() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root (network namespace and TAP device)"
    );
    assert!(
        Path::new("/bin/busybox").is_file(),
        "/bin/busybox is missing: install the Debian package busybox-static (the test \
         appliance's service)"
    );
}

/// Builds the busybox httpd root image `DIR/root.img` and its manifest. The image serves
/// `text` at `/`.
pub fn build_image(dir: &Path, text: &str) -> PathBuf {
    let image = dir.join("root.img");
    RootFs::new()
        .file("/bin/busybox", "/bin/busybox", 0o755)
        .bytes("/www/index.html", text.as_bytes().to_vec(), 0o644)
        .dir("/data", 0o755)
        .build(&image)
        .expect("root image");
    std::fs::set_permissions(&image, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(
        dir.join("root.img.manifest.json"),
        r#"{"contract_version":1,"name":"busybox-httpd",
            "service":{"argv":["/bin/busybox","httpd","-f","-p","8080","-h","/www"],
                       "uid":65534,"gid":65534,"readiness":{"type":"tcp","port":8080},
                       "stop_timeout_ms":3000},
            "disks":[{"mount_point":"/data"}],
            "ports":[{"port":8080,"description":"HTTP"}]}"#,
    )
    .unwrap();
    image
}

/// A formatted 16 MiB data disk (the image has no mke2fs: the operator formats it).
pub fn data_disk(path: &Path) {
    e2e::host::mkfs_ext4(path, "16M");
}

/// One appliance's spec.
pub struct Appliance {
    pub name: String,
    pub memory_mib: u32,
    pub image: PathBuf,
    pub data: PathBuf,
    pub tap: String,
    pub netns: String,
    /// Joins the namespace's `br0` instead of giving the TAP device the host address.
    pub bridge: bool,
    pub address: String,
}

impl Appliance {
    /// Writes `DIR/NAME.json` and returns its path.
    pub fn write_spec(&self, dir: &Path) -> PathBuf {
        let mut network = serde_json::json!({
            "tap": self.tap,
            "netns": self.netns,
            "addresses": [format!("{}/24", self.address)],
            "routes": [{"destination": "0.0.0.0/0", "gateway": "192.0.2.1"}],
        });
        if self.bridge {
            network["bridge"] = "br0".into();
        } else {
            network["host_address"] = HOST_ADDRESS.into();
        }
        let text = serde_json::json!({
            "name": self.name,
            "image": self.image,
            "memory_mib": self.memory_mib,
            "disks": [{"file": self.data}],
            "network": network,
        })
        .to_string();
        let path = dir.join(format!("{}.json", self.name));
        std::fs::write(&path, text).unwrap();
        path
    }
}

/// A temporary directory the VM's user may enter.
pub fn temp_dir(label: &str) -> TempDir {
    let dir = TempDir::new(label).expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// A short TAP device name unique to this process: `hlPPPPPT` (at most 15 bytes).
pub fn tap_name(tag: &str) -> String {
    format!("hl{}{tag}", std::process::id() % 100_000)
}

/// The guest's address in the tests' network.
pub const GUEST: &str = "192.0.2.10";

/// What a test appliance needs: its directory, namespace, TAP name, spec and data disk.
pub struct Setup {
    pub dir: e2e::TempDir,
    pub ns: NetNs,
    pub tap: String,
    pub spec: PathBuf,
    pub data: PathBuf,
}

/// Builds the busybox httpd image, its manifest, a formatted data disk, a namespace and the
/// spec of appliance `name` with `memory_mib`.
pub fn setup(name: &str, memory_mib: u32) -> Setup {
    require_root_and_busybox();
    let dir = temp_dir(name);
    let image = build_image(dir.path(), "hello from the appliance\n");
    let data = dir.join("data.img");
    data_disk(&data);
    let ns = netns(false);
    let tap = tap_name("");
    let spec = Appliance {
        name: name.to_string(),
        memory_mib,
        image,
        data: data.clone(),
        tap: tap.clone(),
        netns: ns.name().to_string(),
        bridge: false,
        address: GUEST.to_string(),
    }
    .write_spec(dir.path());
    Setup {
        dir,
        ns,
        tap,
        spec,
        data,
    }
}
