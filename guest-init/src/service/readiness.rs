//! Readiness probes: `tcp` (a connection succeeds) and `notify` (s6 style: a newline on a pipe).

use nix::errno::Errno;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

/// How long one TCP readiness attempt may take.
pub const TCP_PROBE_TIMEOUT: Duration = Duration::from_millis(250);

/// One readiness attempt: does a TCP connection to `addr` succeed within
/// [`TCP_PROBE_TIMEOUT`]? The connection is closed right away.
pub fn tcp_ready(addr: SocketAddr) -> bool {
    tcp_ready_within(addr, TCP_PROBE_TIMEOUT)
}

/// [`tcp_ready`] with a chosen timeout. `connect_timeout` is a non-blocking connect plus
/// poll, so a service that accepts slowly cannot stall the supervisor longer than this.
pub fn tcp_ready_within(addr: SocketAddr, timeout: Duration) -> bool {
    let timeout = timeout.max(Duration::from_millis(1));
    TcpStream::connect_timeout(&addr, timeout).is_ok()
}

/// State of `notify` readiness after reading what is available on the pipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notify {
    /// Nothing conclusive yet: keep polling.
    Pending,
    /// A newline arrived: the service is ready.
    Ready,
    /// The service closed the fd (or exited) without writing a newline: it will never
    /// report ready; stop polling the fd.
    Never,
}

/// Reads whatever is available on the (non-blocking) readiness pipe and says what it means.
/// s6 semantics: a newline means ready; bytes before it are ignored; end of file before a
/// newline means never. Read errors other than EAGAIN/EINTR count as never.
pub fn read_notify(fd: BorrowedFd<'_>) -> Notify {
    let mut buf = [0u8; 64];
    loop {
        match nix::unistd::read(fd.as_raw_fd(), &mut buf) {
            Ok(0) => return Notify::Never,
            Ok(n) => {
                if notify_chunk_is_ready(buf.get(..n).unwrap_or_default()) {
                    return Notify::Ready;
                }
            }
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN) => return Notify::Pending,
            Err(_) => return Notify::Never,
        }
    }
}

/// The pure part of [`read_notify`]: does this chunk complete the notification?
pub fn notify_chunk_is_ready(chunk: &[u8]) -> bool {
    chunk.contains(&b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_chunks() {
        assert!(!notify_chunk_is_ready(b""));
        assert!(!notify_chunk_is_ready(b"ready"));
        assert!(notify_chunk_is_ready(b"\n"));
        assert!(notify_chunk_is_ready(b"x\ny"));
    }
}
