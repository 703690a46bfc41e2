//! The containerd lab of uml-runc's CRI and ctr tests: containerd 1.6 (Debian's) started by
//! the test, inside the podman lab's network namespace (entered with setns only: its mounts,
//! the pods' overlays and network namespaces, are the host's, so the test sees them), with
//! root, state, sockets, CNI config, IPAM state and the pods' namespaces in the lab's
//! temporary directory; the CRI plugin on, its runtime handler `uml` containerd's runc shim
//! with `BinaryName` the lab's uml-runc wrapper; CNI's bridge + host-local on `cri0` in the
//! lab's namespace. No registry: images are imported with `ctr -n k8s.io images import`.
//! [`config`] writes that configuration, [`client`] is kubelet's side of the CRI, [`images`]
//! makes the images.

#![allow(dead_code)]

pub mod client;
pub mod config;
pub mod images;

use crate::lab::{shown, Lab};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The pods' subnet on the CNI bridge `cri0`, and the bridge's (gateway's) address.
pub const POD_SUBNET: &str = "198.51.100.0/24";
pub const POD_GATEWAY: &str = "198.51.100.1";
/// The cgroup parent of the tests' pods, each `pod<NAME>-<test pid>` below it (kubelet's are
/// `/kubepods/...`). ctr's containers go to `/k8s.io/<id>`, its default.
pub const CGROUP_PARENT: &str = "uml-runc-cri-tests";

pub struct Containerd {
    /// containerd's directory in the lab: config, root, state, sockets, CNI.
    pub dir: PathBuf,
    pub socket: PathBuf,
    /// The runtime's root as containerd's options name it (`Root`, ctr's `--runc-root`).
    pub runc_root: PathBuf,
    wrapper: PathBuf,
    child: Child,
}

impl Containerd {
    /// Starts containerd in the lab's namespace and waits for its socket to answer.
    pub fn start(lab: &Lab) -> Containerd {
        for tool in ["containerd", "ctr", "containerd-shim-runc-v2", "nsenter"] {
            assert!(
                on_path(tool),
                "{tool} is missing: scripts/setup installs containerd"
            );
        }
        assert!(
            Path::new("/usr/lib/cni/bridge").is_file()
                && Path::new("/usr/lib/cni/host-local").is_file(),
            "/usr/lib/cni/bridge and host-local are missing: scripts/setup installs \
             containernetworking-plugins"
        );
        let dir = lab.join("containerd");
        // The runc shim gives the runtime `--root ROOT/NAMESPACE`: the lab's uml-runc root
        // (where its helpers look) is that directory for kubelet's namespace.
        let root = dir.join("runc");
        std::fs::create_dir_all(root.join("k8s.io")).expect("uml-runc's root");
        std::os::unix::fs::symlink(root.join("k8s.io"), &lab.state)
            .expect("linking the lab's uml-runc root");
        let conf = config::write(&dir, &lab.wrapper, &root);
        let log = std::fs::File::create(dir.join("containerd.log")).expect("containerd.log");
        let child = Command::new("nsenter")
            .arg(format!("--net={}", lab.ns.path().display()))
            .arg("containerd")
            .arg("--config")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("starting containerd");
        let c = Containerd {
            socket: dir.join("containerd.sock"),
            runc_root: root,
            wrapper: lab.wrapper.clone(),
            dir,
            child,
        };
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            assert!(
                !c.log()
                    .contains("failed to load plugin io.containerd.grpc.v1.cri"),
                "containerd's CRI plugin did not load: {}",
                c.log()
            );
            let out = c.ctr(&["version"]);
            if out.status.success() && c.log().contains("Start cri plugin") {
                break;
            }
            assert!(
                Instant::now() < until,
                "containerd did not answer within 60 s: {}\n{}",
                shown(&out),
                c.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        c
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default()
    }

    /// `ctr` on this containerd, in kubelet's namespace `k8s.io`.
    pub fn ctr_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ctr");
        c.arg("--address")
            .arg(&self.socket)
            .args(["--namespace", "k8s.io"])
            .args(args)
            .stdin(Stdio::null());
        c
    }

    pub fn ctr(&self, args: &[&str]) -> Output {
        self.ctr_cmd(args).output().expect("running ctr")
    }

    pub fn ctr_ok(&self, args: &[&str]) -> Output {
        let out = self.ctr(args);
        assert!(out.status.success(), "ctr {args:?}: {}", shown(&out));
        out
    }

    /// `ctr images import` of an OCI archive (no registry here): the image is named as the
    /// archive's index names it (`org.opencontainers.image.ref.name`).
    pub fn import(&self, archive: &Path) {
        self.ctr_ok(&["images", "import", archive.to_str().unwrap_or_default()]);
    }

    /// The runc shims of this containerd still running.
    pub fn shims(&self) -> Vec<u32> {
        let me = self.socket.to_string_lossy().into_owned();
        processes()
            .into_iter()
            .filter(|(_, cmd)| cmd.starts_with("/usr/bin/containerd-shim") && cmd.contains(&me))
            .map(|(p, _)| p)
            .collect()
    }

    /// Mount points below the lab directory (overlays of containers, pods' namespaces, jails).
    pub fn mounts_below(dir: &Path) -> Vec<String> {
        let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let prefix = dir.to_string_lossy().into_owned();
        text.lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| m.starts_with(&prefix))
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // containerd, then whatever a failed test left: its shims (they outlive containerd),
        // then the mounts they made in the lab directory, deepest first.
        // SAFETY: kill(2) on the containerd this lab started.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let _ = self.child.wait();
        for pid in self.shims() {
            // SAFETY: kill(2) on a shim of this lab's containerd (its socket in the command).
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        }
        // The monitors outlive their shims: uml-runc removes them (their VMs die with them)
        // and their state and cgroups.
        let ids = std::fs::read_dir(self.runc_root.join("k8s.io"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name());
        for id in ids {
            let _ = Command::new(&self.wrapper)
                .arg("--root")
                .arg(self.runc_root.join("k8s.io"))
                .arg("delete")
                .arg("--force")
                .arg(id)
                .output();
        }
        remove_test_cgroups();
        let mut mounts = Containerd::mounts_below(&self.dir);
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = Command::new("umount").args(["-l", &m]).output();
        }
    }
}

/// The pods' cgroups of this test process and ctr's parent, where empty (kubelet removes a
/// pod's; a container's own is uml-runc's to remove).
fn remove_test_cgroups() {
    let Ok(hierarchies) = uml_runc::cgroup::hierarchies() else {
        return;
    };
    let mine = format!("-{}", std::process::id());
    for h in hierarchies {
        let parent = h.join(CGROUP_PARENT);
        let pods = std::fs::read_dir(&parent).into_iter().flatten().flatten();
        for pod in pods.filter(|p| p.file_name().to_string_lossy().ends_with(&mine)) {
            let _ = std::fs::remove_dir(pod.path());
        }
        let _ = std::fs::remove_dir(parent);
        let _ = std::fs::remove_dir(h.join("k8s.io"));
    }
}

/// Every process's pid and command line (arguments joined by spaces).
pub fn processes() -> Vec<(u32, String)> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let c = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            Some((pid, String::from_utf8_lossy(&c).replace('\0', " ")))
        })
        .collect()
}

pub fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
}

/// Polls `f` every 100 ms until it gives `Some`, or panics with `what` after `within`.
pub fn wait_for<T>(what: &str, within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let until = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < until, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
