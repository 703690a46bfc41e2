//! A Debian with systemd booted in a container, for the tests of appliances under a real
//! systemd: the root file system `scripts/systemd-rootfs` debootstraps once and caches,
//! booted with `systemd-nspawn --boot --register=no --keep-unit --volatile=overlay` (the
//! cached root stays as it was; what a test writes goes to a tmpfs), its own network
//! namespace (`--private-network`: packets stay inside it), commands run in it through
//! `nsenter -t LEADER -a` (`machinectl` needs a registered machine). Test code: its helpers
//! panic with what the container said.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The cached Debian root of `scripts/systemd-rootfs` (debootstrapped when missing).
pub fn systemd_rootfs() -> PathBuf {
    let script = crate::workspace_root().join("scripts/systemd-rootfs");
    let out = Command::new(&script)
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} failed (debootstrap must be installed)",
        script.display()
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// The booted container, powered off (then killed) on drop.
#[derive(Debug)]
pub struct Container {
    nspawn: Child,
    leader: u32,
    log: PathBuf,
}

impl Container {
    /// Boots `rootfs` with `binds` (host path, container path, writable); its log in `dir`.
    pub fn boot(rootfs: &Path, dir: &Path, binds: &[(PathBuf, &str, bool)]) -> Container {
        std::fs::create_dir_all("/run/systemd/nspawn").expect("/run/systemd/nspawn");
        let log = dir.join("nspawn.log");
        let mut cmd = Command::new("systemd-nspawn");
        cmd.args([
            "--boot",
            "--register=no",
            "--keep-unit",
            "--volatile=overlay",
        ])
        .args(["--private-network", "--bind=/dev/net/tun"])
        .arg(format!(
            "--machine=hl-systemd-{}-{}",
            std::process::id(),
            next_id()
        ))
        .arg("-D")
        .arg(rootfs);
        for (from, to, rw) in binds {
            let opt = if *rw { "--bind" } else { "--bind-ro" };
            cmd.arg(format!("{opt}={}:{to}", from.display()));
        }
        let out = std::fs::File::create(&log).expect("nspawn log");
        let nspawn = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .spawn()
            .expect("systemd-nspawn (package systemd-container) must be installed");
        let mut c = Container {
            leader: 0,
            log,
            nspawn,
        };
        c.leader = c.find_leader();
        let state = c.wait_running();
        assert!(
            state == "running" || state == "degraded",
            "the container's systemd did not come up: {state}\n{}",
            c.console()
        );
        c
    }

    /// The container's PID 1: nspawn's child that is systemd.
    fn find_leader(&mut self) -> u32 {
        let me = self.nspawn.id();
        for _ in 0..300 {
            if let Ok(Some(st)) = self.nspawn.try_wait() {
                panic!("systemd-nspawn ended: {st}\n{}", self.console());
            }
            for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
                let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                    continue;
                };
                let status =
                    std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
                let field = |k: &str| {
                    status
                        .lines()
                        .find_map(|l| l.strip_prefix(k))
                        .map(|v| v.trim().to_string())
                };
                if field("PPid:") == Some(me.to_string())
                    && field("Name:").as_deref() == Some("systemd")
                {
                    return pid;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("no systemd in the container after 30 s\n{}", self.console())
    }

    /// Polls `systemctl is-system-running` until the boot is over (at most 90 s): early
    /// on it cannot reach systemd at all, or says "offline" before /run/systemd/system exists.
    fn wait_running(&self) -> String {
        let mut last = String::new();
        for _ in 0..360 {
            let out = self.sh("systemctl is-system-running");
            last = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout).trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
            if last == "running" || last == "degraded" {
                break;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        last
    }

    pub fn console(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A shell command inside the container (all its namespaces), with a clean environment.
    pub fn sh(&self, script: &str) -> Output {
        Command::new("nsenter")
            .args([
                "-t",
                &self.leader.to_string(),
                "-a",
                "--",
                "sh",
                "-c",
                script,
            ])
            // The container's own environment, not the test's (UML_KERNEL and the like).
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("HOME", "/root")
            .env("LANG", "C.UTF-8")
            .output()
            .expect("nsenter")
    }

    /// A command that must succeed; its standard output.
    pub fn ok(&self, script: &str) -> String {
        let out = self.sh(script);
        assert!(
            out.status.success(),
            "`{script}` in the container: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `systemctl show -p PROP UNIT`'s value.
    pub fn prop(&self, unit: &str, prop: &str) -> String {
        self.ok(&format!("systemctl show -p {prop} --value {unit}"))
            .trim()
            .to_string()
    }

    /// Waits (bounded) until `check` holds; what it saw last when it never does.
    pub fn until(
        &self,
        what: &str,
        limit: Duration,
        mut check: impl FnMut(&Self) -> Result<(), String>,
    ) {
        let end = Instant::now() + limit;
        loop {
            match check(self) {
                Ok(()) => return,
                Err(last) if Instant::now() >= end => {
                    panic!("{what}: not within {} s; last: {last}", limit.as_secs())
                }
                Err(_) => std::thread::sleep(Duration::from_millis(250)),
            }
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        // SIGTERM makes nspawn power the container off (systemd stops the appliances).
        // SAFETY: kill(2) of the nspawn process this test started.
        unsafe { libc::kill(self.nspawn.id() as i32, libc::SIGTERM) };
        for _ in 0..300 {
            if let Ok(Some(_)) = self.nspawn.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.nspawn.kill();
        let _ = self.nspawn.wait();
    }
}

/// A number for each container of this process (machine names must differ).
fn next_id() -> u32 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}
