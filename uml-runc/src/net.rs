//! The container's network namespace, given to the VM: podman (its CNI or netavark plugins)
//! left a veth there with the container's address, routes and MAC. The guest takes those
//! (its `vec0` gets the veth's MAC and addresses), and a TAP device in the namespace is
//! joined to the veth both ways, as Kata Containers does: a `tc` mirred redirect sends every
//! frame that arrives on the veth out of the TAP (to UML), and the nftables table
//! [`TABLE`] on the TAP's ingress forwards (`fwd to`) what UML sends out of the veth, once the
//! appliance's anti-spoofing rules passed it (its MAC, ARP, IPv4 and IPv6 sources,
//! neighbour advertisements; no RA, redirect, DHCP or DHCPv6 server; see
//! `appliance::netpolicy`). That direction is nftables and not a second tc redirect because
//! tc's ingress runs before netfilter's: a redirect there would bypass the rules. Peers reach
//! the guest exactly as they would the container. Commands run in the
//! namespace by its path (`nsenter --net=PATH`), whoever made it.

use crate::error::{Error, Result};
use crate::service::GuestNet;
use appliance::netpolicy::{self, Policy};
use contract::Route;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};

/// The nftables table of the guest's anti-spoofing rules, in the container's namespace (one
/// VM per namespace, as the one TAP device name says).
pub const TABLE: &str = "uml-runc";

/// What `ip -j` may print: a namespace with a few links is a few KiB.
const MAX_IP_OUTPUT: usize = 1 << 20;

/// `nsenter --net=NS PROG ARGS...`, its stdout on success, else an error with its stderr.
fn run_in(ns: &Path, prog: &str, args: &[&str]) -> Result<Vec<u8>> {
    run_in_with(ns, prog, args, None)
}

