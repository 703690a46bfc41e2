//! A client for UML's management console (mconsole): a Unix datagram socket at
//! `<uml_dir>/<umid>/mconsole`.
//!
//! Protocol (arch/um/include/shared/mconsole.h, version 2, host byte order):
//! a request is `magic u32 = 0xcafebabe, version u32 = 2, len u32, data[512]` with the command
//! text in `data[..len]` (len < 512); every reply is `err u32, more u32, len u32, data[len]`,
//! where `data` is NUL-terminated text and `len` counts the NUL. A long answer comes as several
//! replies, all but the last with `more = 1`. UML sends replies to the requester's address, so
//! the client binds its own socket (a path, which also works across network namespaces, unlike
//! an abstract name) and makes it writable for an unprivileged UML.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const MAGIC: u32 = 0xcafe_babe;
pub const VERSION: u32 = 2;
pub const MAX_DATA: usize = 512;
/// Size of a request on the wire: three u32 and the data buffer.
pub const REQUEST_LEN: usize = 12 + MAX_DATA;

/// A request datagram for `command` (e.g. `version`, `cad`, `halt`, `sysrq s`).
pub fn encode_request(command: &str) -> Result<Vec<u8>, String> {
    let bytes = command.as_bytes();
    if bytes.len() >= MAX_DATA {
        return Err(format!(
            "mconsole command of {} bytes is too long (at most {})",
            bytes.len(),
            MAX_DATA - 1
        ));
    }
    let mut out = Vec::with_capacity(REQUEST_LEN);
    out.extend_from_slice(&MAGIC.to_ne_bytes());
    out.extend_from_slice(&VERSION.to_ne_bytes());
    out.extend_from_slice(&(bytes.len() as u32).to_ne_bytes());
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
pub fn decode_reply(b: &[u8]) -> Result<ReplyPart, String> {
    let short = || format!("mconsole reply of {} bytes is too short", b.len());
    let err = u32_at(b, 0).ok_or_else(short)?;
    let more = u32_at(b, 4).ok_or_else(short)?;
    let len = u32_at(b, 8).ok_or_else(short)? as usize;
    if len > MAX_DATA {
        return Err(format!(
            "mconsole reply announces {len} bytes of data (at most {MAX_DATA})"
        ));
    }
    let data = b.get(12..12 + len).ok_or_else(|| {
        format!(
            "mconsole reply holds {} bytes of data but announces {len}",
            b.len().saturating_sub(12)
        )
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

/// A bound client socket, removed on drop.
pub struct Client {
    sock: UnixDatagram,
    path: PathBuf,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl Client {
    /// Binds a client socket in `dir` (which must be reachable by the UML process).
    pub fn bind(dir: &Path) -> std::io::Result<Client> {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("mc-{}-{n}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let sock = UnixDatagram::bind(&path)?;
        // UML may run as another user; it needs write permission to answer.
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666));
        Ok(Client { sock, path })
    }

    /// Sends `command` to the mconsole socket at `target` and collects the answer.
    pub fn command(
        &self,
        target: &Path,
        command: &str,
        timeout: Duration,
    ) -> std::io::Result<Reply> {
        let req = encode_request(command)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        self.sock.send_to(&req, target)?;
        let deadline = Instant::now() + timeout;
        let mut text = String::new();
        let mut err = false;
        let mut buf = [0u8; REQUEST_LEN + 16];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no answer to mconsole '{command}' within {timeout:?}"),
                ));
            }
            self.sock.set_read_timeout(Some(left))?;
            let n = match self.sock.recv(&mut buf) {
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    continue
                }
                Err(e) => return Err(e),
            };
            let part = decode_reply(&buf[..n])
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
            err |= part.err;
            text.push_str(&part.text);
            if !part.more {
                return Ok(Reply { err, text });
            }
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// One command with a fresh client socket in `dir`.
pub fn send(dir: &Path, target: &Path, command: &str, timeout: Duration) -> std::io::Result<Reply> {
    Client::bind(dir)?.command(target, command, timeout)
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
        assert!(decode_reply(&b[..20]).unwrap_err().contains("announces 16"));
    }
}
