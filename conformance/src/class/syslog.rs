//! The `syslog` class suite (docs/classes/syslog.md): the image booted with a blank data
//! disk; from the namespace (192.0.2.1 and 2001:db8::1, to each address the guest has), RFC 5424 and RFC 3164 messages over UDP and over TCP
//! (RFC 6587 octet counting), one with structured data, one with control characters, one
//! whose HOSTNAME is not a host name; after a clean stop, the disk is read back with
//! `debugfs`: each message on its own line, in the file of its host and its UTC day of
//! reception under `/log/` (`/data/log/` in the guest), with the fields the class says.

use super::{boot_with_disk, require_tool, Checks, Family, Target};
use crate::error::Error;
use crate::lab::{debugfs, sparse_file, superblock};
use ::lab::NetNs;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime};

/// The class's port, on every address of the guest.
const PORT: u16 = 514;
/// The addresses the suite sends from (the namespace's side of `tap0`): the directory of a
/// message without a usable HOSTNAME.
const SENDER_V4: &str = "192.0.2.1";
const SENDER_V6: &str = "2001:db8::1";

/// The suite's address in the family of `guest`.
fn sender(guest: IpAddr) -> &'static str {
    if guest.is_ipv4() {
        SENDER_V4
    } else {
        SENDER_V6
    }
}
/// The most of one file the suite reads back.
const MAX_FILE: usize = 1 << 20;

/// One message the suite sends and what the class says is stored of it.
struct Message {
    what: &'static str,
    tcp: bool,
    wire: Vec<u8>,
    /// The directory under /log.
    host: &'static str,
    pri: &'static str,
    app: &'static str,
    procid: &'static str,
    /// MSG as stored.
    msg: String,
}

/// `(RFC 3339 with Z, RFC 3164 "Mmm dd hh:mm:ss")` of now, UTC.
fn timestamps(now: SystemTime) -> (String, String) {
    let iso = humantime::format_rfc3339_micros(now).to_string();
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month: usize = iso[5..7].parse().unwrap_or(1);
    let day: u32 = iso[8..10].parse().unwrap_or(1);
    let legacy = format!(
        "{} {:>2} {}",
        months[month.clamp(1, 12) - 1],
        day,
        &iso[11..19]
    );
    (iso, legacy)
}

/// The messages of one address's round; `sender` is the suite's address in its family.
fn messages(token: &str, now: SystemTime, sender: &'static str) -> Vec<Message> {
    let (iso, legacy) = timestamps(now);
    let mut v = Vec::new();
    for tcp in [false, true] {
        let t = if tcp { "tcp" } else { "udp" };
        v.push(Message {
            what: if tcp {
                "RFC 5424 over TCP"
            } else {
                "RFC 5424 over UDP"
            },
            tcp,
            wire: format!("<134>1 {iso} class-5424 suite 4242 M1 - {token} {t} rfc5424 café")
                .into_bytes(),
            host: "class-5424",
            pri: "134",
            app: "suite",
            procid: "4242",
            msg: format!("{token} {t} rfc5424 café"),
        });
        v.push(Message {
            what: if tcp {
                "RFC 3164 over TCP"
            } else {
                "RFC 3164 over UDP"
            },
            tcp,
            wire: format!("<11>{legacy} class-3164 legacy[77]: {token} {t} rfc3164").into_bytes(),
            host: "class-3164",
            pri: "11",
            app: "legacy",
            procid: "77",
            msg: format!("{token} {t} rfc3164"),
        });
    }
    v.push(Message {
        what: "RFC 5424 without APP-NAME and PROCID, with structured data",
        tcp: false,
        wire: format!("<165>1 {iso} class-5424 - - - [ex@32473 k=\"v\"] {token} sd").into_bytes(),
        host: "class-5424",
        pri: "165",
        app: "-",
        procid: "-",
        msg: format!("{token} sd"),
    });
    v.push(Message {
        what: "control characters in MSG",
        tcp: true,
        wire: format!("<134>1 {iso} class-5424 suite 1 - - {token} ctl\u{1}x\u{1b}y\tz")
            .into_bytes(),
        host: "class-5424",
        pri: "134",
        app: "suite",
        procid: "1",
        msg: format!("{token} ctl x y z"),
    });
    v.push(Message {
        what: "a HOSTNAME that is a path",
        tcp: false,
        wire: format!("<134>1 {iso} ../../etc suite 2 - - {token} hostile").into_bytes(),
        host: sender,
        pri: "134",
        app: "suite",
        procid: "2",
        msg: format!("{token} hostile"),
    });
    v
}

