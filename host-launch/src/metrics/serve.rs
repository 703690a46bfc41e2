//! `GET /metrics` over HTTP/1.0-style one-shot connections on std's `TcpListener`: one route
//! and one method need no HTTP crate. One client at a time, each bounded in time and in the
//! bytes of its request, so a slow or hostile client holds the responder a few seconds at most.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

/// The longest request head read (request line and headers); a scraper's is a few hundred.
const MAX_HEAD: u64 = 8192;
/// How long a client may take to send its request or read the answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// Answers every connection on `listener` with `render()`'s text at `/metrics`; never returns
/// but for an error of the listener itself.
pub fn serve(listener: &TcpListener, mut render: impl FnMut() -> String) -> std::io::Result<()> {
    for conn in listener.incoming() {
        match conn {
            // A client's failure is its own: the next one is answered.
            Ok(stream) => {
                let _ = answer(stream, &mut render);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn answer(stream: TcpStream, render: &mut impl FnMut() -> String) -> std::io::Result<()> {
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    let mut reader = BufReader::new((&stream).take(MAX_HEAD));
    let mut line = String::new();
    reader.read_line(&mut line)?;
    // The headers are read (and ignored) so the client is not reset while it still sends.
    let mut header = String::new();
    while reader.read_line(&mut header)? > 0 && !header.trim_end().is_empty() {
        header.clear();
    }
    let (status, kind, body) = route(&line, render);
    let mut out = &stream;
    write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    out.write_all(body.as_bytes())?;
    out.flush()
}

/// The answer to a request line: status, content type, body.
fn route(line: &str, render: &mut impl FnMut() -> String) -> (&'static str, &'static str, String) {
    let mut words = line.split_whitespace();
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET", "/metrics") => ("200 OK", super::text::CONTENT_TYPE, render()),
        ("GET", _) => (
            "404 Not Found",
            "text/plain",
            "host-launch serves /metrics only\n".into(),
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "GET /metrics\n".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_get_metrics_is_answered() {
        let mut render = || "m 1\n".to_string();
        assert_eq!(route("GET /metrics HTTP/1.1\r\n", &mut render).2, "m 1\n");
        assert_eq!(
            route("GET /metrics?x=1 HTTP/1.1\r\n", &mut render).0,
            "200 OK"
        );
        assert_eq!(route("GET / HTTP/1.1\r\n", &mut render).0, "404 Not Found");
        assert_eq!(
            route("POST /metrics HTTP/1.1\r\n", &mut render).0,
            "405 Method Not Allowed"
        );
        assert_eq!(route("", &mut render).0, "405 Method Not Allowed");
    }

    #[test]
    fn a_client_gets_the_text_over_tcp() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || serve(&l, || "appliance_up 1\n".into()));
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut got = String::new();
        c.read_to_string(&mut got).unwrap();
        assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
        assert!(got.ends_with("\r\n\r\nappliance_up 1\n"), "{got}");
    }
}
