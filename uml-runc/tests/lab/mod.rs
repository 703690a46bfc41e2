//! The podman lab of uml-runc's tests and benchmark: a network namespace the test makes (every
//! packet stays in it: podman and its CNI bridge run there, entered with setns only, so
//! podman's own mount namespace, where it keeps the containers' namespaces, is the host's),
//! podman with its storage, network config, tmp dir and events in a temporary directory, and
//! uml-runc behind a wrapper that gives it guest-init and a private `--root`.
//!
//! Notes for podman on this machine (set up here, not in the product): crun refuses to run in
//! cgroup hybrid mode, so `--cgroup-manager=cgroupfs`; runc (the benchmark's reference
//! container) cannot raise rlimits here, so the benchmark gives it `--ulimit`s.

#![allow(dead_code)]

use e2e::{NetNs, TempDir};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The lab network's subnet and the bridge's (gateway's) address.
pub const SUBNET: &str = "192.0.2.0/24";
pub const GATEWAY: &str = "192.0.2.1";
/// The spec of the unclassed dnsmasq image, whose first file is its records.
pub const DNSMASQ_SPEC: &str = "build-image/tests/lab/dnsmasq.json";

/// For `dash -c` of the web image, as the syslog image's user (102): prints every log file
/// the syslog image stored on its data disk.
pub const PRINT_LOGS: &str =
    "for f in /data/log/*/*.log; do while IFS= read -r l; do echo \"$l\"; done < \"$f\"; done";

pub struct Lab {
    pub dir: TempDir,
    pub ns: NetNs,
    pub conf: PathBuf,
    pub wrapper: PathBuf,
    /// uml-runc's `--root`.
    pub state: PathBuf,
    /// The lab's podman network: a name of its own, since CNI's host-local keeps its leases
    /// host-wide per network name (/var/lib/cni/networks/NAME), where a test running beside
    /// this one could take the fixed address this one asks for.
    network: String,
}

pub fn shown(o: &Output) -> String {
    format!(
        "{}\n{}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

impl Lab {
    pub fn new(label: &str) -> Lab {
        for tool in ["podman", "conmon", "dig", "curl", "nsenter", "tc"] {
            let found = std::env::var_os("PATH")
                .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
                .unwrap_or(false);
            assert!(found, "{tool} is missing: scripts/setup installs it");
        }
        let dir = TempDir::new(label).expect("a temporary directory");
        let ns = NetNs::new().expect("a network namespace (needs root)");
        let conf = dir.join("storage.conf");
        std::fs::write(
            &conf,
            format!(
                "[storage]\ndriver = \"overlay\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
                dir.join("graph").display(),
                dir.join("run").display()
            ),
        )
        .expect("storage.conf");
        let runtime = e2e::build_host("uml-runc", "uml-runc");
        let init = e2e::guest_init().expect("building the static guest-init");
        let state = dir.join("uml-runc");
        let wrapper = dir.join("uml-runc.sh");
        let kernel = std::env::var("UML_KERNEL").unwrap_or_default();
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nexport UML_RUNC_GUEST_INIT='{}'\nexport UML_KERNEL='{kernel}'\nexec '{}' --root '{}' \"$@\"\n",
                init.display(),
                runtime.display(),
                state.display()
            ),
        )
        .expect("the runtime's wrapper");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))
            .expect("chmod the wrapper");
        let network = format!("lab-{}", ns.name());
        let lab = Lab {
            dir,
            network,
            ns,
            conf,
            wrapper,
            state,
        };
        lab.podman_ok(&[
            "network",
            "create",
            "--subnet",
            SUBNET,
            "--gateway",
            GATEWAY,
            &lab.network,
        ]);
        lab
    }

    pub fn join(&self, p: &str) -> PathBuf {
        self.dir.join(p)
    }

    /// podman in the lab's namespace with the lab's storage and uml-runc as its runtime.
    pub fn podman_cmd(&self, args: &[&str]) -> Command {
        self.podman_with(&self.wrapper, args)
    }

    /// podman as [`Lab::podman_cmd`] with another runtime (the benchmark's runc).
    pub fn podman_with(&self, runtime: &Path, args: &[&str]) -> Command {
        let mut c = self.ns.command("podman").expect("entering the namespace");
        c.env("CONTAINERS_STORAGE_CONF", &self.conf)
            .arg("--network-config-dir")
            .arg(self.dir.join("cni"))
            .arg("--tmpdir")
            .arg(self.dir.join("libpod"))
            .args(["--events-backend", "file", "--cgroup-manager=cgroupfs"])
            .arg("--runtime")
            .arg(runtime)
            .args(args)
            .stdin(std::process::Stdio::null());
        c
    }

    pub fn podman(&self, args: &[&str]) -> Output {
        self.podman_cmd(args).output().expect("running podman")
    }

    pub fn podman_ok(&self, args: &[&str]) -> Output {
        let out = self.podman(args);
        assert!(out.status.success(), "podman {args:?}: {}", shown(&out));
        out
    }

    /// Builds our DNS image and loads its OCI archive: `localhost/dns:latest`.
    pub fn load_dns_image(&self) {
        self.load_image("dns");
    }

    /// Builds the image of `build-image/recipes/RECIPE.json` and loads its OCI archive; its
    /// name, `localhost/RECIPE:latest`.
    pub fn load_image(&self, recipe: &str) -> String {
        let archive = self.image_archive(recipe);
        self.podman_ok(&["load", "-i", archive.to_str().unwrap_or_default()]);
        format!("localhost/{recipe}:latest")
    }

    /// Builds our DNS image with its OCI archive (`--oci-archive`); returns the archive.
    pub fn dns_archive(&self) -> PathBuf {
        self.image_archive("dns")
    }

    /// Builds the image of recipe `recipe` with its OCI archive; returns the archive.
    pub fn image_archive(&self, recipe: &str) -> PathBuf {
        let build = e2e::build_host("build-image", "build-image");
        let init = e2e::guest_init().expect("guest-init");
        let recipe_file = e2e::workspace_root().join(format!("build-image/recipes/{recipe}.json"));
        let archive = self.join(&format!("{recipe}.oci.tar"));
        let out = Command::new(build)
            .arg(&recipe_file)
            .arg("-o")
            .arg(self.join(&format!("{recipe}.img")))
            .arg("--init")
            .arg(&init)
            .arg("--oci-archive")
            .arg(&archive)
            .output()
            .expect("running build-image");
        assert!(
            out.status.success(),
            "build-image {recipe}: {}",
            shown(&out)
        );
        archive
    }

    /// The foreign image: Debian's lighttpd on a debootstrap base, imported and built by podman
    /// with nothing of ours in it.
    pub fn build_foreign_image(&self) {
        let script = e2e::workspace_root().join("scripts/foreign-rootfs");
        let out = Command::new(&script)
            .output()
            .expect("running scripts/foreign-rootfs");
        assert!(
            out.status.success(),
            "scripts/foreign-rootfs: {}",
            shown(&out)
        );
        let root = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let tar = self.join("base.tar");
        let out = Command::new("tar")
            .args(["-C", &root, "--exclude=./.complete", "-cf"])
            .arg(&tar)
            .arg(".")
            .output()
            .expect("tar");
        assert!(out.status.success(), "tar: {}", shown(&out));
        self.podman_ok(&["import", path_str(&tar), "localhost/debian-lighttpd-base"]);
        let ctx = self.join("web-ctx");
        std::fs::create_dir_all(&ctx).expect("build context");
        std::fs::write(ctx.join("index.html"), "hello from a plain Debian image\n").expect("index");
        // The vendor's server config, container style: the error log is stderr (no errorlog).
        std::fs::write(
            ctx.join("lighttpd.conf"),
            "server.modules = (\"mod_indexfile\", \"mod_access\")\n\
             server.document-root = \"/var/www/html\"\n\
             server.port = 80\n\
             server.username = \"www-data\"\n\
             server.groupname = \"www-data\"\n\
             server.pid-file = \"/run/lighttpd.pid\"\n\
             index-file.names = (\"index.html\")\n\
             mimetype.assign = (\".html\" => \"text/html\")\n",
        )
        .expect("lighttpd.conf");
        std::fs::write(
            ctx.join("Containerfile"),
            "FROM localhost/debian-lighttpd-base\n\
             COPY lighttpd.conf /etc/lighttpd/lighttpd.conf\n\
             COPY index.html /var/www/html/index.html\n\
             EXPOSE 80\nCMD [\"lighttpd\", \"-D\", \"-f\", \"/etc/lighttpd/lighttpd.conf\"]\n",
        )
        .expect("Containerfile");
        self.podman_ok(&[
            "build",
            "--network",
            "none",
            "-t",
            "localhost/web-foreign",
            path_str(&ctx),
        ]);
    }

    /// The DNS records file the dnsmasq image reads (its test spec's; examples/dns.json is a
    /// class dns spec for NSD and Knot).
    pub fn dnsmasq_conf(&self) -> PathBuf {
        let spec = e2e::workspace_root().join(DNSMASQ_SPEC);
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(spec).expect(DNSMASQ_SPEC)).expect("JSON");
        let p = self.join("dnsmasq.conf");
        std::fs::write(&p, v["files"][0]["content"].as_str().unwrap_or_default())
            .expect("dnsmasq.conf");
        p
    }

    /// `dig @server name +short` from the namespace, once.
    pub fn dig(&self, server: &str, name: &str) -> String {
        let out = self
            .ns
            .output(
                "dig",
                &[&format!("@{server}"), name, "+short", "+time=1", "+tries=1"],
            )
            .expect("running dig");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Waits until `dig` gets `want` (or panics after `within`).
    pub fn wait_for_answer(&self, server: &str, name: &str, want: &str, within: Duration) {
        let until = Instant::now() + within;
        loop {
            let got = self.dig(server, name);
            if got == want {
                return;
            }
            assert!(
                Instant::now() < until,
                "no answer {want} for {name} from {server} within {within:?} (last: {got:?})"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends one RFC 3164 message (host `podvol28`, tag `test`) over TCP to the syslog
    /// appliance at `ip`, once it listens.
    pub fn send_syslog(&self, ip: &str, text: &str) {
        let script =
            format!("printf '<14>Dec  7 12:00:00 podvol28 test: {text}\\n' > /dev/tcp/{ip}/514");
        let until = Instant::now() + Duration::from_secs(90);
        loop {
            let out = self.ns.output("bash", &["-c", &script]).expect("bash");
            if out.status.success() {
                return;
            }
            assert!(Instant::now() < until, "syslog at {ip}: {}", shown(&out));
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The lab's podman network.
    pub fn network(&self) -> &str {
        &self.network
    }

    /// The address podman's IPAM gave container `name` on the lab's network.
    pub fn ip_of(&self, name: &str) -> String {
        let format = format!(
            "{{{{(index .NetworkSettings.Networks \"{}\").IPAddress}}}}",
            self.network
        );
        let out = self.podman_ok(&["inspect", "--format", &format, name]);
        let ip = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(ip.starts_with("192.0.2."), "{name}'s address: {ip:?}");
        ip
    }

    /// The container directories uml-runc has now.
    pub fn runtime_containers(&self) -> Vec<String> {
        std::fs::read_dir(&self.state)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Checks that a container (of VM uid `uid` in namespace `netns`) left nothing on the host.
    pub fn assert_nothing_left(&self, uid: u32, netns: &Path) {
        assert!(
            self.runtime_containers().is_empty(),
            "uml-runc state left: {:?}",
            self.runtime_containers()
        );
        assert!(
            processes_of(uid).is_empty(),
            "processes of the VM's uid {uid} left: {:?}",
            processes_of(uid)
        );
        assert!(
            !netns.exists(),
            "the container's network namespace {netns:?} left"
        );
        let out = self.ns.output("ip", &["-o", "link"]).expect("ip link");
        let links = String::from_utf8_lossy(&out.stdout);
        assert!(!links.contains("uml0"), "a TAP device left: {links}");
    }

    /// The VM uid and the network namespace uml-runc recorded for container `id`.
    pub fn vm_uid_netns(&self, id: &str) -> (u32, PathBuf) {
        let text = std::fs::read(self.state.join(id).join("state.json")).expect("state.json");
        let v: serde_json::Value = serde_json::from_slice(&text).expect("state JSON");
        let netns = v["net"]["netns"].as_str().expect("the container's netns");
        (v["uid"].as_u64().expect("uid") as u32, PathBuf::from(netns))
    }
}

/// A loop device over a sparse file of its own, detached on drop (a failed test too).
pub struct Loop {
    pub dev: String,
    _dir: e2e::TempDir,
}

impl Loop {
    pub fn new(mib: u64) -> Loop {
        let dir = e2e::TempDir::new("urunc-loop").expect("a temporary directory");
        let file = dir.join("backing.img");
        let f = std::fs::File::create(&file).expect("the loop device's file");
        f.set_len(mib << 20).expect("sizing the loop device's file");
        let out = Command::new("losetup")
            .args(["--find", "--show"])
            .arg(&file)
            .output()
            .expect("running losetup");
        assert!(out.status.success(), "losetup: {}", shown(&out));
        let dev = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(dev.starts_with("/dev/loop"), "losetup: {dev:?}");
        Loop { dev, _dir: dir }
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.dev]).output();
    }
}

/// The command lines (arguments joined by spaces) of the processes of uid `uid`: UML's.
pub fn command_lines_of(uid: u32) -> Vec<String> {
    processes_of(uid)
        .iter()
        .filter_map(|p| std::fs::read(format!("/proc/{p}/cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .collect()
}

/// The pids of processes whose real uid is `uid`.
pub fn processes_of(uid: u32) -> Vec<u32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::metadata(format!("/proc/{pid}"))
                .map(|m| m.uid() == uid)
                .unwrap_or(false)
        })
        .collect()
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Whatever a failed test left: containers, then images (their overlay mounts).
        let _ = self.podman(&["rm", "-af", "-t", "0"]);
        for id in self.runtime_containers() {
            let _ = Command::new(&self.wrapper)
                .args(["delete", "--force", &id])
                .output();
        }
        let _ = self.podman(&["rmi", "-af"]);
        let _ = self.podman(&["network", "rm", "-f", &self.network]);
        let _ = std::fs::remove_dir_all(Path::new("/var/lib/cni/networks").join(&self.network));
    }
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}
