//! Hand-written rtnetlink: message building, a request/ACK loop, and the few reply parsers
//! we need. Layouts are those of `<linux/netlink.h>`, `<linux/rtnetlink.h>`,
//! `<linux/if_link.h>` and `<linux/if_addr.h>`, in host byte order as netlink wants.

use contract::addr::Cidr;
use nix::errno::Errno;
use nix::sys::socket::{self, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType};
use nix::sys::time::TimeVal;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd};

// The kernel's constants as libc exports them, narrowed to the width of the field they go in
// (libc types most of them `c_int` like the C headers). The narrowing functions check that the
// value fits; every use is a constant, so the check runs when guest-init is compiled.

/// `v` as a u16 field; a compile-time error (every caller is a const) when it does not fit.
// The assert proves the cast exact.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
const fn u16_of(v: libc::c_int) -> u16 {
    assert!(v >= 0 && v <= 0xffff);
    v as u16
}

/// `v` as a u8 field; a compile-time error (every caller is a const) when it does not fit.
// The assert proves the cast exact.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
const fn u8_of(v: libc::c_int) -> u8 {
    assert!(v >= 0 && v <= 0xff);
    v as u8
}

/// A u32 flag as a u8 field; a compile-time error (every caller is a const) when it does not
/// fit.
// The assert proves the cast exact.
#[allow(clippy::cast_possible_truncation)]
const fn u8_of_flag(v: u32) -> u8 {
    assert!(v <= 0xff);
    v as u8
}

const NLMSG_ERROR: u16 = u16_of(libc::NLMSG_ERROR);
const NLMSG_DONE: u16 = u16_of(libc::NLMSG_DONE);

const NLM_F_REQUEST: u16 = u16_of(libc::NLM_F_REQUEST);
const NLM_F_ACK: u16 = u16_of(libc::NLM_F_ACK);
const NLM_F_DUMP: u16 = u16_of(libc::NLM_F_DUMP);
const NLM_F_REPLACE: u16 = u16_of(libc::NLM_F_REPLACE);
const NLM_F_CREATE: u16 = u16_of(libc::NLM_F_CREATE);
/// In an NLMSG_ERROR: the echoed request was cut to its header.
const NLM_F_CAPPED: u16 = u16_of(libc::NLM_F_CAPPED);
/// In an NLMSG_ERROR: extended-ACK attributes follow.
const NLM_F_ACK_TLVS: u16 = u16_of(libc::NLM_F_ACK_TLVS);

use libc::{NETLINK_CAP_ACK, NETLINK_EXT_ACK, SOL_NETLINK};

use libc::{
    IFA_ADDRESS, IFA_BROADCAST, IFA_F_NODAD, IFA_LOCAL, IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU,
};
use libc::{RTA_DST, RTA_GATEWAY, RTA_OIF, RTA_PRIORITY};
use libc::{RTM_GETLINK, RTM_NEWADDR, RTM_NEWLINK, RTM_NEWROUTE};
use libc::{RTN_UNICAST, RTPROT_STATIC, RT_SCOPE_LINK, RT_SCOPE_UNIVERSE, RT_TABLE_MAIN};

/// The size of a `c_int` option value, as setsockopt takes it.
const SOCKLEN_INT: libc::socklen_t = 4;
const _: () = assert!(std::mem::size_of::<libc::c_int>() == 4);

const AF_UNSPEC: u8 = u8_of(libc::AF_UNSPEC);
const AF_INET: u8 = u8_of(libc::AF_INET);
const AF_INET6: u8 = u8_of(libc::AF_INET6);
const IFF_UP: u32 = libc::IFF_UP as u32;

// Not exported by libc: `NLMSG_HDRLEN` is a C macro (`NLMSG_ALIGN(sizeof(struct nlmsghdr))`),
// `IFA_FLAGS` and `NLMSGERR_ATTR_MSG` are enumerators of `<linux/if_addr.h>` and
// `<linux/netlink.h>` that libc lacks.
const NLMSG_HDRLEN: usize = 16;
const IFA_FLAGS: u16 = 8;
const NLMSGERR_ATTR_MSG: u16 = 1;

