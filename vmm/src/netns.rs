//! Work inside a named network namespace without moving the process: a thread of its own
//! enters it (setns changes the calling thread only) and ends with the work, so sockets and
//! devices it makes belong to that namespace while the caller stays where it was.

use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

/// Runs `f` on a thread that entered the network namespace at `netns` (e.g.
/// `/run/netns/NAME`), and returns its result.
pub fn on_thread_in<T: Send>(
    netns: &Path,
    f: impl FnOnce() -> io::Result<T> + Send,
) -> io::Result<T> {
    let ns = std::fs::File::open(netns).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("opening the network namespace {}: {e}", netns.display()),
        )
    })?;
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: setns on this thread only, with an open namespace descriptor.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(io::Error::last_os_error());
            }
            f()
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("the network namespace thread failed")))
    })
}
