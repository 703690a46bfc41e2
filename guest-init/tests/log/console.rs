//! The console copy: prefixed lines, remote-only records, a stuck console, the line buffer.

use crate::support::*;

#[test]
fn console_gets_app_prefixed_lines() {
    let console = SharedConsole::default();
    let sink = console_sink(&console);
    sink.log(Record::service(Stream::Stdout, "web", Some(3), "hello\r"));
    sink.log(Record::service(
        Stream::Stderr,
        "web",
        Some(3),
        "bad\x1b[0m",
    ));
    sink.log(Record::init(Severity::Notice, "service exited"));
    assert!(sink.flush(WAIT).is_ok());
    let text = String::from_utf8(console.0.lock().expect("lock").clone()).expect("UTF-8");
    assert_eq!(
        text,
        "web: hello\nweb: bad?[0m\nguest-init: service exited\n"
    );
}

#[test]
fn remote_only_records_skip_the_console() {
    let rx = udp_receiver("127.0.0.1:0").expect("bind");
    let console = SharedConsole::default();
    let sink = LogSink::start(SinkConfig {
        hostname: "vm1".to_string(),
        remote: Some(target(
            rx.local_addr().expect("addr"),
            Transport::Udp,
            SyslogFormat::Rfc5424,
        )),
        console: Some(Box::new(console.clone())),
        tuning: fast(),
    })
    .expect("start");
    sink.log_remote_only(Record::init(Severity::Notice, "network up (replayed)"));
    sink.log(Record::init(Severity::Notice, "service started"));
    assert!(sink.flush(WAIT).is_ok());
    assert_eq!(msg_5424(&recv_datagram(&rx)), "network up (replayed)");
    assert_eq!(msg_5424(&recv_datagram(&rx)), "service started");
    let text = String::from_utf8(console.0.lock().expect("lock").clone()).expect("UTF-8");
    assert_eq!(text, "guest-init: service started\n");
}

#[test]
fn a_stuck_console_blocks_neither_the_caller_nor_the_remote_copy() {
    let rx = udp_receiver("127.0.0.1:0").expect("bind");
    let addr = rx.local_addr().expect("addr");
    let (_unblock, blocked) = mpsc::channel::<()>();
    let sink = LogSink::start(SinkConfig {
        hostname: "vm1".to_string(),
        remote: Some(target(addr, Transport::Udp, SyslogFormat::Rfc5424)),
        console: Some(Box::new(StuckConsole(blocked))),
        tuning: Tuning {
            queue_lines: 16,
            ..fast()
        },
    })
    .expect("start");
    let sink = Arc::new(sink);
    let caller = Arc::clone(&sink);
    returns("1000 log() calls", move || {
        for i in 0..1000u64 {
            caller.log(Record::service(
                Stream::Stdout,
                "web",
                None,
                format!("n {i}"),
            ));
            if i % 10 == 0 {
                // Let the remote thread keep up: wait until it has taken this line.
                wait_until("the remote thread took the line", || {
                    let s = caller.stats();
                    s.remote_sent + s.remote_dropped > i
                });
            }
        }
    });
    assert!(sink.stats().console_dropped > 0);
    assert!(msg_5424(&recv_datagram(&rx)).starts_with("n "));
}

#[test]
fn line_buffer_feeds_the_sink() {
    let console = SharedConsole::default();
    let sink = console_sink(&console);
    let mut lines = LineBuffer::new(sink.max_line());
    for chunk in [&b"first li"[..], b"ne\r\nsecond", b" line\npartial"] {
        for line in lines.push(chunk) {
            sink.log(Record::service(Stream::Stdout, "web", None, line));
        }
    }
    if let Some(rest) = lines.flush() {
        sink.log(Record::service(Stream::Stdout, "web", None, rest));
    }
    assert!(sink.flush(WAIT).is_ok());
    let text = String::from_utf8(console.0.lock().expect("lock").clone()).expect("UTF-8");
    assert_eq!(text, "web: first line\nweb: second line\nweb: partial\n");
}

/// A console that takes one line every 50 µs, as a UML console whose host side is read.
#[derive(Clone, Default)]
struct SlowConsole(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for SlowConsole {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        thread::sleep(Duration::from_micros(50));
        self.0.lock().expect("lock").extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_slow_console_that_is_read_loses_no_service_line() {
    let console = SlowConsole::default();
    let sink = LogSink::start(SinkConfig {
        hostname: "vm1".to_string(),
        remote: None,
        console: Some(Box::new(console.clone())),
        tuning: Tuning {
            queue_lines: 16,
            ..fast()
        },
    })
    .expect("start");
    let sink = Arc::new(sink);
    let caller = Arc::clone(&sink);
    returns("5000 log_service() calls", move || {
        for i in 0..5000u64 {
            caller.log_service(Record::service(Stream::Stdout, "t", None, format!("{i}")));
        }
    });
    assert!(sink.flush(WAIT).is_ok());
    assert_eq!(sink.stats().console_dropped, 0);
    let text = String::from_utf8(console.0.lock().expect("lock").clone()).expect("UTF-8");
    let want: String = (0..5000).map(|i| format!("t: {i}\n")).collect();
    assert!(text == want, "lines lost or out of order");
}

#[test]
fn a_console_nobody_reads_costs_one_wait_then_drops_are_counted() {
    let (_unblock, blocked) = mpsc::channel::<()>();
    let sink = LogSink::start(SinkConfig {
        hostname: "vm1".to_string(),
        remote: None,
        console: Some(Box::new(StuckConsole(blocked))),
        tuning: Tuning {
            queue_lines: 16,
            ..fast()
        },
    })
    .expect("start");
    let sink = Arc::new(sink);
    let caller = Arc::clone(&sink);
    // Waiting at every line would take 1000 x CONSOLE_WAIT; `returns` allows 20 of them.
    returns("1000 log_service() calls", move || {
        for i in 0..1000u64 {
            caller.log_service(Record::service(Stream::Stdout, "t", None, format!("{i}")));
        }
    });
    // 16 queued, one in the stuck write; the rest dropped after a single wait.
    assert!(
        sink.stats().console_dropped >= 1000 - 18,
        "{:?}",
        sink.stats()
    );
}