/// Big enough for any single rtnetlink message the kernel sends us (dump batches are sized
/// to the kernel's NLMSG_GOODSIZE, at most a page plus a bit).
const RECV_BUF: usize = 64 * 1024;

/// How one netlink exchange failed.
#[derive(Debug)]
pub enum Failure {
    Socket {
        op: &'static str,
        errno: Errno,
    },
    Protocol(String),
    /// The kernel answered with an error; `detail` is its extended-ACK message.
    Kernel {
        errno: Errno,
        detail: Option<String>,
    },
}

/// A request being built: header, family-specific struct, then attributes.
pub struct Message {
    buf: Vec<u8>,
}

impl Message {
    fn new(kind: u16, flags: u16, family_header: &[u8]) -> Self {
        let mut buf = Vec::with_capacity(64);
        buf.extend_from_slice(&0u32.to_ne_bytes()); // length, set by `finish`
        buf.extend_from_slice(&kind.to_ne_bytes());
        buf.extend_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes()); // sequence, set by `finish`
        buf.extend_from_slice(&0u32.to_ne_bytes()); // port: 0 addresses the kernel
        buf.extend_from_slice(family_header);
        Message { buf }
    }

    /// Appends one `rtattr`, padded to 4 bytes as netlink requires.
    fn attr(mut self, kind: u16, data: &[u8]) -> Self {
        // Our attributes are at most 16 bytes, so the length always fits.
        let len = u16::try_from(4 + data.len()).unwrap_or(u16::MAX);
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.buf.resize(align4(self.buf.len()), 0);
        self
    }

    fn attr_u32(self, kind: u16, value: u32) -> Self {
        self.attr(kind, &value.to_ne_bytes())
    }

    /// The bytes to send, with length and sequence number filled in.
    pub fn finish(mut self, seq: u32) -> Vec<u8> {
        let len = u32::try_from(self.buf.len())
            .unwrap_or(u32::MAX)
            .to_ne_bytes();
        let seq = seq.to_ne_bytes();
        if let Some(slot) = self.buf.get_mut(0..4) {
            slot.copy_from_slice(&len);
        }
        if let Some(slot) = self.buf.get_mut(8..12) {
            slot.copy_from_slice(&seq);
        }
        self.buf
    }
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// `struct ifinfomsg` for changing link `index`: only the flags in `change` are touched.
fn ifinfomsg(index: u32, flags: u32, change: u32) -> [u8; 16] {
    let mut h = [0u8; 16];
    h[0] = AF_UNSPEC;
    h[4..8].copy_from_slice(&index.to_ne_bytes());
    h[8..12].copy_from_slice(&flags.to_ne_bytes());
    h[12..16].copy_from_slice(&change.to_ne_bytes());
    h
}

pub fn link_dump() -> Message {
    Message::new(RTM_GETLINK, NLM_F_DUMP, &ifinfomsg(0, 0, 0))
}

/// Link up (`flags` = IFF_UP) or down (`flags` = 0).
pub fn link_flags(index: u32, flags: u32) -> Message {
    Message::new(RTM_NEWLINK, NLM_F_ACK, &ifinfomsg(index, flags, IFF_UP))
}

pub fn link_mac(index: u32, mac: [u8; 6]) -> Message {
    Message::new(RTM_NEWLINK, NLM_F_ACK, &ifinfomsg(index, 0, 0)).attr(IFLA_ADDRESS, &mac)
}

pub fn link_mtu(index: u32, mtu: u32) -> Message {
    Message::new(RTM_NEWLINK, NLM_F_ACK, &ifinfomsg(index, 0, 0)).attr_u32(IFLA_MTU, mtu)
}

fn family_and_bytes(ip: IpAddr) -> (u8, Vec<u8>) {
    match ip {
        IpAddr::V4(a) => (AF_INET, a.octets().to_vec()),
        IpAddr::V6(a) => (AF_INET6, a.octets().to_vec()),
    }
}

