//! What may ask a followed VM to stop ([`crate::follow`]): the launcher's stop signals
//! ([`StopSignals`], a signalfd) or another thread ([`Control`], a pipe that wakes the loop).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::mpsc;

/// The signals that ask a launcher to stop its VM. uml-runc adds SIGQUIT (runc's stop).
pub const STOP_SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// A request to the follow loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Stop the guest gracefully (ctrl-alt-del), by this signal if one asked.
    Stop { signal: Option<libc::c_int> },
    /// Kill the VM at this time if it still runs (a test's timeout).
    KillAt(std::time::Instant),
}

/// A source of requests the loop polls.
pub trait Requests {
    /// Readable when requests wait.
    fn fd(&self) -> RawFd;
    /// The requests waiting now (never blocks).
    fn take(&mut self) -> Vec<Request>;
}

/// The stop signals, blocked in the calling thread (call it before any other thread
/// starts: threads inherit the mask) and read from a signalfd.
#[derive(Debug)]
pub struct StopSignals {
    fd: OwnedFd,
}

impl StopSignals {
    /// Blocks `signals` and opens their signalfd (non-blocking).
    pub fn block(signals: &[libc::c_int]) -> std::io::Result<StopSignals> {
        // SAFETY: a sigset filled by the libc calls, then used for the mask and the signalfd.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for s in signals {
                libc::sigaddset(&mut set, *s);
            }
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            let fd = libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(StopSignals {
                fd: OwnedFd::from_raw_fd(fd),
            })
        }
    }

    /// The next signal waiting, if any.
    pub fn next(&self) -> Option<libc::c_int> {
        // SAFETY: all-zero is a valid signalfd_siginfo; read fills at most its size.
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        // SAFETY: reads into `info`, within its size.
        let n = unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                std::ptr::addr_of_mut!(info).cast(),
                size,
            )
        };
        if usize::try_from(n).ok() != Some(size) {
            return None;
        }
        libc::c_int::try_from(info.ssi_signo).ok()
    }

    /// Blocks until one of the signals comes.
    pub fn wait(&self) -> Option<libc::c_int> {
        loop {
            let mut p = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: poll on one descriptor we own.
            if unsafe { libc::poll(&mut p, 1, -1) } < 0
                && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted
            {
                return None;
            }
            if let Some(s) = self.next() {
                return Some(s);
            }
        }
    }
}

impl Requests for StopSignals {
    fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    fn take(&mut self) -> Vec<Request> {
        std::iter::from_fn(|| self.next())
            .map(|s| Request::Stop { signal: Some(s) })
            .collect()
    }
}

/// Requests from another thread: [`Control::sender`] sends, the loop takes.
#[derive(Debug)]
pub struct Control {
    rx: mpsc::Receiver<Request>,
    wake: OwnedFd,
    tx: Sender,
}

/// The sending side of a [`Control`]; each send wakes the loop.
#[derive(Debug, Clone)]
pub struct Sender {
    tx: mpsc::Sender<Request>,
    wake: std::sync::Arc<OwnedFd>,
}

impl Sender {
    /// Sends `r`; a loop that has ended ignores it.
    pub fn send(&self, r: Request) {
        if self.tx.send(r).is_ok() {
            // SAFETY: a one-byte write from a buffer we own to the pipe we own.
            unsafe { libc::write(self.wake.as_raw_fd(), [0u8].as_ptr().cast(), 1) };
        }
    }
}

impl Control {
    pub fn new() -> std::io::Result<Control> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: pipe2 writes two descriptors into the array on success.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: both descriptors are open and owned by nobody else.
        let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let (tx, rx) = mpsc::channel();
        Ok(Control {
            rx,
            wake: r,
            tx: Sender {
                tx,
                wake: std::sync::Arc::new(w),
            },
        })
    }

    pub fn sender(&self) -> Sender {
        self.tx.clone()
    }
}

impl Requests for Control {
    fn fd(&self) -> RawFd {
        self.wake.as_raw_fd()
    }

    fn take(&mut self) -> Vec<Request> {
        let mut buf = [0u8; 64];
        // SAFETY: reads into a buffer we own (the pipe is non-blocking).
        while unsafe { libc::read(self.wake.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) } > 0 {
        }
        self.rx.try_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_requests_reach_the_taker_and_wake_its_fd() {
        let mut c = Control::new().unwrap();
        let s = c.sender();
        assert!(c.take().is_empty());
        s.send(Request::Stop { signal: None });
        let mut p = libc::pollfd {
            fd: c.fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll on one descriptor the control owns.
        assert_eq!(unsafe { libc::poll(&mut p, 1, 1000) }, 1);
        assert_eq!(c.take(), vec![Request::Stop { signal: None }]);
        assert!(c.take().is_empty());
    }
}
