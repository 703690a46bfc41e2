//! The host side of the VM's network: a TAP device, created when the launcher is root, owned
//! by the VM's user so an unprivileged UML can attach to it, given the spec's host address or
//! joined to its bridge, optionally inside a named network namespace.
//!
//! Done with the kernel's own ioctls from a thread that enters the namespace, not with
//! iproute2: each `ip` run cost 4–30 ms of a start (a process, its libraries, the netns
//! switch) where the ioctls take under 1 ms.

use crate::error::{Error, Result};
use appliance::spec::NetworkSpec;
use std::ffi::CString;
use std::fs::File;
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

/// `SIOCBRADDIF` (linux/sockios.h): enslave an interface to a bridge; not in libc.
const SIOCBRADDIF: libc::c_ulong = 0x89a2;

/// Whether a named network namespace exists (`ip netns add NAME` creates /run/netns/NAME).
pub fn netns_exists(ns: &str) -> bool {
    netns_path(ns).exists()
}

fn netns_path(ns: &str) -> std::path::PathBuf {
    Path::new("/run/netns").join(ns)
}

/// Whether the interface exists (in the namespace, if given).
pub fn exists(name: &str, netns: Option<&str>) -> bool {
    in_netns(netns, || index_of(name)).is_ok_and(|i| i.is_some())
}

/// Creates the TAP device for `uid`/`gid`, gives it its address or bridge and sets it up. A
/// half-configured device is removed again.
pub fn create(net: &NetworkSpec, uid: u32, gid: u32) -> Result<()> {
    let ns = net.netns.as_deref();
    let made = in_netns(ns, || {
        make_persistent_tap(&net.tap, uid, gid).map_err(|e| (Step::Create, e))?;
        let configured = configure(&net.tap, net.host_address.as_deref(), net.bridge.as_deref());
        if configured.is_err() {
            let _ = remove_tap(&net.tap);
        }
        configured
    });
    match made {
        Ok(Ok(())) => Ok(()),
        Ok(Err((step, e))) => Err(Error::host(describe(net, step, &e)).context(step.field(net))),
        Err(e) => Err(Error::host(format!("network.netns: {e}"))),
    }
}

/// Removes the TAP device.
pub fn delete(name: &str, netns: Option<&str>) -> Result<()> {
    let shown = netns
        .map(|n| format!(" in namespace {n}"))
        .unwrap_or_default();
    match in_netns(netns, || remove_tap(name)) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) | Err(e) => Err(Error::host(format!(
            "removing the TAP device {name}{shown}: {e}"
        ))),
    }
}

/// Which part of [`create`] failed, for the message and the spec field it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Create,
    Address,
    Bridge,
    Up,
}

impl Step {
    fn field(self, net: &NetworkSpec) -> &'static str {
        match self {
            Step::Bridge => "network.bridge: joining the bridge",
            Step::Address => "network.host_address: setting the host address",
            Step::Create | Step::Up if net.host_address.is_some() => {
                "network.tap, network.host_address: setting up the TAP device"
            }
            Step::Create | Step::Up => "network.tap: setting up the TAP device",
        }
    }
}

fn describe(net: &NetworkSpec, step: Step, e: &io::Error) -> String {
    let tap = &net.tap;
    match step {
        Step::Create => format!("creating the TAP device {tap}: {e}"),
        Step::Address => format!(
            "giving {tap} the address {}: {e}",
            net.host_address.as_deref().unwrap_or("")
        ),
        Step::Bridge => {
            let b = net.bridge.as_deref().unwrap_or("");
            if e.raw_os_error() == Some(libc::ENODEV) || e.raw_os_error() == Some(libc::EINVAL) {
                format!("the bridge \"{b}\" does not exist (or is not a bridge) in the VM's network namespace; create it (`ip link add {b} address 02:b7:1d:9e:00:01 type bridge`: a MAC of its own, see the README) or fix network.bridge")
            } else {
                format!("joining {tap} to the bridge \"{b}\": {e}")
            }
        }
        Step::Up => format!("setting {tap} up: {e}"),
    }
}