/// RTM_NEWADDR with CREATE|REPLACE rather than EXCL: if the kernel's own `ip=` autoconfig
/// or an earlier attempt already set the same address, that is success, not EEXIST.
pub fn new_address(index: u32, cidr: Cidr) -> Message {
    let (family, bytes) = family_and_bytes(cidr.addr);
    // IPv6 addresses skip duplicate address detection: DAD keeps a new address
    // "tentative" (unbindable, EADDRNOTAVAIL) for a second or more, so a service started
    // right after us could not listen on it. The host assigns the addresses, so there is
    // nothing for DAD to find.
    let flags = if cidr.is_ipv6() {
        u8_of_flag(IFA_F_NODAD)
    } else {
        0
    };
    let mut h = [0u8; 8];
    h[0] = family;
    h[1] = cidr.prefix;
    h[2] = flags;
    h[3] = RT_SCOPE_UNIVERSE;
    h[4..8].copy_from_slice(&index.to_ne_bytes());
    let mut msg = Message::new(RTM_NEWADDR, NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE, &h)
        .attr(IFA_LOCAL, &bytes)
        .attr(IFA_ADDRESS, &bytes);
    if let Some(brd) = broadcast(cidr) {
        msg = msg.attr(IFA_BROADCAST, &brd);
    }
    if flags != 0 {
        msg = msg.attr_u32(IFA_FLAGS, u32::from(flags));
    }
    msg
}

/// The IPv4 broadcast address (host bits all ones). The kernel does not derive it, and
/// /31 and /32 have none (RFC 3021).
pub fn broadcast(cidr: Cidr) -> Option<[u8; 4]> {
    match cidr.addr {
        IpAddr::V4(a) if cidr.prefix <= 30 => {
            let host_bits = u32::MAX.checked_shr(u32::from(cidr.prefix)).unwrap_or(0);
            Some((u32::from(a) | host_bits).to_be_bytes())
        }
        _ => None,
    }
}

pub struct RouteSpec {
    pub dest: Cidr,
    pub gateway: Option<IpAddr>,
    pub oif: Option<u32>,
    pub metric: Option<u32>,
}

/// RTM_NEWROUTE in the main table, protocol static. CREATE|REPLACE (like `ip route
/// replace`) so a route the kernel's `ip=` autoconfig already made is taken over rather
/// than refused with EEXIST.
pub fn new_route(r: &RouteSpec) -> Message {
    let (family, dst) = family_and_bytes(r.dest.addr);
    // As iproute2 does: an IPv4 route without gateway is on-link (scope link); everything
    // else, and all of IPv6, has universe scope.
    let scope = if r.gateway.is_none() && family == AF_INET {
        RT_SCOPE_LINK
    } else {
        RT_SCOPE_UNIVERSE
    };
    let mut h = [0u8; 12];
    h[0] = family;
    h[1] = r.dest.prefix;
    h[4] = RT_TABLE_MAIN;
    h[5] = RTPROT_STATIC;
    h[6] = scope;
    h[7] = RTN_UNICAST;
    let mut msg = Message::new(RTM_NEWROUTE, NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE, &h);
    // A default route (prefix 0) carries no destination attribute.
    if r.dest.prefix > 0 {
        msg = msg.attr(RTA_DST, &dst);
    }
    if let Some(gw) = r.gateway {
        msg = msg.attr(RTA_GATEWAY, &family_and_bytes(gw).1);
    }
    if let Some(oif) = r.oif {
        msg = msg.attr_u32(RTA_OIF, oif);
    }
    if let Some(metric) = r.metric {
        msg = msg.attr_u32(RTA_PRIORITY, metric);
    }
    msg
}

/// A link from an RTM_NEWLINK payload; `None` if it is malformed or has no name.
pub fn parse_link(payload: &[u8]) -> Option<LinkInfo> {
    let index = u32::from_ne_bytes(payload.get(4..8)?.try_into().ok()?);
    let flags = u32::from_ne_bytes(payload.get(8..12)?.try_into().ok()?);
    let attrs = || attrs(payload.get(16..).unwrap_or_default());
    let name = attrs()
        .find(|(kind, _)| *kind == IFLA_IFNAME)
        .map(|(_, data)| c_string(data))?;
    let mac = attrs()
        .find(|(kind, _)| *kind == IFLA_ADDRESS)
        .and_then(|(_, data)| <[u8; 6]>::try_from(data).ok());
    Some(LinkInfo {
        index,
        flags,
        name,
        mac,
    })
}

