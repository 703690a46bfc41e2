//! Remote syslog receivers inside the run's namespace, and the two formats read back
//! defensively (what arrives comes from the guest: bounded, never trusted).

use crate::error::Error;
use ::lab::NetNs;
use std::io::Read;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// At most this many messages and bytes per message are kept.
const MAX_MESSAGES: usize = 2000;
const MAX_MESSAGE: usize = 8192;

/// Messages received so far; a framing error over TCP is kept as an `ERROR:` entry.
#[derive(Debug, Clone, Default)]
pub struct Received(Arc<Mutex<Vec<String>>>);

impl Received {
    fn push(&self, m: String) {
        let mut v = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if v.len() < MAX_MESSAGES {
            v.push(m);
        }
    }

    pub fn messages(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Where the receivers listen: the host side of the run's tap.
pub const LOG_HOST: &str = "192.0.2.1";

/// A receiver on the host side at `port`, and the contract's `logging.remote` that points at
/// it.
pub fn receiver(
    ns: &NetNs,
    transport: &str,
    port: u16,
    format: &str,
    facility: &str,
) -> Result<(Received, serde_json::Value), Error> {
    let addr = SocketAddr::from((std::net::Ipv4Addr::new(192, 0, 2, 1), port));
    let got = if transport == "tcp" {
        tcp(ns, addr)?
    } else {
        udp(ns, addr)?
    };
    let remote = serde_json::json!({"transport": transport, "host": LOG_HOST, "port": port, "format": format, "facility": facility});
    Ok((got, remote))
}

/// A UDP receiver on `addr`: one message per datagram.
pub fn udp(ns: &NetNs, addr: SocketAddr) -> Result<Received, Error> {
    let sock: UdpSocket = ns.bind_udp(addr)?;
    let got = Received::default();
    let out = got.clone();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = sock.recv(&mut buf) {
            out.push(String::from_utf8_lossy(&buf[..n.min(MAX_MESSAGE)]).into_owned());
        }
    });
    Ok(got)
}

/// A TCP receiver on `addr` reading RFC 6587 octet-counted frames (`LEN SP MSG`).
pub fn tcp(ns: &NetNs, addr: SocketAddr) -> Result<Received, Error> {
    let listener: TcpListener = ns.bind_tcp(addr)?;
    let got = Received::default();
    let out = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let out = out.clone();
            std::thread::spawn(move || read_frames(stream, &out));
        }
    });
    Ok(got)
}

fn read_frames(mut stream: std::net::TcpStream, out: &Received) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(120)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    while let Ok(n) = stream.read(&mut chunk) {
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        loop {
            match split_frame(&buf) {
                Frame::Whole(msg, used) => {
                    out.push(msg);
                    buf.drain(..used);
                }
                Frame::Partial => break,
                Frame::Bad(why) => {
                    out.push(format!("ERROR: {why}"));
                    return;
                }
            }
        }
    }
}

enum Frame {
    Whole(String, usize),
    Partial,
    Bad(String),
}

fn split_frame(buf: &[u8]) -> Frame {
    let Some(sp) = buf.iter().take(8).position(|&b| b == b' ') else {
        return if buf.len() >= 8 || buf.iter().any(|b| !b.is_ascii_digit()) {
            Frame::Bad(format!(
                "not octet counting: {:?}",
                String::from_utf8_lossy(&buf[..buf.len().min(40)])
            ))
        } else {
            Frame::Partial
        };
    };
    let len: usize = match std::str::from_utf8(&buf[..sp])
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(l) if l > 0 && l <= MAX_MESSAGE * 8 => l,
        _ => {
            return Frame::Bad(format!(
                "bad frame length {:?}",
                String::from_utf8_lossy(&buf[..sp])
            ))
        }
    };
    if buf.len() < sp + 1 + len {
        return Frame::Partial;
    }
    let msg = &buf[sp + 1..sp + 1 + len];
    Frame::Whole(
        String::from_utf8_lossy(&msg[..msg.len().min(MAX_MESSAGE)]).into_owned(),
        sp + 1 + len,
    )
}

/// The fields of one message that the contract determines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub facility: u32,
    pub hostname: String,
    pub app: String,
    pub text: String,
}

/// An RFC 5424 message: `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD MSG`.
pub fn parse_5424(m: &str) -> Option<Message> {
    let (pri, rest) = pri(m)?;
    let rest = rest.strip_prefix("1 ")?;
    let mut f = rest.splitn(6, ' ');
    let _ts = f.next()?;
    let hostname = f.next()?.to_string();
    let app = f.next()?.to_string();
    let (_procid, _msgid) = (f.next()?, f.next()?);
    let tail = f.next().unwrap_or("");
    // Structured data is `-` here or `[...]`; the message follows.
    let text = match tail.strip_prefix("- ") {
        Some(t) => t.to_string(),
        None => tail
            .split_once("] ")
            .map(|(_, t)| t.to_string())
            .unwrap_or_default(),
    };
    Some(Message {
        facility: pri >> 3,
        hostname,
        app,
        text: text.trim_start_matches('\u{feff}').to_string(),
    })
}

/// An RFC 3164 message: `<PRI>Mmm dd hh:mm:ss HOSTNAME TAG[PID]: MSG`.
pub fn parse_3164(m: &str) -> Option<Message> {
    let (pri, rest) = pri(m)?;
    let ts = rest.get(..15)?;
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    if !months.contains(&ts.get(..3)?) || ts.as_bytes().get(9) != Some(&b':') {
        return None;
    }
    let rest = rest.get(16..)?;
    let (hostname, rest) = rest.split_once(' ')?;
    let (tag, text) = rest.split_once(": ")?;
    let app = tag.split('[').next()?.to_string();
    Some(Message {
        facility: pri >> 3,
        hostname: hostname.to_string(),
        app,
        text: text.to_string(),
    })
}

fn pri(m: &str) -> Option<(u32, &str)> {
    let rest = m.strip_prefix('<')?;
    let (num, rest) = rest.split_once('>')?;
    if num.is_empty() || num.len() > 3 {
        return None;
    }
    let p: u32 = num.parse().ok()?;
    (p <= 191).then_some((p, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_formats_read_back() {
        let m = parse_5424(
            "<158>1 2026-12-02T01:00:00.000000Z conf-probe probe 31 - - =probe= start 1",
        )
        .unwrap();
        assert_eq!(
            (m.facility, m.hostname.as_str(), m.app.as_str()),
            (19, "conf-probe", "probe")
        );
        assert_eq!(m.text, "=probe= start 1");
        let m = parse_3164("<30>Dec  2 01:00:00 conf-restart probe[31]: =probe= start 2").unwrap();
        assert_eq!(
            (m.facility, m.hostname.as_str(), m.app.as_str()),
            (3, "conf-restart", "probe")
        );
        assert_eq!(m.text, "=probe= start 2");
        assert!(parse_3164("<30>1 2026-12-02T01:00:00Z h a - - - x").is_none());
        assert!(parse_5424("<999>1 x").is_none());
    }

    #[test]
    fn octet_counting_frames() {
        assert!(matches!(split_frame(b"5 hello6 world!"), Frame::Whole(m, 7) if m == "hello"));
        assert!(matches!(split_frame(b"12 hel"), Frame::Partial));
        assert!(matches!(split_frame(b"<13>hello there"), Frame::Bad(_)));
    }
}
