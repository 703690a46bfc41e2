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

/// Creates the TAP device for `uid`/`gid`, gives it its address or bridge and sets it up, in
/// one `ip -batch` (each `ip` run costs about 10 ms of a start; this was four of them). A
/// half-configured device is removed again.
pub fn create(net: &NetworkSpec, uid: u32, gid: u32) -> Result<()> {
    let ns = net.netns.as_deref();
    let tap = &net.tap;
    let mut lines = vec![format!(
        "tuntap add dev {tap} mode tap user {uid} group {gid}"
    )];
    if let Some(a) = &net.host_address {
        lines.push(format!("addr add {a} dev {tap}"));
    }
    match &net.bridge {
        Some(b) => lines.push(format!("link set dev {tap} master {b} up")),
        None => lines.push(format!("link set dev {tap} up")),
    }
    if let Err(e) = ip_batch(ns, &lines) {
        if exists(tap, ns) {
            let _ = delete(tap, ns);
        }
        let field = field_of(net, &e.message);
        return Err(e.context(field));
    }
    Ok(())
}

/// `ip [-n NS] -batch -` of `lines`, failing with its stderr.
fn ip_batch(netns: Option<&str>, lines: &[String]) -> Result<()> {
    use std::io::Write;
    let mut cmd = Command::new("ip");
    if let Some(ns) = netns {
        cmd.args(["-n", ns]);
    }
    let shown = format!(
        "ip {}-batch ({})",
        netns.map(|n| format!("-n {n} ")).unwrap_or_default(),
        lines.join("; ")
    );
    let mut child = cmd
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::host(format!("running `{shown}`: {e} (is iproute2 installed?)")))?;
    let input = lines.join("\n") + "\n";
    let wrote = child
        .stdin
        .take()
        .map(|mut i| i.write_all(input.as_bytes()));
    let out = child
        .wait_with_output()
        .map_err(|e| Error::host(format!("running `{shown}`: {e}")))?;
    if out.status.success() && matches!(wrote, Some(Ok(()))) {
        Ok(())
    } else {
        Err(Error::host(format!(
            "`{shown}` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// The spec field a failed `ip -batch` of [`create`] is about: ip names no line, but it
/// quotes a bridge that does not exist.
fn field_of(net: &NetworkSpec, message: &str) -> &'static str {
    match &net.bridge {
        Some(b) if message.contains(&format!("\"{b}\"")) => "network.bridge: joining the bridge",
        _ if net.host_address.is_some() => {
            "network.tap, network.host_address: setting up the TAP device"
        }
        _ => "network.tap: setting up the TAP device",
    }
}

/// Removes the TAP device.
pub fn delete(name: &str, netns: Option<&str>) -> Result<()> {
    ip(netns, &["link", "del", "dev", name])
}