/// One link of an RTM_GETLINK dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    pub index: u32,
    pub flags: u32,
    pub name: String,
    /// Its hardware address, when it is a 6-byte (Ethernet) one.
    pub mac: Option<[u8; 6]>,
}

fn c_string(data: &[u8]) -> String {
    let end = data.iter().position(|b| *b == 0).unwrap_or(data.len());
    String::from_utf8_lossy(data.get(..end).unwrap_or_default()).into_owned()
}

/// Iterates `rtattr`s (type, payload); stops at the first malformed one.
pub fn attrs(mut data: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        let len = usize::from(u16::from_ne_bytes(data.get(0..2)?.try_into().ok()?));
        let kind = u16::from_ne_bytes(data.get(2..4)?.try_into().ok()?);
        let payload = data.get(4..len)?;
        data = data.get(align4(len)..).unwrap_or_default();
        // The top bits are NLA_F_NESTED / NLA_F_NET_BYTEORDER, not part of the type.
        Some((kind & 0x3fff, payload))
    })
}

/// One parsed netlink message: type, flags, sequence number and payload.
struct Reply<'a> {
    kind: u16,
    flags: u16,
    seq: u32,
    payload: &'a [u8],
}

/// Splits a received buffer into messages; stops at the first malformed one.
fn replies(mut data: &[u8]) -> impl Iterator<Item = Reply<'_>> {
    std::iter::from_fn(move || {
        let len = u32::from_ne_bytes(data.get(0..4)?.try_into().ok()?) as usize;
        let kind = u16::from_ne_bytes(data.get(4..6)?.try_into().ok()?);
        let flags = u16::from_ne_bytes(data.get(6..8)?.try_into().ok()?);
        let seq = u32::from_ne_bytes(data.get(8..12)?.try_into().ok()?);
        let payload = data.get(NLMSG_HDRLEN..len)?;
        data = data.get(align4(len)..).unwrap_or_default();
        Some(Reply {
            kind,
            flags,
            seq,
            payload,
        })
    })
}

/// The errno of an NLMSG_ERROR (or NLMSG_DONE) payload (0: success) and the kernel's
/// extended-ACK message, if any.
pub fn parse_error(flags: u16, payload: &[u8]) -> Option<(i32, Option<String>)> {
    let error = i32::from_ne_bytes(payload.get(0..4)?.try_into().ok()?);
    if flags & NLM_F_ACK_TLVS == 0 {
        return Some((error, None));
    }
    // After the error code comes the echoed request: its header only when capped,
    // otherwise all of it; then the TLVs.
    let echoed = if flags & NLM_F_CAPPED != 0 {
        NLMSG_HDRLEN
    } else {
        u32::from_ne_bytes(payload.get(4..8)?.try_into().ok()?) as usize
    };
    let tlvs = payload.get(4 + align4(echoed)..).unwrap_or_default();
    let msg = attrs(tlvs)
        .find(|(kind, _)| *kind == NLMSGERR_ATTR_MSG)
        .map(|(_, data)| c_string(data))
        .filter(|m| !m.is_empty());
    Some((error, msg))
}

fn kernel_failure(error: i32, detail: Option<String>) -> Failure {
    Failure::Kernel {
        errno: Errno::from_raw(error.saturating_neg()),
        detail,
    }
}

/// A NETLINK_ROUTE socket bound to the network namespace of the thread that opened it.
pub struct Socket {
    fd: OwnedFd,
    seq: u32,
    buf: Vec<u8>,
}

