//! A client for UML's management console (mconsole): a Unix datagram socket at
//! `<uml_dir>/<umid>/mconsole`, which for a jailed VM is inside its private `/tmp`
//! ([`crate::cmdline::mconsole_in_jail`]) and reached from the host through
//! `/proc/<UML pid>/root`.
//!
//! Protocol (arch/um/include/shared/mconsole.h, version 2, host byte order):
//! a request is `magic u32 = 0xcafebabe, version u32 = 2, len u32, data[512]` with the command
//! text in `data[..len]` (len < 512); every reply is `err u32, more u32, len u32, data[len]`,
//! where `data` is NUL-terminated text and `len` counts the NUL. A long answer comes as several
//! replies, all but the last with `more = 1`.
//!
//! UML sends replies to the requester's address. A jailed UML resolves paths in its own mount
//! namespace, where none of the host's exist, so the client binds an abstract address (the
//! kernel picks it: autobind), which lives in a network namespace instead: the client's socket
//! is made in the VM's. Other VMs of that namespace could send to it too, so every reply's
//! sender credentials (SCM_CREDENTIALS) must carry the VM's own uid.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub const MAGIC: u32 = 0xcafe_babe;
pub const VERSION: u32 = 2;
pub const MAX_DATA: usize = 512;
/// Size of a request on the wire: three u32 and the data buffer.
pub const REQUEST_LEN: usize = 12 + MAX_DATA;

/// A request or reply that breaks the protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("mconsole command of {0} bytes is too long (at most {max})", max = MAX_DATA - 1)]
    CommandTooLong(usize),
    #[error("mconsole reply of {0} bytes is too short")]
    ShortReply(usize),
    #[error("mconsole reply announces {0} bytes of data (at most {MAX_DATA})")]
    TooMuchData(usize),
    #[error("mconsole reply holds {held} bytes of data but announces {announced}")]
    Truncated { held: usize, announced: usize },
}

/// A request datagram for `command` (e.g. `version`, `cad`, `halt`, `sysrq s`).
pub fn encode_request(command: &str) -> Result<Vec<u8>, ProtocolError> {
    let bytes = command.as_bytes();
    if bytes.len() >= MAX_DATA {
        return Err(ProtocolError::CommandTooLong(bytes.len()));
    }
    let mut out = Vec::with_capacity(REQUEST_LEN);
    out.extend_from_slice(&MAGIC.to_ne_bytes());
    out.extend_from_slice(&VERSION.to_ne_bytes());
    // Below MAX_DATA (checked above), so it fits.
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_ne_bytes());
    out.extend_from_slice(bytes);
    out.resize(REQUEST_LEN, 0);
    Ok(out)
}

/// One reply datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyPart {
    pub err: bool,
    pub more: bool,
    pub text: String,
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    let bytes: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_ne_bytes(bytes))
}

/// Decodes one reply datagram.
pub fn decode_reply(b: &[u8]) -> Result<ReplyPart, ProtocolError> {
    let short = || ProtocolError::ShortReply(b.len());
    let err = u32_at(b, 0).ok_or_else(short)?;
    let more = u32_at(b, 4).ok_or_else(short)?;
    let len = u32_at(b, 8).ok_or_else(short)? as usize;
    if len > MAX_DATA {
        return Err(ProtocolError::TooMuchData(len));
    }
    let data = b
        .get(12..12 + len)
        .ok_or_else(|| ProtocolError::Truncated {
            held: b.len().saturating_sub(12),
            announced: len,
        })?;
    let text = data.split(|c| *c == 0).next().unwrap_or_default();
    Ok(ReplyPart {
        err: err != 0,
        more: more != 0,
        text: String::from_utf8_lossy(text).into_owned(),
    })
}

/// A whole answer: the replies' texts joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub err: bool,
    pub text: String,
}

/// Where a VM's mconsole is and who answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The socket's path as the launcher sees it.
    pub socket: PathBuf,
    /// The network namespace UML runs in (its replies go to an address there).
    pub netns: Option<PathBuf>,
    /// The uid UML runs as: replies from anyone else are ignored.
    pub uid: Option<u32>,
}

impl Target {
    /// The mconsole of the jailed VM whose UML has host pid `pid`.
    pub fn jailed(pid: u32, umid: &str, netns: Option<PathBuf>, uid: u32) -> Target {
        let inside = crate::cmdline::mconsole_in_jail(umid);
        let rel = inside.strip_prefix("/").unwrap_or(&inside);
        Target {
            socket: Path::new("/proc")
                .join(pid.to_string())
                .join("root")
                .join(rel),
            netns,
            uid: Some(uid),
        }
    }
}

/// `AF_UNIX` as a socket address names it (1: it fits).
const AF_UNIX: libc::sa_family_t = 1;

/// The size of a socket argument (a few bytes: it fits).
fn socklen(size: usize) -> libc::socklen_t {
    libc::socklen_t::try_from(size).unwrap_or(libc::socklen_t::MAX)
}

/// A client socket with an abstract, kernel-chosen address in the target's network namespace.
#[derive(Debug)]
pub struct Client {
    fd: OwnedFd,
    uid: Option<u32>,
}

fn last_error() -> std::io::Error {
    std::io::Error::last_os_error()
}