/// [`run_in`] with `input` on the program's standard input.
fn run_in_with(ns: &Path, prog: &str, args: &[&str], input: Option<&str>) -> Result<Vec<u8>> {
    let shown = format!("nsenter --net={} {prog} {}", ns.display(), args.join(" "));
    let spawned = Command::new("nsenter")
        .arg(format!("--net={}", ns.display()))
        .arg(prog)
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
                std::io::Write::write_all(&mut stdin, text.as_bytes())?;
            }
            child.wait_with_output()
        });
    let out = spawned.map_err(|e| {
        Error::new(format!(
            "running `{shown}`: {e} (util-linux, iproute2, nftables)"
        ))
    })?;
    if !out.status.success() {
        return Err(Error::new(format!(
            "`{shown}` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    if out.stdout.len() > MAX_IP_OUTPUT {
        return Err(Error::new(format!(
            "`{shown}` printed more than {MAX_IP_OUTPUT} bytes"
        )));
    }
    Ok(out.stdout)
}

fn json(ns: &Path, args: &[&str]) -> Result<Value> {
    let out = run_in(ns, "ip", args)?;
    serde_json::from_slice(&out).map_err(|e| Error::new(format!("ip {}: {e}", args.join(" "))))
}

/// The container's interface: the one link with a global address, and the guest's network.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub link: String,
    pub guest: GuestNet,
}

/// Looks at the namespace: its one non-loopback link with addresses, those addresses
/// (IPv4 and global IPv6), its MAC and MTU, and the routes through a gateway.
pub fn inspect(ns: &Path) -> Result<Found> {
    let addrs = json(ns, &["-j", "addr", "show"])?;
    let links = links_with_addresses(&addrs);
    let (link, guest) = match links.as_slice() {
        [one] => one.clone(),
        [] => {
            return Err(Error::new(format!(
                "the container's network namespace {} has no interface with an address; run \
                 it on a network (podman --network NAME)",
                ns.display()
            )))
        }
        _ => {
            return Err(Error::new(format!(
                "the container's network namespace {} has {} interfaces with addresses; a VM has \
                 one: give the container one network",
                ns.display(),
                links.len()
            )))
        }
    };
    let mut guest = guest;
    for family in ["-4", "-6"] {
        let routes = json(ns, &["-j", family, "route", "show"])?;
        guest.routes.extend(gateway_routes(&routes, &link));
    }
    Ok(Found { link, guest })
}

/// Each link (not `lo`) that has an IPv4 or global IPv6 address, with its network.
fn links_with_addresses(v: &Value) -> Vec<(String, GuestNet)> {
    let mut out = Vec::new();
    for l in v.as_array().into_iter().flatten() {
        let name = l["ifname"].as_str().unwrap_or_default();
        if name.is_empty() || name == "lo" {
            continue;
        }
        let addresses: Vec<String> = l["addr_info"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["scope"].as_str() == Some("global"))
            .filter_map(|a| {
                Some(format!(
                    "{}/{}",
                    a["local"].as_str()?,
                    a["prefixlen"].as_u64()?
                ))
            })
            .collect();
        if addresses.is_empty() {
            continue;
        }
        out.push((
            name.to_string(),
            GuestNet {
                addresses,
                mac: l["address"].as_str().map(str::to_string),
                mtu: l["mtu"].as_u64().and_then(|m| u32::try_from(m).ok()),
                routes: Vec::new(),
            },
        ));
    }
    out
}

/// The routes on `link` that have a gateway (the connected ones come with the addresses).
fn gateway_routes(v: &Value, link: &str) -> Vec<Route> {
    let mut out = Vec::new();
    for r in v.as_array().into_iter().flatten() {
        let (Some(gw), Some(dst)) = (r["gateway"].as_str(), r["dst"].as_str()) else {
            continue;
        };
        if r["dev"].as_str() != Some(link) {
            continue;
        }
        let destination = if dst == "default" {
            if gw.contains(':') {
                "::/0"
            } else {
                "0.0.0.0/0"
            }
            .to_string()
        } else if dst.contains('/') {
            dst.to_string()
        } else if dst.contains(':') {
            format!("{dst}/128")
        } else {
            format!("{dst}/32")
        };
        out.push(Route {
            destination,
            gateway: Some(gw.to_string()),
            interface: None,
            metric: r["metric"].as_u64().and_then(|m| u32::try_from(m).ok()),
        });
    }
    out
}

/// Creates TAP `tap` for `uid` in the namespace and joins it to `link` both ways, the guest's
/// side through `policy` (see the module documentation).
pub fn connect(
    ns: &Path,
    tap: &str,
    link: &str,
    uid: u32,
    mtu: Option<u32>,
    policy: &Policy,
) -> Result<()> {
    let uid_s = uid.to_string();
    run_in(
        ns,
        "ip",
        &[
            "tuntap", "add", "dev", tap, "mode", "tap", "user", &uid_s, "group", &uid_s,
        ],
    )?;
    let r = (|| {
        let mtu_s = mtu.unwrap_or(1500).to_string();
        run_in(ns, "ip", &["link", "set", "dev", tap, "mtu", &mtu_s, "up"])?;
        run_in(ns, "tc", &["qdisc", "add", "dev", link, "ingress"])?;
        run_in(
            ns,
            "tc",
            &[
                "filter", "add", "dev", link, "parent", "ffff:", "protocol", "all", "u32", "match",
                "u8", "0", "0", "action", "mirred", "egress", "redirect", "dev", tap,
            ],
        )?;
        let mut p = policy.clone();
        p.device = tap.to_string();
        let script = netpolicy::render(&p, netpolicy::Pass::ForwardTo(link));
        run_in_with(ns, "nft", &["-f", "-"], Some(&script))
            .map_err(|e| e.context("installing the guest's anti-spoofing rules"))?;
        Ok(())
    })();
    if r.is_err() {
        disconnect(ns, tap, link);
    }
    r
}

/// Removes the TAP device and the veth's ingress redirect (each if there: a namespace podman
/// already removed takes them with it).
pub fn disconnect(ns: &Path, tap: &str, link: &str) {
    if !ns.exists() {
        return;
    }
    let _ = run_in(ns, "tc", &["qdisc", "del", "dev", link, "ingress"]);
    let _ = run_in(ns, "nft", &["delete", "table", "netdev", TABLE]);
    let _ = run_in(ns, "ip", &["link", "del", "dev", tap]);
}

/// Whether link `name` exists in the namespace.
pub fn exists(ns: &Path, name: &str) -> bool {
    run_in(ns, "ip", &["link", "show", "dev", name]).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_container_link_and_its_gateway() {
        let addrs: Value = serde_json::from_str(
            r#"[{"ifname":"lo","address":"00:00:00:00:00:00","mtu":65536,"addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8,"scope":"host"}]},
               {"ifname":"eth0","address":"36:7c:ee:4a:10:02","mtu":1500,"addr_info":[{"family":"inet","local":"10.89.0.5","prefixlen":24,"scope":"global"},{"family":"inet6","local":"fe80::1","prefixlen":64,"scope":"link"}]}]"#,
        )
        .unwrap();
        let l = links_with_addresses(&addrs);
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].0, "eth0");
        assert_eq!(l[0].1.addresses, ["10.89.0.5/24"]);
        assert_eq!(l[0].1.mac.as_deref(), Some("36:7c:ee:4a:10:02"));
        let routes: Value = serde_json::from_str(
            r#"[{"dst":"default","gateway":"10.89.0.1","dev":"eth0","flags":[]},
               {"dst":"10.89.0.0/24","dev":"eth0","protocol":"kernel","scope":"link","prefsrc":"10.89.0.5"},
               {"dst":"203.0.113.7","gateway":"10.89.0.9","dev":"eth0"}]"#,
        )
        .unwrap();
        let r = gateway_routes(&routes, "eth0");
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].destination, "0.0.0.0/0");
        assert_eq!(r[0].gateway.as_deref(), Some("10.89.0.1"));
        assert_eq!(r[1].destination, "203.0.113.7/32");
    }
}