impl Socket {
    pub fn open() -> Result<Self, Failure> {
        let sock_err = |op| move |errno| Failure::Socket { op, errno };
        let fd = socket::socket(
            socket::AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkRoute,
        )
        .map_err(sock_err("open"))?;
        socket::bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0)).map_err(sock_err("bind"))?;
        // The kernel answers every request at once; the timeout only keeps PID 1 from
        // hanging forever should that ever not hold.
        socket::setsockopt(&fd, socket::sockopt::ReceiveTimeout, &TimeVal::new(10, 0))
            .map_err(sock_err("setsockopt(SO_RCVTIMEO)"))?;
        // Extended ACKs carry the kernel's reason in words; capped ACKs keep the echoed
        // request out of error replies. Both are optional (kernels before 4.12 lack them),
        // so failures are ignored.
        set_netlink_opt(&fd, NETLINK_EXT_ACK);
        set_netlink_opt(&fd, NETLINK_CAP_ACK);
        Ok(Socket {
            fd,
            seq: 0,
            buf: vec![0; RECV_BUF],
        })
    }

    fn send(&mut self, msg: Message) -> Result<u32, Failure> {
        self.seq = self.seq.wrapping_add(1);
        let bytes = msg.finish(self.seq);
        let sent = socket::send(self.fd.as_raw_fd(), &bytes, MsgFlags::empty())
            .map_err(|errno| Failure::Socket { op: "send", errno })?;
        if sent != bytes.len() {
            return Err(Failure::Protocol(format!(
                "sent {sent} of {} bytes",
                bytes.len()
            )));
        }
        Ok(self.seq)
    }

    /// Receives one datagram; returns its length.
    fn receive(&mut self) -> Result<usize, Failure> {
        // MSG_TRUNC makes recv return the real size, so truncation cannot go unnoticed.
        let n = socket::recv(self.fd.as_raw_fd(), &mut self.buf, MsgFlags::MSG_TRUNC).map_err(
            |errno| Failure::Socket {
                op: "receive",
                errno,
            },
        )?;
        if n > self.buf.len() {
            return Err(Failure::Protocol(format!("reply of {n} bytes truncated")));
        }
        Ok(n)
    }

    /// Sends a request (which must ask for an ACK) and waits for the kernel's verdict.
    pub fn request(&mut self, msg: Message) -> Result<(), Failure> {
        let seq = self.send(msg)?;
        loop {
            let n = self.receive()?;
            let data = self.buf.get(..n).unwrap_or_default();
            // Messages with another sequence number are leftovers of an earlier exchange.
            for r in replies(data).filter(|r| r.seq == seq) {
                if r.kind == NLMSG_ERROR {
                    return match parse_error(r.flags, r.payload) {
                        Some((0, _)) => Ok(()),
                        Some((e, detail)) => Err(kernel_failure(e, detail)),
                        None => Err(Failure::Protocol("short NLMSG_ERROR".into())),
                    };
                }
            }
        }
    }

    /// Sends a dump request and collects the payloads of all replies up to NLMSG_DONE.
    pub fn dump(&mut self, msg: Message) -> Result<Vec<Vec<u8>>, Failure> {
        let seq = self.send(msg)?;
        let mut out = Vec::new();
        loop {
            let n = self.receive()?;
            let data = self.buf.get(..n).unwrap_or_default();
            for r in replies(data).filter(|r| r.seq == seq) {
                match r.kind {
                    NLMSG_DONE | NLMSG_ERROR => {
                        return match parse_error(r.flags, r.payload) {
                            Some((e, detail)) if e < 0 => Err(kernel_failure(e, detail)),
                            _ => Ok(out),
                        };
                    }
                    _ => out.push(r.payload.to_vec()),
                }
            }
        }
    }
}

