//! The plain side of the serving benchmark: the image's own Debian binaries, unpacked from
//! the image, run as ordinary processes (`chroot`, the image's start script and user) in a
//! network namespace of their own joined to the lab's bridge by a veth pair, as a container
//! would run them. Stopped, unmounted and removed on drop.

use super::super::lab::{Lab, HOST};
use e2e::NetNs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Plain {
    pub addr: String,
    ns: NetNs,
    servers: Vec<Child>,
    roots: Vec<PathBuf>,
}

impl Plain {
    /// Unpacks each image and starts its service at `addr`: Knot with the zone of
    /// `examples/dns.json`, lighttpd with `site` (the web disk's content) as `/data`.
    pub fn new(lab: &Lab, addr: &str, images: &[&Path], site: &Path) -> Plain {
        let ns = NetNs::new().expect("the plain side's namespace");
        let bridge = lab.bridge.as_deref().expect("a lab with a bridge");
        let pid = std::process::id() % 100_000;
        let (outer, inner) = (format!("vsb{pid}"), format!("vsp{pid}"));
        lab.ns
            .ip(&[
                "link", "add", &outer, "type", "veth", "peer", "name", &inner,
            ])
            .and_then(|_| lab.ns.ip(&["link", "set", &inner, "netns", ns.name()]))
            .and_then(|_| lab.ns.ip(&["link", "set", &outer, "master", bridge, "up"]))
            .and_then(|_| ns.ip(&["addr", "add", &format!("{addr}/24"), "dev", &inner]))
            .and_then(|_| ns.ip(&["link", "set", &inner, "up"]))
            .and_then(|_| ns.ip(&["route", "add", "default", "via", HOST]))
            .expect("the plain side's veth pair on the bridge");
        // The image's services bind ports below 1024 as their own users, as in the guest
        // (there by CAP_NET_BIND_SERVICE).
        let ok = ns
            .run("sysctl", &["-q", "net.ipv4.ip_unprivileged_port_start=0"])
            .is_ok_and(|o| o.status.success());
        assert!(
            ok,
            "sysctl ip_unprivileged_port_start in the plain namespace"
        );
        let mut p = Plain {
            addr: addr.to_string(),
            ns,
            servers: Vec::new(),
            roots: Vec::new(),
        };
        for image in images {
            let root = unpack(lab, image);
            p.roots.push(root.clone());
            let name = image.file_stem().unwrap().to_str().unwrap().to_string();
            p.servers.push(p.start(&name, &root, site));
        }
        p.wait_listening();
        p
    }

    fn start(&self, name: &str, root: &Path, site: &Path) -> Child {
        let (user, script) = match name {
            "knot" => {
                let zones = root.join("run/dns/zones");
                std::fs::create_dir_all(&zones).unwrap();
                std::fs::write(zones.join("example.net.zone"), super::zone()).unwrap();
                chown(&root.join("var/lib/knot"), 111);
                ("111:111", "/usr/libexec/dns-class/knot-start")
            }
            "web" => {
                let data = root.join("data");
                let ok = Command::new("cp")
                    .arg("-a")
                    .arg(site.join("www"))
                    .arg(&data)
                    .status()
                    .is_ok_and(|s| s.success());
                assert!(ok, "copying the site into the plain root");
                chown(&root.join("tmp"), 33);
                ("33:33", "/usr/libexec/web-class/lighttpd-start")
            }
            other => panic!("no plain start for image {other}"),
        };
        for dir in ["dev", "proc"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        // /dev and /proc as the guest has them, in a mount namespace of the server's own, so
        // that they go away with it.
        let mut cmd = self
            .ns
            .command("unshare")
            .expect("unshare in the namespace");
        cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(
                "mount --rbind /dev \"$1/dev\" && mount -t proc proc \"$1/proc\" && \
                 exec chroot --userspec=\"$2\" \"$1\" /bin/dash \"$3\"",
            )
            .arg("sh")
            .arg(root)
            .args([user, script])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd.spawn()
            .unwrap_or_else(|e| panic!("starting plain {name}: {e}"))
    }

    /// Until Knot answers on 53 and lighttpd accepts on 80 (30 s).
    fn wait_listening(&self) {
        let t = Instant::now();
        loop {
            let ss = self
                .ns
                .run("ss", &["-Hlntu"])
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            if ss.contains(":53 ") && ss.contains(":80 ") {
                return;
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "the plain servers did not listen on 53 and 80 within 30 s:\n{ss}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Plain {
    fn drop(&mut self) {
        for c in &mut self.servers {
            let _ = c.kill();
            let _ = c.wait();
        }
        // knotd replaced the start script (exec), lighttpd too; anything left in the
        // namespace goes with a kill of its pids.
        if let Ok(o) = self.ns.run("ip", &["netns", "pids", self.ns.name()]) {
            for pid in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                if let Ok(pid) = pid.parse::<i32>() {
                    // SAFETY: kill(2) of a process that is in our namespace.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
    }
}

fn chown(path: &Path, id: u32) {
    std::fs::create_dir_all(path).unwrap();
    std::os::unix::fs::chown(path, Some(id), Some(id)).unwrap();
}

/// The image's files in a directory of the lab: mounted read-only, copied, unmounted.
fn unpack(lab: &Lab, image: &Path) -> PathBuf {
    let name = image.file_stem().unwrap().to_str().unwrap();
    let mnt = lab.join(&format!("{name}-mnt"));
    let root = lab.join(&format!("{name}-plain"));
    std::fs::create_dir_all(&mnt).unwrap();
    let run = |cmd: &mut Command| {
        let ok = cmd.status().is_ok_and(|s| s.success());
        assert!(ok, "{cmd:?} failed");
    };
    run(Command::new("mount")
        .args(["-o", "loop,ro"])
        .arg(image)
        .arg(&mnt));
    let copied = Command::new("cp")
        .arg("-a")
        .arg(&mnt)
        .arg(&root)
        .status()
        .is_ok_and(|s| s.success());
    run(Command::new("umount").arg(&mnt));
    assert!(copied, "copying {} out of its image", image.display());
    root
}
