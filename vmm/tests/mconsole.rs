//! The mconsole client against a fake UML: a Unix datagram server that checks the request
//! layout and answers in several parts, as UML does for long replies.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;
use vmm::mconsole::{self, Client, Target, MAGIC, MAX_DATA, REQUEST_LEN, VERSION};

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
            assert!(
                from.as_abstract_name().is_some(),
                "the client binds an abstract address"
            );
            let to = from;
            match cmd.as_str() {
                "version" => {
                    server.send_to_addr(&reply(0, 1, "Linux 6.1"), &to).unwrap();
                    server.send_to_addr(&reply(0, 0, ".176"), &to).unwrap();
                }
                _ => {
                    server
                        .send_to_addr(&reply(1, 0, "Unknown command"), &to)
                        .unwrap();
                }
            }
            seen.push(cmd);
        }
        seen
    });
    let target = Target {
        socket: server_path.clone(),
        netns: None,
        uid: Some(nix_uid()),
    };
    let client = Client::new(&target).unwrap();
    let r = client
        .command(&server_path, "version", Duration::from_secs(5))
        .unwrap();
    assert!(!r.err);
    assert_eq!(r.text, "Linux 6.1.176");
    let r = mconsole::send(&target, "frobnicate", Duration::from_secs(5)).unwrap();
    assert!(r.err);
    assert_eq!(r.text, "Unknown command");
    assert_eq!(fake.join().unwrap(), ["version", "frobnicate"]);
    drop(client);
    // Client sockets are abstract: nothing but the server's is in the directory.
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
    let mut target = Target {
        socket: server_path.clone(),
        netns: None,
        uid: None,
    };
    let e = mconsole::send(&target, "cad", Duration::from_millis(200)).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
    target.socket = dir.join("absent");
    assert!(mconsole::send(&target, "cad", Duration::from_millis(200)).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

fn nix_uid() -> u32 {
    // SAFETY: getuid cannot fail.
    unsafe { libc::getuid() }
}

/// A reply from a sender with another uid than the VM's is not taken as the answer.
#[test]
fn replies_from_another_uid_are_ignored() {
    let dir = std::env::temp_dir().join(format!("hl-mc3-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let server_path = dir.join("mconsole");
    let server = UnixDatagram::bind(&server_path).unwrap();
    let fake = std::thread::spawn(move || {
        let mut buf = [0u8; 1024];
        let (_, from) = server.recv_from(&mut buf).unwrap();
        server.send_to_addr(&reply(0, 0, "forged"), &from).unwrap();
    });
    let target = Target {
        socket: server_path,
        netns: None,
        uid: Some(nix_uid() + 1),
    };
    let e = mconsole::send(&target, "version", Duration::from_millis(300)).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::TimedOut, "{e}");
    fake.join().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}