/// Sends every message from the namespace: one UDP datagram each, and over one TCP
/// connection with octet counting (RFC 6587 3.4.1).
/// Why the messages to one address could not all be sent (the evidence of SYSLOG-PORTS).
#[derive(Debug, thiserror::Error)]
enum SendError {
    /// Binding the UDP socket, or flushing the TCP one.
    #[error("{0}")]
    Socket(#[source] std::io::Error),
    #[error("UDP to {to}: {source}")]
    Udp {
        to: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("TCP to {to}: {source}")]
    Tcp {
        to: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// Entering the namespace.
    #[error("{0}")]
    Namespace(#[from] ::lab::Error),
}

fn send(ns: &NetNs, msgs: &[Message], to: SocketAddr) -> Result<(), SendError> {
    let udp: Vec<Vec<u8>> = msgs
        .iter()
        .filter(|m| !m.tcp)
        .map(|m| m.wire.clone())
        .collect();
    let tcp: Vec<Vec<u8>> = msgs
        .iter()
        .filter(|m| m.tcp)
        .map(|m| m.wire.clone())
        .collect();
    let any = if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
    ns.enter(move || -> Result<(), SendError> {
        let s = std::net::UdpSocket::bind(any).map_err(SendError::Socket)?;
        for m in &udp {
            s.send_to(m, to)
                .map_err(|source| SendError::Udp { to, source })?;
        }
        let mut t = std::net::TcpStream::connect_timeout(&to, Duration::from_secs(5))
            .map_err(|source| SendError::Tcp { to, source })?;
        for m in &tcp {
            let mut frame = format!("{} ", m.len()).into_bytes();
            frame.extend_from_slice(m);
            t.write_all(&frame)
                .map_err(|source| SendError::Tcp { to, source })?;
        }
        t.flush().map_err(SendError::Socket)
    })?
}

/// One stored line's fields.
#[derive(Debug, PartialEq)]
struct Line<'a> {
    time: &'a str,
    host: &'a str,
    pri: &'a str,
    app: &'a str,
    procid: &'a str,
    msg: &'a str,
}

fn parse_line(l: &str) -> Option<Line<'_>> {
    let mut p = l.splitn(6, ' ');
    Some(Line {
        time: p.next()?,
        host: p.next()?,
        pri: p.next()?,
        app: p.next()?,
        procid: p.next()?,
        msg: p.next()?,
    })
}

/// RFC 3339 in UTC with an optional fraction of up to 9 digits: `YYYY-MM-DDTHH:MM:SS[.f](Z|+00:00)`.
fn utc_rfc3339(t: &str) -> bool {
    let b = t.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|s| s.iter().all(u8::is_ascii_digit));
    let shape = b.len() >= 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19);
    if !shape {
        return false;
    }
    let mut rest = &t[19..];
    if let Some(f) = rest.strip_prefix('.') {
        let n = f.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 || n > 9 {
            return false;
        }
        rest = &f[n..];
    }
    rest == "Z" || rest == "+00:00"
}

/// The UTC days a message sent between `from` and `to` may have been received on.
fn days(from: SystemTime, to: SystemTime) -> Vec<String> {
    let a = humantime::format_rfc3339(from).to_string()[..10].to_string();
    let b = humantime::format_rfc3339(to).to_string()[..10].to_string();
    if a == b {
        vec![a]
    } else {
        vec![a, b]
    }
}

/// The text of `/log/<host>/<day>.log` on the disk, for each possible day, bounded.
fn stored(disk: &std::path::Path, host: &str, days: &[String]) -> (String, Vec<String>) {
    let mut text = String::new();
    let mut files = Vec::new();
    for d in days {
        let path = format!("/log/{host}/{d}.log");
        let out = debugfs(disk, &format!("cat {path}")).unwrap_or_default();
        if !out.contains("File not found") {
            files.push(path);
            text.push_str(&out.chars().take(MAX_FILE).collect::<String>());
        }
    }
    (text, files)
}

/// Runs the battery against `t`: a blank data disk, the image booted with the addresses of
/// `family`, messages from the namespace to each of them, then the disk read back after a
/// clean stop.
pub fn run(t: &Target, family: Family, c: &mut Checks) -> Result<(), Error> {
    require_tool("debugfs", "e2fsprogs")?;
    let dir = ::lab::TempDir::new("class-syslog")?;
    let disk = dir.join("syslog-data.img");
    sparse_file(&disk, t.disk_mib(32))?;
    let booted = boot_with_disk(t, &disk, family, "SYSLOG-READY", c)?;
    let from = SystemTime::now();
    let rounds = rounds(family, from);
    let sent: Vec<(IpAddr, Result<(), SendError>)> = rounds
        .iter()
        .map(|(guest, _, msgs)| {
            (
                *guest,
                send(&booted.ns, msgs, SocketAddr::new(*guest, PORT)),
            )
        })
        .collect();
    // The collector writes as messages arrive; a moment before the stop lets the last land
    // (the stop itself must also flush: the class says messages survive a clean stop).
    std::thread::sleep(Duration::from_millis(700));
    let to = SystemTime::now();
    let o = t.stop(booted.vm)?;
    check_sent(&sent, c);
    c.check(
        "SYSLOG-STOP",
        o.powered_off_cleanly(),
        format!("clean power-off: {}", o.status),
    );
    let state = superblock(&disk, "Filesystem state").unwrap_or_default();
    c.check(
        "SYSLOG-STOP",
        state == "clean",
        format!("data disk: {state}"),
    );
    let days = days(from, to);
    for (_, token, msgs) in &rounds {
        check_stored(&disk, msgs, token, &days, c);
    }
    let senders: Vec<&str> = family.guests().into_iter().map(sender).collect();
    check_dirs(&disk, &senders, c);
    Ok(())
}

