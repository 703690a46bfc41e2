//! Each format and transport on the wire: RFC 5424 and RFC 3164, UDP and TCP, severities.

use crate::support::*;

#[test]
fn udp_receiver_gets_rfc5424_messages() {
    let rx = udp_receiver("127.0.0.1:0").expect("bind 127.0.0.1");
    let addr = rx.local_addr().expect("addr");
    let contract = format!(
        r#"{{"version":1,"hostname":"vm1","service":{{"argv":["/bin/x"]}},
        "logging":{{"console":false,"remote":{{"transport":"udp","host":"127.0.0.1",
        "port":{},"format":"rfc5424","facility":"daemon"}}}}}}"#,
        addr.port()
    );
    let contract = contract::parse_json(contract.as_bytes()).expect("contract");
    let checked = contract::checked::check(contract).expect("checked");
    let cfg = SinkConfig::from_checked(&checked, Box::new(io::sink()));
    assert!(cfg.console.is_none());
    let remote = cfg.remote.as_ref().expect("remote");
    assert_eq!((remote.addr, remote.facility), (addr, 3));
    let sink = LogSink::start(cfg).expect("start");

    sink.log(fixed(Severity::Info, "web", Some(42), "hello world\r"));
    sink.log(fixed(Severity::Warning, "web", Some(42), "oops\tbad"));
    sink.log(fixed(
        Severity::Notice,
        INIT_APP,
        Some(1),
        "service started",
    ));

    assert_eq!(
        recv_datagram(&rx),
        "<30>1 2024-02-29T12:34:56.123456Z vm1 web 42 - - hello world"
    );
    assert_eq!(
        recv_datagram(&rx),
        "<28>1 2024-02-29T12:34:56.123456Z vm1 web 42 - - oops bad"
    );
    assert_eq!(
        recv_datagram(&rx),
        "<29>1 2024-02-29T12:34:56.123456Z vm1 guest-init 1 - - service started"
    );
    assert!(sink.flush(WAIT).is_ok());
    assert_eq!(sink.stats().remote_sent, 3);
}

#[test]
fn udp_receiver_gets_rfc3164_messages_over_ipv6() {
    let Some(rx) = udp_receiver("[::1]:0") else {
        skip(
            "udp_receiver_gets_rfc3164_messages_over_ipv6",
            "no IPv6 loopback here",
        );
        return;
    };
    let addr = rx.local_addr().expect("addr");
    let sink = start(target(addr, Transport::Udp, SyslogFormat::Rfc3164), fast());

    sink.log(fixed(Severity::Info, "web", Some(42), "hello"));
    sink.log(fixed(Severity::Error, "web", None, "no pid"));
    assert_eq!(recv_datagram(&rx), "<30>Feb 29 12:34:56 vm1 web[42]: hello");
    assert_eq!(recv_datagram(&rx), "<27>Feb 29 12:34:56 vm1 web: no pid");
}

#[test]
fn udp_datagrams_are_capped() {
    let rx = udp_receiver("127.0.0.1:0").expect("bind");
    let addr = rx.local_addr().expect("addr");
    let sink = start(target(addr, Transport::Udp, SyslogFormat::Rfc3164), fast());
    sink.log(fixed(Severity::Info, "web", None, &"x".repeat(5000)));
    let got = recv_datagram(&rx);
    assert_eq!(got.len(), 1024);
    assert!(sink.max_line() < 1024);
}

#[test]
fn service_and_init_records_carry_their_severity() {
    let rx = udp_receiver("127.0.0.1:0").expect("bind");
    let addr = rx.local_addr().expect("addr");
    let sink = start(target(addr, Transport::Udp, SyslogFormat::Rfc5424), fast());
    sink.log(Record::service(Stream::Stdout, "web", Some(7), "out"));
    sink.log(Record::service(Stream::Stderr, "web", Some(7), "err"));
    sink.log(Record::init(Severity::Error, "boom"));
    let out = recv_datagram(&rx);
    assert!(
        out.starts_with("<30>1 ") && out.ends_with(" vm1 web 7 - - out"),
        "{out}"
    );
    let err = recv_datagram(&rx);
    assert!(
        err.starts_with("<28>1 ") && err.ends_with(" vm1 web 7 - - err"),
        "{err}"
    );
    let init = recv_datagram(&rx);
    let pid = std::process::id();
    assert!(
        init.starts_with("<27>1 ") && init.ends_with(&format!(" vm1 guest-init {pid} - - boom")),
        "{init}"
    );
}

#[test]
fn tcp_receiver_gets_every_line_in_order() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let tuning = Tuning {
        queue_lines: 4096,
        ..fast()
    };
    let sink = start(target(addr, Transport::Tcp, SyslogFormat::Rfc5424), tuning);
    for i in 0..2000 {
        sink.log(Record::service(
            Stream::Stdout,
            "web",
            Some(9),
            format!("line {i}"),
        ));
    }
    let mut frames = FrameReader::new(accept_within(&listener, WAIT));
    for i in 0..2000 {
        let msg = frames.next();
        assert!(msg.starts_with("<30>1 "), "{msg}");
        assert_eq!(msg_5424(&msg), format!("line {i}"));
    }
    assert!(sink.flush(WAIT).is_ok());
    let stats = sink.stats();
    assert_eq!((stats.remote_sent, stats.remote_dropped), (2000, 0));
    assert!(stats.remote_connected);
}