/// Runs `f` in the named network namespace (see [`vmm::netns`]), or here without one.
pub(crate) fn in_netns<T: Send>(ns: Option<&str>, f: impl FnOnce() -> T + Send) -> io::Result<T> {
    match ns {
        Some(ns) => vmm::netns::on_thread_in(&netns_path(ns), || Ok(f())),
        None => Ok(f()),
    }
}

/// The interface's index, `None` if there is no such interface.
fn index_of(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    // SAFETY: a valid NUL-terminated name; if_nametoindex only reads it.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (i != 0).then_some(i)
}

/// An `ifreq` naming `name` (at most 15 bytes: the spec's validation says so too).
fn ifreq(name: &str) -> io::Result<libc::ifreq> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is not an interface name of 1 to 15 bytes"),
        ));
    }
    // SAFETY: ifreq is plain data for which all zeroes is a valid value.
    let mut r: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in r.ifr_name.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    Ok(r)
}

/// Interface flags as `ifreq` holds them (the low 16 bits, where IFF_UP, IFF_TAP and
/// IFF_NO_PI are).
fn short_flags(f: libc::c_int) -> libc::c_short {
    libc::c_short::try_from(f).unwrap_or(0)
}

/// `AF_INET` as a socket address names it (2: it fits).
const AF_INET: libc::sa_family_t = 2;

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `/dev/net/tun` bound to the TAP device `name` (created if it does not exist).
fn attach_tap(name: &str) -> io::Result<File> {
    let tun = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")?;
    let mut r = ifreq(name)?;
    r.ifr_ifru.ifru_flags = short_flags(libc::IFF_TAP | libc::IFF_NO_PI);
    // SAFETY: TUNSETIFF reads and writes the ifreq we own.
    check(unsafe { libc::ioctl(tun.as_raw_fd(), libc::TUNSETIFF, &mut r) })?;
    Ok(tun)
}

/// A persistent TAP device owned by `uid`/`gid` (UML, as that user, attaches to it). An
/// existing device of that name is an error, as `ip tuntap add` makes it.
fn make_persistent_tap(name: &str, uid: u32, gid: u32) -> io::Result<()> {
    if index_of(name).is_some() {
        return Err(io::Error::from_raw_os_error(libc::EEXIST));
    }
    let tun = attach_tap(name)?;
    let fd = tun.as_raw_fd();
    // SAFETY: these tun ioctls take an integer argument.
    unsafe {
        check(libc::ioctl(fd, libc::TUNSETOWNER, libc::c_ulong::from(uid)))?;
        check(libc::ioctl(fd, libc::TUNSETGROUP, libc::c_ulong::from(gid)))?;
        check(libc::ioctl(fd, libc::TUNSETPERSIST, 1 as libc::c_ulong))?;
    }
    Ok(())
}

/// Ends a persistent TAP device: it goes when its last file closes.
fn remove_tap(name: &str) -> io::Result<()> {
    let tun = attach_tap(name)?;
    // SAFETY: TUNSETPERSIST takes an integer argument.
    check(unsafe { libc::ioctl(tun.as_raw_fd(), libc::TUNSETPERSIST, 0 as libc::c_ulong) })
}

fn configure(
    tap: &str,
    host_address: Option<&str>,
    bridge: Option<&str>,
) -> std::result::Result<(), (Step, io::Error)> {
    let index = index_of(tap).ok_or((Step::Create, io::Error::from_raw_os_error(libc::ENODEV)))?;
    if let Some(a) = host_address {
        add_address(tap, index, a).map_err(|e| (Step::Address, e))?;
    }
    if let Some(b) = bridge {
        join_bridge(b, index).map_err(|e| (Step::Bridge, e))?;
    }
    set_up(tap).map_err(|e| (Step::Up, e))
}