/// For each of the guest's addresses: a token of its own and the messages carrying it.
fn rounds(family: Family, from: SystemTime) -> Vec<(IpAddr, String, Vec<Message>)> {
    family
        .guests()
        .into_iter()
        .enumerate()
        .map(|(i, guest)| {
            let token = format!(
                "tok{}x{}n{i}",
                std::process::id(),
                SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map(|d| d.subsec_nanos())
                    .unwrap_or(0)
            );
            let msgs = messages(&token, from, sender(guest));
            (guest, token, msgs)
        })
        .collect()
}

/// Whether every address took its messages.
fn check_sent(sent: &[(IpAddr, Result<(), SendError>)], c: &mut Checks) {
    for (guest, sent) in sent {
        let to = SocketAddr::new(*guest, PORT);
        c.check(
            "SYSLOG-PORTS",
            sent.is_ok(),
            match sent {
                Ok(()) => format!("UDP datagrams and one TCP connection to {to}"),
                Err(e) => e.to_string(),
            },
        );
    }
}

fn check_stored(
    disk: &std::path::Path,
    msgs: &[Message],
    token: &str,
    days: &[String],
    c: &mut Checks,
) {
    for m in msgs {
        let (text, files) = stored(disk, m.host, days);
        let line = text
            .lines()
            .find(|l| l.ends_with(&m.msg) && l.contains(token));
        let id = if m.host == SENDER_V4 || m.host == SENDER_V6 {
            "SYSLOG-HOST"
        } else if m.what.starts_with("control") {
            "SYSLOG-CONTROL"
        } else {
            "SYSLOG-LAYOUT"
        };
        let Some(line) = line else {
            c.check(
                id,
                false,
                format!(
                    "{}: no line ending {:?} in /log/{}/{}.log ({} files found)",
                    m.what,
                    m.msg,
                    m.host,
                    days.join("|"),
                    files.len()
                ),
            );
            continue;
        };
        c.check(id, true, format!("{}: in {}", m.what, files.join(", ")));
        let got = parse_line(line);
        let ok = got.as_ref().is_some_and(|l| {
            utc_rfc3339(l.time)
                && days.iter().any(|d| l.time.starts_with(d.as_str()))
                && l.host == m.host
                && l.pri == m.pri
                && l.app == m.app
                && l.procid == m.procid
                && l.msg == m.msg
        });
        c.check("SYSLOG-LINE", ok, format!("{}: {line:?}", m.what));
    }
}

/// `/log` holds the hosts' directories and, for messages without a usable HOSTNAME, those of
/// the addresses they came from, and nothing else.
fn check_dirs(disk: &std::path::Path, senders: &[&str], c: &mut Checks) {
    let listing = debugfs(disk, "ls -p /log").unwrap_or_default();
    let dirs: Vec<&str> = listing
        .lines()
        .filter_map(|l| l.split('/').nth(5))
        .filter(|n| !n.is_empty() && *n != "." && *n != "..")
        .collect();
    let unexpected: Vec<&&str> = dirs
        .iter()
        .filter(|d| !["class-5424", "class-3164"].contains(d) && !senders.contains(d))
        .collect();
    c.check(
        "SYSLOG-HOST",
        unexpected.is_empty() && !dirs.is_empty(),
        format!("/log holds {dirs:?}"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_lines_parse() {
        let l = parse_line("2026-12-02T05:36:07.698860+00:00 h 13 app 42 a b  c").unwrap();
        assert_eq!(
            (l.host, l.pri, l.app, l.procid, l.msg),
            ("h", "13", "app", "42", "a b  c")
        );
        assert!(parse_line("2026-12-02T05:36:07Z h 13 app").is_none());
        assert!(utc_rfc3339(l.time));
        assert!(utc_rfc3339("2026-12-02T05:36:07Z"));
        assert!(!utc_rfc3339("2026-12-02T05:36:07+01:00"));
        assert!(!utc_rfc3339("2026-12-02T05:36:07."));
        assert!(!utc_rfc3339("Dec  2 05:36:07"));
    }

    #[test]
    fn legacy_timestamps_pad_the_day() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(86_400 * 3 + 3_661);
        assert_eq!(timestamps(t).1, "Jan  4 01:01:01");
    }
}
