//! `podman run -t`: a pseudo-terminal whose master goes to conmon over `--console-socket`
//! (runc's protocol: one message, the master fd as SCM_RIGHTS, the slave's path as its
//! payload), and whose slave becomes the monitor's stdin, stdout and stderr, so the VM's
//! console (the service's output) reaches the terminal.
//!
//! The slave is never the monitor's controlling terminal: a ctrl-C or a hang-up on it sends
//! the monitor no signal, so the VM stops only gracefully, through `kill`. The service's
//! stdin stays /dev/null (the contract's): what is typed is not forwarded.

use crate::bundle::Config;
use crate::error::{Error, Result};
use nix::pty::{openpty, Winsize};
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use std::io::IoSlice;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

/// The terminal's slave, kept by the monitor.
#[derive(Debug)]
pub struct Terminal {
    slave: OwnedFd,
}

/// Makes the terminal and sends its master to `socket` when the bundle asks for one; the
/// two must come together, as runc requires.
pub fn hand_over(c: &Config, socket: Option<&Path>) -> Result<Option<Terminal>> {
    let wanted = c.process.as_ref().is_some_and(|p| p.terminal);
    let socket = match (wanted, socket) {
        (false, None) => return Ok(None),
        (true, Some(s)) => s,
        (true, None) => {
            return Err(Error::new(
                "config.json: process.terminal is true but no --console-socket was given; \
                 pass the socket that receives the terminal, or set terminal to false",
            ))
        }
        (false, Some(_)) => {
            return Err(Error::new(
                "--console-socket was given but config.json's process.terminal is false; drop \
                 the option or ask for a terminal",
            ))
        }
    };
    let size = c
        .process
        .as_ref()
        .and_then(|p| p.console_size)
        .map(|s| Winsize {
            ws_row: s.height,
            ws_col: s.width,
            ws_xpixel: 0,
            ws_ypixel: 0,
        });
    let pty = openpty(size.as_ref(), None)
        .map_err(|e| Error::new(format!("opening a pseudo-terminal: {e}")))?;
    let name = std::fs::read_link(format!("/proc/self/fd/{}", pty.slave.as_raw_fd()))
        .map_err(|e| Error::new(format!("naming the pseudo-terminal: {e}")))?;
    send_master(socket, &pty.master, name.to_string_lossy().as_bytes())?;
    Ok(Some(Terminal { slave: pty.slave }))
}

fn send_master(socket: &Path, master: &OwnedFd, name: &[u8]) -> Result<()> {
    let at = |e: &dyn std::fmt::Display| {
        Error::new(format!(
            "--console-socket {}: sending the terminal: {e}",
            socket.display()
        ))
    };
    let stream = UnixStream::connect(socket).map_err(|e| at(&e))?;
    let fds = [master.as_raw_fd()];
    sendmsg::<()>(
        stream.as_raw_fd(),
        &[IoSlice::new(name)],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map_err(|e| at(&e))?;
    Ok(())
}

/// In the monitor, after its setsid: the slave becomes stdin, stdout and stderr (without
/// TIOCSCTTY, so it is not the controlling terminal). A failure leaves the monitor's
/// original descriptors, which still reach conmon.
pub fn attach(t: &Terminal) {
    for fd in 0..=2 {
        // SAFETY: dup2 onto the standard descriptors of this (single-threaded) process.
        unsafe { libc::dup2(t.slave.as_raw_fd(), fd) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{recvmsg, ControlMessageOwned};
    use std::io::{IoSliceMut, Read, Write};
    use std::os::fd::FromRawFd;
    use std::os::unix::net::UnixListener;

    fn config(terminal: bool) -> Config {
        serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "process": {"terminal": terminal, "args": ["/bin/sh"], "cwd": "/",
                        "consoleSize": {"height": 30, "width": 100}},
            "root": {"path": "rootfs"}
        }))
        .unwrap()
    }

    #[test]
    fn the_master_reaches_the_console_socket_and_the_slave_writes_to_it() {
        let dir = std::env::temp_dir().join(format!("urunc-tty-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("console.sock");
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        let receiver = std::thread::spawn(move || {
            let (conn, _) = listener.accept().unwrap();
            let mut name = [0u8; 128];
            let mut iov = [IoSliceMut::new(&mut name)];
            let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
            let msg = recvmsg::<()>(
                conn.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::empty(),
            )
            .unwrap();
            let fd = msg
                .cmsgs()
                .unwrap()
                .find_map(|c| match c {
                    ControlMessageOwned::ScmRights(fds) => fds.first().copied(),
                    _ => None,
                })
                .expect("an fd in SCM_RIGHTS");
            let len = msg.bytes;
            // SAFETY: the fd was just received and is owned by nobody else.
            let master = unsafe { std::fs::File::from_raw_fd(fd) };
            (master, String::from_utf8_lossy(&name[..len]).to_string())
        });
        let t = hand_over(&config(true), Some(&path))
            .unwrap()
            .expect("a terminal");
        let (mut master, name) = receiver.join().unwrap();
        assert!(name.starts_with("/dev/pts/"), "{name}");
        let size = nix::sys::termios::tcgetattr(&t.slave).map(|_| ());
        assert!(size.is_ok(), "the slave is a terminal");
        std::fs::File::from(t.slave.try_clone().unwrap())
            .write_all(b"from the console\n")
            .unwrap();
        let mut buf = [0u8; 64];
        let n = master.read(&mut buf).unwrap();
        assert_eq!(
            &buf[..n],
            b"from the console\r\n",
            "through the line discipline"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_terminal_and_the_socket_come_together() {
        let e = hand_over(&config(true), None).err().unwrap().0;
        assert!(
            e.contains("process.terminal") && e.contains("--console-socket"),
            "{e}"
        );
        let e = hand_over(&config(false), Some(Path::new("/x")))
            .err()
            .unwrap()
            .0;
        assert!(e.contains("--console-socket was given"), "{e}");
        assert!(hand_over(&config(false), None).unwrap().is_none());
        let e = hand_over(&config(true), Some(Path::new("/nonexistent/sock")))
            .err()
            .unwrap()
            .0;
        assert!(e.starts_with("--console-socket /nonexistent/sock"), "{e}");
    }
}