fn set_netlink_opt(fd: &OwnedFd, opt: i32) {
    let one: libc::c_int = 1;
    // SAFETY: a plain setsockopt on a socket we own, with a valid pointer to an int and
    // its size; nix has no wrapper for these netlink options.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            SOL_NETLINK,
            opt,
            std::ptr::addr_of!(one).cast(),
            SOCKLEN_INT,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use contract::addr::parse_cidr;

    fn cidr(s: &str) -> Cidr {
        parse_cidr(s).unwrap()
    }

    #[test]
    fn attributes_are_padded_and_lengths_filled() {
        let bytes = link_mac(7, [2, 0, 0, 0, 0, 1]).finish(42);
        // header 16 + ifinfomsg 16 + attr (4 + 6, padded to 12)
        assert_eq!(bytes.len(), 44);
        assert_eq!(u32::from_ne_bytes(bytes[0..4].try_into().unwrap()), 44);
        assert_eq!(u32::from_ne_bytes(bytes[8..12].try_into().unwrap()), 42);
        assert_eq!(u32::from_ne_bytes(bytes[20..24].try_into().unwrap()), 7);
        let parsed: Vec<_> = attrs(&bytes[32..]).collect();
        assert_eq!(parsed, vec![(IFLA_ADDRESS, &[2u8, 0, 0, 0, 0, 1][..])]);
    }

    #[test]
    fn broadcast_is_all_host_bits() {
        assert_eq!(broadcast(cidr("192.0.2.10/24")), Some([192, 0, 2, 255]));
        assert_eq!(broadcast(cidr("198.51.100.1/0")), Some([255; 4]));
        assert_eq!(broadcast(cidr("198.51.100.1/30")), Some([198, 51, 100, 3]));
        assert_eq!(broadcast(cidr("198.51.100.1/31")), None);
        assert_eq!(broadcast(cidr("198.51.100.1/32")), None);
        assert_eq!(broadcast(cidr("2001:db8::1/64")), None);
    }

    #[test]
    fn default_route_has_no_destination_attribute() {
        let spec = RouteSpec {
            dest: cidr("0.0.0.0/0"),
            gateway: Some("192.0.2.1".parse().unwrap()),
            oif: None,
            metric: None,
        };
        let bytes = new_route(&spec).finish(1);
        let kinds: Vec<_> = attrs(&bytes[28..]).map(|(k, _)| k).collect();
        assert_eq!(kinds, vec![RTA_GATEWAY]);
    }

    #[test]
    fn a_link_is_read_with_its_mac() {
        let mut p = vec![0u8; 16];
        p[4..8].copy_from_slice(&7u32.to_ne_bytes());
        p[8..12].copy_from_slice(&1u32.to_ne_bytes());
        for (kind, data) in [
            (IFLA_IFNAME, &b"vec0\0"[..]),
            (IFLA_ADDRESS, &[2, 0, 0, 0, 0, 9]),
        ] {
            let len = 4 + data.len();
            p.extend_from_slice(&u16::try_from(len).unwrap().to_ne_bytes());
            p.extend_from_slice(&kind.to_ne_bytes());
            p.extend_from_slice(data);
            p.resize(align4(p.len()), 0);
        }
        let l = parse_link(&p).unwrap();
        assert_eq!((l.index, l.flags, l.name.as_str()), (7, 1, "vec0"));
        assert_eq!(l.mac, Some([2, 0, 0, 0, 0, 9]));
        // Without the address attribute (or with one of another length): no MAC.
        let cut = p.len() - 12;
        assert_eq!(parse_link(&p[..cut]).unwrap().mac, None);
    }

    #[test]
    fn malformed_input_does_not_panic() {
        for junk in [
            &[][..],
            &[1],
            &[200, 0, 1, 0],
            &[4, 0, 1, 0, 9],
            &[3, 0, 0, 0],
        ] {
            let _ = attrs(junk).count();
            let _ = replies(junk).count();
            let _ = parse_link(junk);
            let _ = parse_error(NLM_F_ACK_TLVS, junk);
        }
    }

    #[test]
    fn extended_ack_message_is_read() {
        let mut p = (-101i32).to_ne_bytes().to_vec();
        p.extend_from_slice(&[0u8; NLMSG_HDRLEN]); // capped echo of the request
        let text = b"Nexthop has invalid gateway\0";
        p.extend_from_slice(&u16::try_from(4 + text.len()).unwrap().to_ne_bytes());
        p.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
        p.extend_from_slice(text);
        let got = parse_error(NLM_F_CAPPED | NLM_F_ACK_TLVS, &p).unwrap();
        assert_eq!(got, (-101, Some("Nexthop has invalid gateway".into())));
    }
}
