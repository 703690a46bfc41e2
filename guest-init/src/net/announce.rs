//! The guest announces its addresses as its link comes up. A host (or another appliance) that
//! asked for one of them while the VM was still booting (a client already sending it
//! queries) holds an incomplete neighbour entry and asks again only after its retransmit
//! time, a second on Linux: its first answer waited that second although the service was
//! ready. An announcement completes the entry at once (Linux updates an entry it already has
//! from an unsolicited ARP or Neighbor Advertisement; it creates none).
//!
//! - IPv4: `arp_notify` makes the kernel send a gratuitous ARP for each address when the link
//!   goes up, so it is set before.
//! - IPv6: the contract's addresses skip duplicate address detection (`netlink::new_address`),
//!   and the kernel sends its unsolicited Neighbor Advertisement only when DAD ends, so
//!   guest-init sends one per address itself (RFC 4861 section 7.2.6) once the link is up.
//!
//! Both are sent again when the service is ready ([`Announcement::send`]): the first can
//! reach the host before the host's bridge forwards from the new TAP device (its carrier
//! change is handled asynchronously), and a host that still holds the address with the MAC
//! of an earlier VM (another appliance that had the address) would talk to that MAC until
//! its entry expired.

use super::NetError;
use nix::errno::Errno;
use nix::sys::socket::SockaddrIn6;
use nix::sys::socket::{self, sockopt, AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::path::Path;

/// The per-interface IPv4 sysctls.
const CONF: &str = "/proc/sys/net/ipv4/conf";

/// Makes the kernel send a gratuitous ARP for interface `name`'s IPv4 addresses when it goes
/// up. `at` is the interface's contract path, for errors.
pub fn arp_notify(at: &str, name: &str) -> Result<(), NetError> {
    let file = Path::new(CONF).join(name).join("arp_notify");
    std::fs::write(&file, "1").map_err(|e| NetError::Setting {
        path: at.to_string(),
        file: file.display().to_string(),
        error: e.to_string(),
    })
}

/// One interface's addresses, to announce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    pub name: String,
    pub index: u32,
    pub mac: [u8; 6],
    pub addresses: Vec<IpAddr>,
}

impl Announcement {
    /// A gratuitous ARP for each IPv4 address and an advertisement for each IPv6 one; what
    /// failed, as lines for the console (a lost announcement costs a neighbour at most its
    /// retransmit time).
    pub fn send(&self) -> Vec<String> {
        let mut notes = Vec::new();
        for addr in &self.addresses {
            let sent = match addr {
                IpAddr::V4(a) => gratuitous_arp(self.index, *a, self.mac),
                IpAddr::V6(a) => advertise(self.index, *a, self.mac),
            };
            if let Err(e) = sent {
                notes.push(format!(
                    "{} {addr}: not announced: {}",
                    self.name,
                    crate::errno::text(e)
                ));
            }
        }
        notes
    }
}

/// `ETH_P_ARP` in network byte order, as packet sockets take it.
const ARP_PROTOCOL: u16 = 0x0806_u16.to_be();

/// A gratuitous ARP request for `addr` at `mac`: sender and target address both `addr`
/// (RFC 5227 section 3 calls it an ARP Announcement).
pub fn arp_announcement(addr: Ipv4Addr, mac: [u8; 6]) -> [u8; 28] {
    let mut p = [0u8; 28];
    p[0..2].copy_from_slice(&1u16.to_be_bytes()); // Ethernet
    p[2..4].copy_from_slice(&0x0800u16.to_be_bytes()); // IPv4
    p[4] = 6;
    p[5] = 4;
    p[6..8].copy_from_slice(&1u16.to_be_bytes()); // request
    p[8..14].copy_from_slice(&mac);
    p[14..18].copy_from_slice(&addr.octets());
    p[24..28].copy_from_slice(&addr.octets());
    p
}

