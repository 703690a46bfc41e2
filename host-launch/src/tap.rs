//! The host side of the VM's network: a TAP device, created with the `ip` tool (iproute2)
//! when the launcher is root, owned by the VM's user so an unprivileged UML can attach to it,
//! given the spec's host address or joined to its bridge, optionally inside a named network
//! namespace (`ip -n NS ...`).

use crate::error::{Error, Result};
use crate::spec::NetworkSpec;
use std::path::Path;
use std::process::{Command, Stdio};

/// `ip [-n NS] ARGS...`, failing with its stderr.
fn ip(netns: Option<&str>, args: &[&str]) -> Result<()> {
    let mut cmd = Command::new("ip");
    if let Some(ns) = netns {
        cmd.args(["-n", ns]);
    }
    cmd.args(args).stdin(Stdio::null());
    let shown = format!(
        "ip {}{}",
        netns.map(|n| format!("-n {n} ")).unwrap_or_default(),
        args.join(" ")
    );
    let out = cmd
        .output()
        .map_err(|e| Error::host(format!("running `{shown}`: {e} (is iproute2 installed?)")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::host(format!(
            "`{shown}` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Whether a named network namespace exists (`ip netns add NAME` creates /run/netns/NAME).
pub fn netns_exists(ns: &str) -> bool {
    Path::new("/run/netns").join(ns).exists()
}

/// Whether the interface exists (in the namespace, if given).
pub fn exists(name: &str, netns: Option<&str>) -> bool {
    let mut cmd = Command::new("ip");
    if let Some(ns) = netns {
        cmd.args(["-n", ns]);
    }
    cmd.args(["link", "show", "dev", name])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Creates the TAP device for `uid`/`gid`, gives it its address or bridge and sets it up.
/// A half-configured device is removed again.
pub fn create(net: &NetworkSpec, uid: u32, gid: u32) -> Result<()> {
    let ns = net.netns.as_deref();
    let (u, g) = (uid.to_string(), gid.to_string());
    ip(
        ns,
        &[
            "tuntap", "add", "dev", &net.tap, "mode", "tap", "user", &u, "group", &g,
        ],
    )
    .map_err(|e| e.context("network.tap: creating the TAP device"))?;
    let configure = || -> Result<()> {
        if let Some(a) = &net.host_address {
            ip(ns, &["addr", "add", a, "dev", &net.tap])
                .map_err(|e| e.context("network.host_address"))?;
        }
        if let Some(b) = &net.bridge {
            ip(ns, &["link", "set", "dev", &net.tap, "master", b])
                .map_err(|e| e.context("network.bridge: joining the bridge"))?;
        }
        ip(ns, &["link", "set", "dev", &net.tap, "up"])
    };
    if let Err(e) = configure() {
        let _ = delete(&net.tap, ns);
        return Err(e);
    }
    Ok(())
}

/// Removes the TAP device.
pub fn delete(name: &str, netns: Option<&str>) -> Result<()> {
    ip(netns, &["link", "del", "dev", name])
}
