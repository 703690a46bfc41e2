//! A log host that is absent, slow, restarting or refusing: the caller never waits, lines
//! are kept or counted, flush is bounded.

use crate::support::*;

#[test]
fn absent_tcp_host_never_blocks_and_the_gap_is_reported() {
    let addr = closed_port();
    let tuning = Tuning {
        queue_lines: 64,
        backlog_bytes: 16 * 1024,
        ..fast()
    };
    let sink = Arc::new(start(
        target(addr, Transport::Tcp, SyslogFormat::Rfc5424),
        tuning,
    ));

    log_100k(&sink, |i| format!("line {i}"));
    let stats = sink.stats();
    // Only the queue (64 lines) and the 16 KiB backlog can hold lines: memory stays bounded.
    assert!(stats.remote_dropped > 99_000, "{stats:?}");
    assert!(!stats.remote_connected);
    assert!(stats.remote_last_error.is_some());
    // Hands the caller-side drop count to the sender; the host is still absent.
    assert!(sink.flush(Duration::from_millis(300)).is_err());

    let listener = listen_again(addr);
    let mut frames = FrameReader::new(accept_within(&listener, WAIT));
    // The oldest lines that waited in the queue and backlog arrive in order; wherever lines
    // went missing, a notice says how many. Together they account for every line.
    let mut next = 0u64;
    let mut kept = 0u64;
    while next < 100_000 {
        let msg = frames.next();
        let text = msg_5424(&msg);
        if let Some(n) = text.strip_prefix("line ") {
            assert_eq!(n, next.to_string(), "line out of order");
            next += 1;
            kept += 1;
        } else {
            assert!(msg.contains(" vm1 guest-init "), "unexpected {msg}");
            let lost: u64 = text
                .split(' ')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("not a notice: {msg}"));
            assert_eq!(text, dropped_notice(lost));
            next += lost;
        }
    }
    assert_eq!(next, 100_000);
    assert!(kept > 0 && kept < 400, "kept {kept} lines");

    for i in 0..10 {
        sink.log(Record::service(
            Stream::Stdout,
            "web",
            None,
            format!("after {i}"),
        ));
    }
    for i in 0..10 {
        assert_eq!(msg_5424(&frames.next()), format!("after {i}"));
    }
    assert!(sink.flush(WAIT).is_ok());
    let stats = sink.stats();
    assert_eq!(
        stats.remote_sent + stats.remote_dropped,
        100_010,
        "{stats:?}"
    );
}

#[test]
fn slow_tcp_host_never_blocks() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    // Accept connections and hold them without ever reading, until told to stop (by a
    // connection of the test's own after the flag is set).
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopping = Arc::clone(&stop);
    let holder = thread::spawn(move || {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept() {
            if stopping.load(std::sync::atomic::Ordering::SeqCst) {
                break;
            }
            held.push(stream);
        }
        held.len()
    });
    let tuning = Tuning {
        queue_lines: 64,
        backlog_bytes: 64 * 1024,
        ..fast()
    };
    let sink = Arc::new(start(
        target(addr, Transport::Tcp, SyslogFormat::Rfc3164),
        tuning,
    ));

    let line = "y".repeat(1000);
    log_100k(&sink, move |_| line.clone());
    // 100 MB cannot fit in loopback socket buffers plus a 64 KiB backlog.
    assert!(sink.stats().remote_dropped > 0, "{:?}", sink.stats());
    // flush is bounded even though the host never reads. (It may even succeed: each
    // reconnection brings fresh socket buffers that can absorb the small backlog.)
    let flusher = Arc::clone(&sink);
    returns("flush", move || {
        let _ = flusher.flush(Duration::from_millis(500));
    });
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let _ = TcpStream::connect(addr);
    let connections = holder.join().expect("holder thread");
    assert!(connections >= 1);
}

#[test]
fn tcp_reconnects_after_the_host_restarts() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let sink = start(target(addr, Transport::Tcp, SyslogFormat::Rfc5424), fast());
    sink.log(Record::service(Stream::Stdout, "web", None, "before"));
    let mut frames = FrameReader::new(accept_within(&listener, WAIT));
    assert_eq!(msg_5424(&frames.next()), "before");

    // The log host goes away (the sink's end has its FIN)...
    drop(frames);
    drop(listener);
    wait_until("the sink's connection is in CLOSE_WAIT", || {
        close_wait_to(addr)
    });
    sink.log(Record::service(Stream::Stdout, "web", None, "during"));
    wait_until("the sink noticed that the host is gone", || {
        !sink.stats().remote_connected
    });
    // ...and comes back: the line logged meanwhile is not lost.
    let listener = listen_again(addr);
    let mut frames = FrameReader::new(accept_within(&listener, WAIT));
    assert_eq!(msg_5424(&frames.next()), "during");
    sink.log(Record::service(Stream::Stdout, "web", None, "after"));
    assert_eq!(msg_5424(&frames.next()), "after");
    assert_eq!(sink.stats().remote_dropped, 0);
}

#[test]
fn udp_to_a_closed_port_keeps_working() {
    let reserved = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = reserved.local_addr().expect("addr");
    drop(reserved);
    let sink = start(target(addr, Transport::Udp, SyslogFormat::Rfc5424), fast());
    // ICMP port-unreachable comes back and surfaces as ECONNREFUSED on later sends. Each line
    // is sent (or counted lost) before the next is logged.
    for i in 0..50u64 {
        sink.log(Record::service(
            Stream::Stdout,
            "web",
            None,
            format!("lost {i}"),
        ));
        wait_until("the sink took the line", || {
            let s = sink.stats();
            s.remote_sent + s.remote_dropped > i
        });
    }
    assert!(sink.flush(WAIT).is_ok());

    let Some(rx) = udp_receiver(&addr.to_string()) else {
        skip(
            "udp_to_a_closed_port_keeps_working",
            &format!("port {addr} was taken meanwhile; the second half did not run"),
        );
        return;
    };
    let deadline = Instant::now() + WAIT;
    let mut got = Vec::new();
    while !got.iter().any(|m: &String| m.ends_with(" - - found")) {
        assert!(Instant::now() < deadline, "nothing arrived: {got:?}");
        sink.log(Record::service(Stream::Stdout, "web", None, "found"));
        got.push(recv_datagram(&rx));
    }
    // Any notice of refused datagrams comes from guest-init, before the line.
    for m in &got {
        assert!(m.contains(" web ") || m.contains(" guest-init "), "{m}");
    }
}

#[test]
fn flush_with_an_absent_host_is_bounded() {
    let sink = start(
        target(closed_port(), Transport::Tcp, SyslogFormat::Rfc5424),
        fast(),
    );
    for i in 0..10 {
        sink.log(Record::service(
            Stream::Stdout,
            "web",
            None,
            format!("x {i}"),
        ));
    }
    let sink = Arc::new(sink);
    let flusher = Arc::clone(&sink);
    let result = returns("flush", move || flusher.flush(Duration::from_millis(300)));
    assert!(result.is_err());
}
