//! Remote syslog: RFC 5424 over UDP and RFC 3164 with octet counting over TCP, received on the
//! host side of the test namespace.

use super::*;

/// The service of the syslog tests: one line on each pipe, then it exits (and the VM powers
/// off, flushing the log sink first).
fn syslog_contract(remote: Value) -> Contract {
    contract(json!({
        "version": 1,
        "hostname": "logger1",
        "network": network(json!({})),
        "logging": {"console": true, "remote": remote},
        "service": {
            "name": "chatty",
            "argv": ["/bin/sh", "-c", "echo marker-out; echo marker-err >&2; sleep 0.3"],
            "restart": {"policy": "never"}
        }
    }))
}

/// Parses one RFC 5424 message: (pri, hostname, app-name, procid, msg).
fn parse_5424(m: &str) -> Option<(u32, String, String, String, String)> {
    let rest = m.strip_prefix('<')?;
    let (pri, rest) = rest.split_once('>')?;
    let mut parts = rest.splitn(7, ' ');
    let version = parts.next()?;
    let _timestamp = parts.next()?;
    let host = parts.next()?;
    let app = parts.next()?;
    let procid = parts.next()?;
    let msgid = parts.next()?;
    let rest = parts.next()?;
    if version != "1" || msgid != "-" {
        return None;
    }
    let msg = rest.strip_prefix("- ").or(rest.strip_prefix('-'))?;
    Some((
        pri.parse().ok()?,
        host.into(),
        app.into(),
        procid.into(),
        msg.trim_start().into(),
    ))
}

/// Parses one RFC 3164 message: (pri, hostname, tag with pid, msg).
fn parse_3164(m: &str) -> Option<(u32, String, String, String)> {
    let rest = m.strip_prefix('<')?;
    let (pri, rest) = rest.split_once('>')?;
    // "Mmm dd hh:mm:ss" is 15 characters (day padded with a space).
    let stamp = rest.get(..15)?;
    if stamp.as_bytes().get(9) != Some(&b':') {
        return None;
    }
    let rest = rest.get(15..)?.strip_prefix(' ')?;
    let (host, rest) = rest.split_once(' ')?;
    let (tag, msg) = rest.split_once(": ")?;
    Some((pri.parse().ok()?, host.into(), tag.into(), msg.into()))
}

/// Splits RFC 6587 octet-counted frames (`LEN SP MSG`); returns the messages and the bytes
/// of an incomplete last frame.
fn split_frames(mut data: &[u8]) -> (Vec<String>, Vec<u8>) {
    let mut out = Vec::new();
    while let Some(sp) = data.iter().position(|b| *b == b' ') {
        let Some(len) = std::str::from_utf8(&data[..sp])
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
        else {
            panic!(
                "bad octet-counting frame at {:?}",
                String::from_utf8_lossy(data)
            );
        };
        let Some(msg) = data.get(sp + 1..sp + 1 + len) else {
            break;
        };
        out.push(String::from_utf8_lossy(msg).into_owned());
        data = &data[sp + 1 + len..];
    }
    (out, data.to_vec())
}

#[test]
fn syslog_udp_rfc5424() {
    let (_dir, image) = image("sys-udp");
    let ns = NetNs::with_tap("tap0").expect("test network");
    let sock = ns
        .bind_udp("192.0.2.1:5514".parse().unwrap())
        .expect("UDP receiver");
    let c = syslog_contract(json!({
        "transport": "udp", "host": "192.0.2.1", "port": 5514,
        "format": "rfc5424", "facility": "local3"
    }));
    let outcome = run(Vm::new(&image).network(&ns).contract_cmdline(&c));
    outcome.assert_clean_poweroff();
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut messages = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = sock.recv(&mut buf) {
        messages.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    let all = messages.join("\n");
    let parsed: Vec<_> = messages.iter().filter_map(|m| parse_5424(m)).collect();
    assert_eq!(parsed.len(), messages.len(), "not all RFC 5424:\n{all}");
    for (text, severity) in [("marker-out", 6), ("marker-err", 4)] {
        let (pri, host, app, procid, _) = parsed
            .iter()
            .find(|p| p.4 == text)
            .unwrap_or_else(|| panic!("no message {text:?} among\n{all}\n{}", outcome.report()));
        assert_eq!(
            *pri,
            19 * 8 + severity,
            "PRI of {text}: local3 and its severity"
        );
        assert_eq!(host, "logger1");
        assert_eq!(app, "chatty");
        let pid = outcome.expect_event("service_started").u64("pid");
        assert_eq!(
            procid.parse::<u64>().ok(),
            pid,
            "PROCID is the service's pid"
        );
    }
    assert!(
        parsed
            .iter()
            .any(|p| p.2 == "guest-init" && p.4.starts_with("service started")),
        "guest-init's own messages go to the log host too:\n{all}"
    );
}

#[test]
fn syslog_tcp_rfc3164_octet_counting() {
    let (_dir, image) = image("sys-tcp");
    let ns = NetNs::with_tap("tap0").expect("test network");
    let listener = ns
        .bind_tcp("192.0.2.1:5515".parse().unwrap())
        .expect("TCP receiver");
    let receiver = std::thread::spawn(move || {
        listener.set_nonblocking(true).unwrap();
        let deadline = Instant::now() + BOOT;
        let mut data = Vec::new();
        let mut stream = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(e) => panic!("no connection from the guest: {e}"),
            }
        };
        stream.set_nonblocking(false).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => data.extend_from_slice(&buf[..n]),
                Err(_) => {
                    let text = String::from_utf8_lossy(&data);
                    if text.contains("power off") {
                        break;
                    }
                }
            }
        }
        data
    });
    let c = syslog_contract(json!({
        "transport": "tcp", "host": "192.0.2.1", "port": 5515, "format": "rfc3164"
    }));
    let outcome = run(Vm::new(&image).network(&ns).contract_cmdline(&c));
    outcome.assert_clean_poweroff();
    let data = receiver.join().expect("receiver");
    let (messages, rest) = split_frames(&data);
    let all = messages.join("\n");
    assert!(
        rest.is_empty(),
        "an incomplete frame at the end: {rest:?}\n{all}"
    );
    let pid = outcome
        .expect_event("service_started")
        .u64("pid")
        .expect("pid");
    for (text, severity) in [("marker-out", 6), ("marker-err", 4)] {
        let m = messages
            .iter()
            .find(|m| m.ends_with(&format!(": {text}")))
            .unwrap_or_else(|| panic!("no message {text:?} among\n{all}\n{}", outcome.report()));
        let (pri, host, tag, msg) = parse_3164(m).unwrap_or_else(|| panic!("not RFC 3164: {m:?}"));
        assert_eq!(
            pri,
            3 * 8 + severity,
            "PRI of {m:?}: daemon and its severity"
        );
        assert_eq!(host, "logger1");
        assert_eq!(tag, format!("chatty[{pid}]"));
        assert_eq!(msg, text);
    }
    assert!(
        messages
            .iter()
            .filter_map(|m| parse_3164(m))
            .any(|(_, _, tag, msg)| tag == "guest-init[1]" && msg.starts_with("service started")),
        "guest-init's own messages go to the log host too:\n{all}"
    );
}

// ---------------------------------------------------------------------------------------------
// 4.-9. Supervision
// ---------------------------------------------------------------------------------------------