fn socket(family: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: socket(2) with constant arguments; the fd is owned from here on.
    let fd = unsafe { libc::socket(family, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    check(fd)?;
    // SAFETY: a fresh fd of ours.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

fn set_up(tap: &str) -> io::Result<()> {
    let s = socket(libc::AF_INET)?;
    let mut r = ifreq(tap)?;
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write the ifreq we own.
    unsafe {
        check(libc::ioctl(s.as_raw_fd(), libc::SIOCGIFFLAGS, &mut r))?;
        r.ifr_ifru.ifru_flags |= short_flags(libc::IFF_UP);
        check(libc::ioctl(s.as_raw_fd(), libc::SIOCSIFFLAGS, &r))
    }
}

fn join_bridge(bridge: &str, index: u32) -> io::Result<()> {
    let s = socket(libc::AF_INET)?;
    let mut r = ifreq(bridge)?;
    r.ifr_ifru.ifru_ifindex = index as libc::c_int;
    // SAFETY: SIOCBRADDIF reads the ifreq we own.
    check(unsafe { libc::ioctl(s.as_raw_fd(), SIOCBRADDIF, &r) })
}

/// `ADDR/PREFIX` (IPv4 or IPv6) on the device.
fn add_address(tap: &str, index: u32, cidr: &str) -> io::Result<()> {
    let (ip, prefix) = parse_cidr(cidr)?;
    match ip {
        IpAddr::V4(v4) => {
            let s = socket(libc::AF_INET)?;
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            for (req, addr) in [
                (libc::SIOCSIFADDR, u32::from(v4)),
                (libc::SIOCSIFNETMASK, mask),
            ] {
                let mut r = ifreq(tap)?;
                let sin = libc::sockaddr_in {
                    sin_family: AF_INET,
                    sin_port: 0,
                    sin_addr: libc::in_addr {
                        s_addr: addr.to_be(),
                    },
                    sin_zero: [0; 8],
                };
                // SAFETY: sockaddr_in fits in the union's sockaddr (both 16 bytes).
                unsafe {
                    std::ptr::write(
                        std::ptr::addr_of_mut!(r.ifr_ifru.ifru_addr).cast::<libc::sockaddr_in>(),
                        sin,
                    );
                    check(libc::ioctl(s.as_raw_fd(), req, &r))?;
                }
            }
            Ok(())
        }
        IpAddr::V6(v6) => {
            let s = socket(libc::AF_INET6)?;
            let r = libc::in6_ifreq {
                ifr6_addr: libc::in6_addr {
                    s6_addr: v6.octets(),
                },
                ifr6_prefixlen: u32::from(prefix),
                ifr6_ifindex: index as libc::c_int,
            };
            // SAFETY: SIOCSIFADDR on an AF_INET6 socket reads the in6_ifreq we own.
            check(unsafe { libc::ioctl(s.as_raw_fd(), libc::SIOCSIFADDR, &r) })
        }
    }
}

fn parse_cidr(cidr: &str) -> io::Result<(IpAddr, u8)> {
    let bad = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{cidr:?} is not ADDRESS/PREFIX"),
        )
    };
    let (a, p) = cidr.split_once('/').ok_or_else(bad)?;
    let ip: IpAddr = a.parse().map_err(|_| bad())?;
    let prefix: u8 = p.parse().map_err(|_| bad())?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    if prefix > max {
        return Err(bad());
    }
    Ok((ip, prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_addresses_read_as_cidr() {
        assert_eq!(
            parse_cidr("192.0.2.1/24").unwrap(),
            ("192.0.2.1".parse().unwrap(), 24)
        );
        assert_eq!(
            parse_cidr("2001:db8::1/64").unwrap(),
            ("2001:db8::1".parse().unwrap(), 64)
        );
        for bad in ["192.0.2.1", "192.0.2.1/33", "x/24", "2001:db8::1/129", "/8"] {
            assert!(parse_cidr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn interface_names_fit_the_kernel() {
        assert!(ifreq("tap-dns1").is_ok());
        assert!(ifreq("").is_err());
        assert!(ifreq("a-name-of-16-byt").is_err());
    }
}