/// A datagram socket, autobound, receiving its senders' credentials.
fn autobound_socket() -> std::io::Result<OwnedFd> {
    // SAFETY: socket(2) returns a new descriptor that only the OwnedFd owns.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(last_error());
    }
    // SAFETY: as above.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let addr = libc::sockaddr_un {
        sun_family: AF_UNIX,
        sun_path: [0; 108],
    };
    let one: libc::c_int = 1;
    // SAFETY: bind with only the family's length asks for autobind; setsockopt reads `one`.
    unsafe {
        let len = socklen(std::mem::size_of::<libc::sa_family_t>());
        if libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_un).cast(),
            len,
        ) != 0
        {
            return Err(last_error());
        }
        let size = socklen(std::mem::size_of::<libc::c_int>());
        let p = (&one as *const libc::c_int).cast();
        if libc::setsockopt(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_PASSCRED, p, size) != 0 {
            return Err(last_error());
        }
    }
    Ok(fd)
}

/// [`autobound_socket`] made on a thread that entered `netns` (a socket keeps the network
/// namespace it was made in; only that thread changes namespace).
fn socket_in(netns: &Path) -> std::io::Result<OwnedFd> {
    crate::netns::on_thread_in(netns, autobound_socket)
}

impl Client {
    /// A client for `target`.
    pub fn new(target: &Target) -> std::io::Result<Client> {
        let fd = match &target.netns {
            Some(ns) => socket_in(ns)?,
            None => autobound_socket()?,
        };
        Ok(Client {
            fd,
            uid: target.uid,
        })
    }

    fn send_to(&self, buf: &[u8], path: &Path) -> std::io::Result<()> {
        let bytes = path.as_os_str().as_bytes();
        let mut addr = libc::sockaddr_un {
            sun_family: AF_UNIX,
            sun_path: [0; 108],
        };
        if bytes.len() >= addr.sun_path.len() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("the mconsole path {} is too long", path.display()),
            ));
        }
        for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
            *d = *s as libc::c_char;
        }
        let len = socklen(std::mem::size_of::<libc::sockaddr_un>());
        // SAFETY: sendto reads `buf` and the address within their lengths.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                buf.as_ptr().cast(),
                buf.len(),
                0,
                (&addr as *const libc::sockaddr_un).cast(),
                len,
            )
        };
        if n < 0 {
            return Err(last_error());
        }
        Ok(())
    }

    /// One datagram and its sender's uid, waiting until `deadline`.
    fn recv(&self, buf: &mut [u8], deadline: Instant) -> std::io::Result<(usize, Option<u32>)> {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = libc::c_int::try_from(left.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: poll on one descriptor we own.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        if rc < 0 {
            return Err(last_error());
        }
        if rc == 0 {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let mut cmsg = [0u64; 8];
        // SAFETY: msghdr is plain data; zeroed is a valid empty header.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cmsg.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&cmsg) as _;
        // SAFETY: recvmsg writes within the iovec and control buffer given.
        let n = unsafe { libc::recvmsg(self.fd.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
        if n < 0 {
            return Err(last_error());
        }
        Ok((usize::try_from(n).unwrap_or(0), sender_uid(&msg)))
    }

    /// Sends `command` to the mconsole socket at `socket` and collects the answer.
    pub fn command(
        &self,
        socket: &Path,
        command: &str,
        timeout: Duration,
    ) -> std::io::Result<Reply> {
        let req = encode_request(command)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        self.send_to(&req, socket)?;
        let deadline = Instant::now() + timeout;
        let mut text = String::new();
        let mut err = false;
        let mut buf = [0u8; REQUEST_LEN + 16];
        loop {
            let (n, uid) = match self.recv(&mut buf, deadline) {
                Ok(r) => r,
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("no answer to mconsole '{command}' within {timeout:?}"),
                    ))
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            };
            if self.uid.is_some() && uid != self.uid {
                continue; // not from the VM: never taken as its answer
            }
            let part = decode_reply(&buf[..n])
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
            err |= part.err;
            if text.len() < MAX_ANSWER {
                text.push_str(&part.text);
            }
            if !part.more {
                return Ok(Reply { err, text });
            }
        }
    }
}

/// The most text kept of one answer (a guest-controlled kernel could send `more` forever;
/// the deadline ends that).
const MAX_ANSWER: usize = 64 * 1024;

/// The uid in a received message's SCM_CREDENTIALS.
fn sender_uid(msg: &libc::msghdr) -> Option<u32> {
    // SAFETY: CMSG_FIRSTHDR/NXTHDR walk the control buffer recvmsg filled, within its length.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_CREDENTIALS {
                let cred = libc::CMSG_DATA(c).cast::<libc::ucred>().read_unaligned();
                return Some(cred.uid);
            }
            c = libc::CMSG_NXTHDR(msg, c);
        }
    }
    None
}

/// One command with a fresh client.
pub fn send(target: &Target, command: &str, timeout: Duration) -> std::io::Result<Reply> {
    Client::new(target)?.command(&target.socket, command, timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_layout() {
        let r = encode_request("cad").unwrap();
        assert_eq!(r.len(), 524);
        assert_eq!(&r[0..4], &0xcafebabe_u32.to_ne_bytes());
        assert_eq!(&r[4..8], &2u32.to_ne_bytes());
        assert_eq!(&r[8..12], &3u32.to_ne_bytes());
        assert_eq!(&r[12..15], b"cad");
        assert!(r[15..].iter().all(|b| *b == 0));
        assert!(encode_request(&"x".repeat(512)).is_err());
    }

    #[test]
    fn reply_decoding() {
        let mut b = Vec::new();
        b.extend_from_slice(&1u32.to_ne_bytes());
        b.extend_from_slice(&0u32.to_ne_bytes());
        b.extend_from_slice(&16u32.to_ne_bytes());
        b.extend_from_slice(b"Unknown command\0");
        let p = decode_reply(&b).unwrap();
        assert!(p.err && !p.more);
        assert_eq!(p.text, "Unknown command");
        assert!(decode_reply(&b[..8]).is_err());
        assert!(decode_reply(&b[..20])
            .unwrap_err()
            .to_string()
            .contains("announces 16"));
    }
}
