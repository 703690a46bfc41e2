//! Test networks: a network namespace of the test's own, with a tap device the VM attaches to
//! (UML `vec0:transport=tap,ifname=tap0`) or a bridge that `host-launch` puts the appliances'
//! TAP devices on, so nothing a test sends leaves the namespace.
//!
//! Needs root (CAP_NET_ADMIN / CAP_SYS_ADMIN) and `ip` from iproute2.

use crate::error::{run_command, Context, Error, Result};
use std::fs::File;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

static NS_COUNTER: AtomicU32 = AtomicU32::new(0);

/// The host side of [`NetNs::with_tap`]: IPv4 address with prefix.
pub const HOST_V4: &str = "192.0.2.1/24";
/// The host side of [`NetNs::with_tap`]: IPv6 address with prefix (added with `nodad`).
pub const HOST_V6: &str = "2001:db8::1/64";
/// The MAC address of every bridge [`NetNs::add_bridge`] makes (scripts/netns's too; locally
/// administered).
pub const BRIDGE_MAC: &str = "02:b7:1d:9e:00:01";

/// A network namespace `e2e-<pid>-<n>` (loopback up), deleted on drop.
#[derive(Debug)]
pub struct NetNs {
    name: String,
}

impl NetNs {
    /// Creates a fresh namespace with its loopback up.
    pub fn new() -> Result<NetNs> {
        let n = NS_COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("e2e-{}-{n}", std::process::id());
        // A stale namespace of the same name (a pid reused after a crash) goes first.
        if std::path::Path::new("/run/netns").join(&name).exists() {
            let _ = Command::new(ip()?).args(["netns", "del", &name]).output();
        }
        ip_cmd(&["netns", "add", &name])?;
        let ns = NetNs { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// A namespace with a tap device `tap` whose host side has [`HOST_V4`] and [`HOST_V6`].
    pub fn with_tap(tap: &str) -> Result<NetNs> {
        let ns = NetNs::new()?;
        ns.add_tap(tap, &[HOST_V4, HOST_V6])?;
        Ok(ns)
    }

    /// The namespace's name (for `ip netns exec`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its bind-mounted handle, `/run/netns/NAME`.
    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// Adds a tap device with these host-side addresses (IPv6 ones without duplicate address
    /// detection, so they are usable at once) and brings it up.
    pub fn add_tap(&self, tap: &str, addresses: &[&str]) -> Result<()> {
        self.ip(&["tuntap", "add", "dev", tap, "mode", "tap"])?;
        for a in addresses {
            if a.contains(':') {
                self.ip(&["-6", "addr", "add", a, "dev", tap, "nodad"])?;
            } else {
                self.ip(&["addr", "add", a, "dev", tap])?;
            }
        }
        self.ip(&["link", "set", tap, "up"])
    }

    /// Adds a bridge with these host-side (IPv4) addresses and brings it up; appliances whose
    /// spec names it (`network.bridge`) join it, several in one subnet. It has a MAC address of
    /// its own ([`BRIDGE_MAC`]), as an operator's should: one taken from its ports changes as
    /// TAP devices join and leave, and each change flushes the namespace's neighbour entries.
    pub fn add_bridge(&self, bridge: &str, addresses: &[&str]) -> Result<()> {
        self.ip(&[
            "link", "add", bridge, "address", BRIDGE_MAC, "type", "bridge",
        ])?;
        for a in addresses {
            self.ip(&["addr", "add", a, "dev", bridge])?;
        }
        self.ip(&["link", "set", bridge, "up"])
    }

    /// Whether the namespace has a network device `dev` (`ip -n NAME link show dev DEV`).
    pub fn has_link(&self, dev: &str) -> bool {
        ip().is_ok_and(|ip| {
            Command::new(ip)
                .args(["-n", &self.name, "link", "show", "dev", dev])
                .output()
                .is_ok_and(|o| o.status.success())
        })
    }

    /// Runs `ip -n NAME ARGS...`.
    pub fn ip(&self, args: &[&str]) -> Result<()> {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        ip_cmd(&all).map(|_| ())
    }

    /// A command that runs inside the namespace (it enters it between fork and exec).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Result<Command> {
        let handle = self.open()?;
        let mut cmd = Command::new(program);
        // SAFETY: the closure only calls setns(2), which is async-signal-safe; `handle` stays
        // open in the parent for as long as the Command (which owns the closure) lives.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(handle.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        Ok(cmd)
    }

    /// Runs a program with arguments in the namespace and returns its output, whatever its
    /// exit status.
    pub fn output(&self, program: &str, args: &[&str]) -> Result<Output> {
        let mut cmd = self.command(program)?;
        cmd.args(args).stdin(std::process::Stdio::null());
        cmd.output()
            .context(|| format!("running {program} {} in {}", args.join(" "), self.name))
    }

    /// Runs a program in the namespace; an error unless it exits 0.
    pub fn run(&self, program: &str, args: &[&str]) -> Result<Output> {
        let mut cmd = self.command(program)?;
        cmd.args(args).stdin(std::process::Stdio::null());
        run_command(&mut cmd)
            .map_err(|e| Error::new(format!("in netns {}: {}", self.name, e.context), e.detail))
    }

    fn open(&self) -> Result<File> {
        File::open(self.path()).context(|| format!("opening {}", self.path().display()))
    }

    /// Runs `f` on a thread that entered the namespace, and returns its result. Sockets
    /// created there stay in the namespace wherever they are used later.
    pub fn enter<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        let handle = self.open()?;
        let name = self.name.clone();
        std::thread::spawn(move || {
            // SAFETY: setns(2) on our own thread with a namespace descriptor we opened.
            if unsafe { libc::setns(handle.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(Error::new(
                    format!("entering netns {name}"),
                    std::io::Error::last_os_error(),
                ));
            }
            Ok(f())
        })
        .join()
        .map_err(|_| Error::new("entering a netns", "the thread panicked"))?
    }

    /// A UDP socket bound to `addr` inside the namespace.
    pub fn bind_udp(&self, addr: SocketAddr) -> Result<UdpSocket> {
        self.enter(move || UdpSocket::bind(addr))?
            .context(|| format!("binding UDP {addr} in {}", self.name))
    }

    /// A TCP listener bound to `addr` inside the namespace.
    pub fn bind_tcp(&self, addr: SocketAddr) -> Result<TcpListener> {
        self.enter(move || TcpListener::bind(addr))?
            .context(|| format!("binding TCP {addr} in {}", self.name))
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        if let Ok(ip) = ip() {
            let _ = Command::new(ip).args(["netns", "del", &self.name]).output();
        }
    }
}

fn ip() -> Result<PathBuf> {
    crate::find_tool("ip")
}

fn ip_cmd(args: &[&str]) -> Result<Output> {
    let mut cmd = Command::new(ip()?);
    cmd.args(args);
    run_command(&mut cmd)
}