/// Broadcasts the ARP announcement of `addr` on the link `index` (a packet socket adds the
/// Ethernet header).
pub fn gratuitous_arp(index: u32, addr: Ipv4Addr, mac: [u8; 6]) -> Result<(), Errno> {
    // Protocol 0: a socket that only sends (nix has no ETH_P_ARP protocol to name).
    let fd = socket::socket(
        AddressFamily::Packet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    // SAFETY: sockaddr_ll is plain data; all zero is a valid value.
    let mut to: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    to.sll_family = libc::sa_family_t::try_from(libc::AF_PACKET).unwrap_or_default();
    to.sll_protocol = ARP_PROTOCOL;
    to.sll_ifindex = libc::c_int::try_from(index).map_err(|_| Errno::EINVAL)?;
    to.sll_halen = 6;
    to.sll_addr[..6].copy_from_slice(&[0xff; 6]);
    let packet = arp_announcement(addr, mac);
    // SAFETY: `packet` and `to` are valid for the lengths given (nix's LinkAddr has no
    // constructor to build a destination with).
    Errno::result(unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            packet.as_ptr().cast(),
            packet.len(),
            0,
            std::ptr::from_ref(&to).cast(),
            libc::socklen_t::try_from(std::mem::size_of::<libc::sockaddr_ll>())
                .unwrap_or(libc::socklen_t::MAX),
        )
    })
    .map(drop)
}

/// ICMPv6 type of a Neighbor Advertisement.
const NEIGHBOR_ADVERTISEMENT: u8 = 136;
/// Its Override flag: the receiver replaces the link-layer address it has.
const OVERRIDE: u8 = 0x20;
/// The option that carries the sender's link-layer address, and its length in 8-byte units.
const TARGET_LINK_LAYER: u8 = 2;
/// Neighbour discovery is accepted only with the hop limit no router can have decremented.
const ND_HOP_LIMIT: libc::c_int = 255;

/// An unsolicited Neighbor Advertisement of `target` at `mac` (the kernel fills in the
/// checksum of an ICMPv6 raw socket).
pub fn advertisement(target: Ipv6Addr, mac: [u8; 6]) -> [u8; 32] {
    let mut p = [0u8; 32];
    p[0] = NEIGHBOR_ADVERTISEMENT;
    p[4] = OVERRIDE;
    p[8..24].copy_from_slice(&target.octets());
    p[24] = TARGET_LINK_LAYER;
    p[25] = 1;
    p[26..32].copy_from_slice(&mac);
    p
}

/// Sends the advertisement of `target` (an address of the link `index`, whose hardware address
/// is `mac`) to all nodes on that link.
pub fn advertise(index: u32, target: Ipv6Addr, mac: [u8; 6]) -> Result<(), Errno> {
    let fd = socket::socket(
        AddressFamily::Inet6,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::IcmpV6,
    )?;
    socket::setsockopt(&fd, sockopt::Ipv6MulticastHops, &ND_HOP_LIMIT)?;
    // From the address itself: it is usable at once (no DAD), the link-local one may not be.
    let scope = if target.is_unicast_link_local() {
        index
    } else {
        0
    };
    let from = SockaddrIn6::from(SocketAddrV6::new(target, 0, 0, scope));
    socket::bind(fd.as_raw_fd(), &from)?;
    // The scope of the link-local multicast destination names the link.
    let all_nodes = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
    let to = SockaddrIn6::from(SocketAddrV6::new(all_nodes, 0, 0, index));
    let packet = advertisement(target, mac);
    socket::sendto(fd.as_raw_fd(), &packet, &to, MsgFlags::empty()).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_arp_announcement_is_a_request_for_its_own_address() {
        let p = arp_announcement("192.0.2.90".parse().unwrap(), [2, 1, 2, 3, 4, 5]);
        assert_eq!(&p[0..8], &[0, 1, 8, 0, 6, 4, 0, 1], "Ethernet/IPv4 request");
        assert_eq!(&p[8..14], &[2, 1, 2, 3, 4, 5], "sender MAC");
        assert_eq!(&p[14..18], &[192, 0, 2, 90], "sender address");
        assert_eq!(&p[18..24], &[0; 6], "target MAC unknown");
        assert_eq!(&p[24..28], &[192, 0, 2, 90], "target address: the same");
    }

    #[test]
    fn an_advertisement_names_the_target_and_its_mac_with_override() {
        let target: Ipv6Addr = "2001:db8::90".parse().unwrap();
        let p = advertisement(target, [2, 0x5f, 0xec, 0x76, 0x0c, 0xe8]);
        assert_eq!(p[0], 136, "type: Neighbor Advertisement");
        assert_eq!(p[1], 0, "code");
        assert_eq!(&p[2..4], &[0, 0], "checksum: the kernel's");
        assert_eq!(p[4], 0x20, "Override, neither Router nor Solicited");
        assert_eq!(&p[8..24], &target.octets());
        assert_eq!(
            &p[24..26],
            &[2, 1],
            "target link-layer address option, 8 bytes"
        );
        assert_eq!(&p[26..32], &[2, 0x5f, 0xec, 0x76, 0x0c, 0xe8]);
    }
}
