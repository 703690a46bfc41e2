//! The mconsole client against a fake UML: a Unix datagram server that checks the request
//! layout and answers in several parts, as UML does for long replies.

use host_launch::mconsole::{self, Client, MAGIC, MAX_DATA, REQUEST_LEN, VERSION};
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

fn reply(err: u32, more: u32, text: &str) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&err.to_ne_bytes());
    b.extend_from_slice(&more.to_ne_bytes());
    b.extend_from_slice(&(text.len() as u32 + 1).to_ne_bytes());
    b.extend_from_slice(text.as_bytes());
    b.push(0);
    b
}

#[test]
fn requests_and_multi_part_replies() {
    let dir = std::env::temp_dir().join(format!("hl-mc-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let server_path = dir.join("mconsole");
    let server = UnixDatagram::bind(&server_path).unwrap();
    let fake = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for _ in 0..2 {
            let mut buf = [0u8; 1024];
            let (n, from) = server.recv_from(&mut buf).unwrap();
            assert_eq!(n, REQUEST_LEN, "UML reads whole request structs");
            let word = |at: usize| u32::from_ne_bytes(buf[at..at + 4].try_into().unwrap());
            assert_eq!(word(0), MAGIC);
            assert_eq!(word(4), VERSION);
            let len = word(8) as usize;
            assert!(len < MAX_DATA);
            let cmd = String::from_utf8(buf[12..12 + len].to_vec()).unwrap();
            let to = from
                .as_pathname()
                .expect("the client binds a path")
                .to_path_buf();
            match cmd.as_str() {
                "version" => {
                    server.send_to(&reply(0, 1, "Linux 6.1"), &to).unwrap();
                    server.send_to(&reply(0, 0, ".176"), &to).unwrap();
                }
                _ => {
                    server
                        .send_to(&reply(1, 0, "Unknown command"), &to)
                        .unwrap();
                }
            }
            seen.push(cmd);
        }
        seen
    });
    let client = Client::bind(&dir).unwrap();
    let r = client
        .command(&server_path, "version", Duration::from_secs(5))
        .unwrap();
    assert!(!r.err);
    assert_eq!(r.text, "Linux 6.1.176");
    let r = mconsole::send(&dir, &server_path, "frobnicate", Duration::from_secs(5)).unwrap();
    assert!(r.err);
    assert_eq!(r.text, "Unknown command");
    assert_eq!(fake.join().unwrap(), ["version", "frobnicate"]);
    drop(client);
    // Client sockets are removed when dropped; only the server's remains.
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
    assert_eq!(left.len(), 1, "{left:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn no_answer_times_out() {
    let dir = std::env::temp_dir().join(format!("hl-mc2-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let server_path = dir.join("mconsole");
    let _server = UnixDatagram::bind(&server_path).unwrap();
    let e = mconsole::send(&dir, &server_path, "cad", Duration::from_millis(200)).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
    let e = mconsole::send(&dir, &dir.join("absent"), "cad", Duration::from_millis(200));
    assert!(e.is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}
