//! A running VM's handle: UML's pid and pidfd, waiting for it and killing it.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

#[derive(Debug)]
/// A running VM: UML as PID 1 of its own PID namespace. Dropping it kills and reaps the VM.
pub struct Process {
    pub(crate) pid: u32,
    pub(crate) pidfd: OwnedFd,
    pub(crate) status: Option<ExitStatus>,
}

impl Process {
    /// UML's host pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Readable once the VM has exited (for poll).
    pub fn pidfd(&self) -> BorrowedFd<'_> {
        self.pidfd.as_fd()
    }

    fn reap(&mut self, flags: libc::c_int) -> std::io::Result<Option<ExitStatus>> {
        if let Some(s) = self.status {
            return Ok(Some(s));
        }
        let mut raw: libc::c_int = 0;
        // SAFETY: waitpid on our own child, writing its status into `raw`.
        let rc = unsafe { libc::waitpid(self.pid as libc::pid_t, &mut raw, flags) };
        if rc < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if rc == 0 {
            return Ok(None);
        }
        let s = ExitStatus::from_raw(raw);
        self.status = Some(s);
        Ok(Some(s))
    }

    /// The exit status, if the VM has exited.
    pub fn try_wait(&mut self) -> std::io::Result<Option<ExitStatus>> {
        self.reap(libc::WNOHANG)
    }

    /// Waits until the VM exits.
    pub fn wait(&mut self) -> std::io::Result<ExitStatus> {
        loop {
            match self.reap(0) {
                Ok(Some(s)) => return Ok(s),
                Ok(None) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends `signal` to UML (SIGKILL: the VM and every process of its namespace die).
    pub fn signal(&self, signal: libc::c_int) -> std::io::Result<()> {
        if self.status.is_some() {
            return Ok(());
        }
        // SAFETY: pidfd_send_signal on our own pidfd with no siginfo.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.pidfd.as_raw_fd(),
                signal,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if rc < 0 {
            let e = std::io::Error::last_os_error();
            // Exited but not reaped yet.
            if e.raw_os_error() == Some(libc::ESRCH) {
                return Ok(());
            }
            return Err(e);
        }
        Ok(())
    }

    /// Kills the VM (all of its processes).
    pub fn kill(&self) -> std::io::Result<()> {
        self.signal(libc::SIGKILL)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.kill();
            let _ = self.wait();
        }
    }
}
