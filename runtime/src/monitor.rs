//! The container's process: what `create` leaves behind, whose pid goes to `--pid-file` and
//! which conmon waits on. It waits for `start` (the fifo), boots the VM jailed by vmm, copies
//! the guest's console to its own stdout (conmon's pipe: `podman logs`), follows guest-init's
//! status events, stops the guest gracefully on SIGTERM/SIGINT/SIGHUP/SIGQUIT (ctrl-alt-del
//! through the mconsole: guest-init's stop, then its clean power-off), and exits with the
//! service's exit status (a signal `N` as `128 + N`, as a shell and podman show it). If it is
//! killed, UML dies with it (vmm's child has PDEATHSIG), and `delete` cleans the host.

use crate::error::{Error, Result};
use crate::state::{Dir, Net};
use contract::status::Event;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};
use vmm::channel::{Dropped, LineSplitter};

/// Added to the service's stop timeout before the VM is killed: guest-init's own shutdown.
pub const STOP_MARGIN: Duration = Duration::from_secs(10);

/// The exit status when the VM ended without the service's (a fatal contract error, a
/// kernel panic, a VM killed): as runc's for a container that could not run its process.
pub const NO_SERVICE_STATUS: i32 = 255;

/// Longest status line kept (guest-init's are far shorter).
const MAX_STATUS_LINE: usize = 64 * 1024;

/// What the monitor needs to boot and stop the VM.
pub struct Vm {
    pub dir: Dir,
    pub machine: vmm::cmdline::Machine,
    pub jail: vmm::jail::Jail,
    pub net: Option<Net>,
    pub stop_timeout: Duration,
}

fn stop_signals() -> SigSet {
    let mut s = SigSet::empty();
    for sig in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
    ] {
        s.add(sig);
    }
    s
}

/// Waits for `start`, runs the VM, cleans up; returns the exit status for conmon.
pub fn run(vm: &Vm) -> i32 {
    let code = match wait_for_start(&vm.dir) {
        Ok(()) => boot_and_follow(vm).unwrap_or_else(|e| {
            say(&format!("{e}"));
            NO_SERVICE_STATUS
        }),
        Err(e) => {
            say(&format!("{e}"));
            NO_SERVICE_STATUS
        }
    };
    if let Some(n) = &vm.net {
        crate::net::disconnect(&n.netns, &n.tap, &n.link);
    }
    let _ = std::fs::remove_dir_all(vm.dir.jail());
    let _ = std::fs::write(vm.dir.exit(), code.to_string());
    code
}

/// A pod sandbox's process: waits for `start`, then for a stop signal; exits 0.
pub fn placeholder(dir: &Dir) -> i32 {
    if let Err(e) = wait_for_start(dir) {
        say(&format!("{e}"));
        return NO_SERVICE_STATUS;
    }
    let sigs = stop_signals();
    let _ = sigs.thread_block();
    let _ = sigs.wait();
    let _ = std::fs::write(dir.exit(), "0");
    0
}

/// A line on stderr (conmon's pipe: the container's log).
pub fn say(msg: &str) {
    let _ = writeln!(std::io::stderr(), "uml-runc: {msg}");
}

/// Blocks until `start` opens the fifo, and tells it so with one byte.
fn wait_for_start(dir: &Dir) -> Result<()> {
    let fifo = dir.fifo();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(&fifo)
        .map_err(|e| Error::new(format!("opening {}: {e}", fifo.display())))?;
    f.write_all(b"0")
        .map_err(|e| Error::new(format!("writing {}: {e}", fifo.display())))
}

/// What the status channel said about the service.
#[derive(Default)]
struct Seen {
    /// The last `exited` event's status.
    exit: Option<i32>,
    fatal: Option<String>,
    /// guest-init has written to the status channel: it turned ctrl-alt-del into its SIGINT
    /// before that, so a `cad` from now on stops the guest; one sent earlier reboots the VM
    /// (the kernel's default), which then boots again and runs on.
    spoke: bool,
}

fn boot_and_follow(vm: &Vm) -> Result<i32> {
    let sigs = stop_signals();
    let _ = sigs.thread_block();
    let sfd = SignalFd::with_flags(&sigs, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(|e| Error::new(format!("creating a signalfd: {e}")))?;
    let started = vmm::spawn::start(&vm.machine, &vm.jail).map_err(Error::new)?;
    let mut process = started.process;
    let console = std::fs::File::from(started.console);
    let pump = std::thread::spawn(move || copy_console(console));
    vmm::channel::set_nonblocking(&started.status)
        .map_err(|e| Error::new(format!("making the status pipe non-blocking: {e}")))?;
    let target = vmm::mconsole::Target::jailed(
        process.pid(),
        &vm.machine.umid,
        vm.jail.netns.clone(),
        vm.jail.uid,
    );
    let mut split = LineSplitter::new(MAX_STATUS_LINE, std::sync::Arc::new(Dropped::default()));
    let mut seen = Seen::default();
    let mut stop_deadline: Option<Instant> = None;
    let mut cad_sent = false;
    let mut status_open = true;
    let status = loop {
        let mut fds = vec![
            libc::pollfd {
                fd: sfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: process.pidfd().as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        if status_open {
            fds.push(libc::pollfd {
                fd: started.status.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        let timeout = match stop_deadline {
            Some(d) if !cad_sent => {
                Duration::from_millis(200).min(d.saturating_duration_since(Instant::now()))
            }
            Some(d) => d.saturating_duration_since(Instant::now()),
            None => Duration::from_secs(60),
        };
        poll(&mut fds, timeout);
        while let Ok(Some(_)) = sfd.read_signal() {
            if stop_deadline.is_none() {
                say("stopping the guest (ctrl-alt-del: the service's stop, then power-off)");
                stop_deadline = Some(Instant::now() + vm.stop_timeout + STOP_MARGIN);
            }
        }
        if status_open {
            status_open = read_status(&started.status, &mut split, &mut seen);
        }
        if stop_deadline.is_some() && !cad_sent && seen.spoke {
            cad_sent = vmm::mconsole::send(&target, "cad", Duration::from_secs(1)).is_ok();
        }
        if stop_deadline.is_some_and(|d| Instant::now() >= d) {
            say("the guest did not power off within its stop timeout; killing the VM");
            let _ = process.kill();
            stop_deadline = Some(Instant::now() + Duration::from_secs(3600));
        }
        match process.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) => {}
            Err(e) => return Err(Error::new(format!("waiting for UML: {e}"))),
        }
    };
    // The status lines still in the pipe (UML's helpers are gone with it).
    let until = Instant::now() + Duration::from_secs(2);
    while status_open && Instant::now() < until {
        let mut fds = [libc::pollfd {
            fd: started.status.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        poll(&mut fds, until.saturating_duration_since(Instant::now()));
        status_open = read_status(&started.status, &mut split, &mut seen);
    }
    let _ = pump.join();
    if let Some(f) = &seen.fatal {
        say(&format!("guest-init could not run the service: {f}"));
    }
    Ok(match seen.exit {
        Some(code) => code,
        None => {
            say(&format!(
                "the VM ended ({status}) without the service's exit status"
            ));
            NO_SERVICE_STATUS
        }
    })
}

/// Copies the guest console to stdout until it ends; a closed stdout is drained, not fatal.
fn copy_console(mut src: std::fs::File) {
    use std::io::Read;
    let mut out = std::io::stdout();
    let mut buf = vec![0u8; 16384];
    let mut open = true;
    loop {
        match src.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if open {
                    open = out.write_all(&buf[..n]).and_then(|()| out.flush()).is_ok();
                }
            }
        }
    }
}

/// Reads what the status pipe holds now; `false` at its end.
fn read_status(fd: &OwnedFd, split: &mut LineSplitter, seen: &mut Seen) -> bool {
    vmm::channel::read_now(fd, split, &mut |l| note(l, seen))
}

fn note(line: &[u8], seen: &mut Seen) {
    let Some(l) = contract::status::parse(&String::from_utf8_lossy(line)) else {
        return;
    };
    seen.spoke = true;
    match l.event {
        Event::Exited { code, signal, .. } => {
            seen.exit = Some(match (code, signal) {
                (Some(c), _) => c,
                (None, Some(s)) => 128 + s,
                (None, None) => NO_SERVICE_STATUS,
            })
        }
        Event::Fatal { reason, .. } => seen.fatal = Some(reason),
        // Lost console lines are said where conmon takes the container's log from, beside
        // the console's own notice (which a reader that misses lines may miss too).
        Event::Warning { reason } if reason.contains(contract::status::CONSOLE_DROPPED) => {
            say(&format!("guest-init: {reason}"))
        }
        _ => {}
    }
}

fn poll(fds: &mut [libc::pollfd], timeout: Duration) {
    let ms = timeout.as_millis().min(60_000) as libc::c_int;
    // SAFETY: poll on descriptors we own, within the slice's length.
    unsafe {
        libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms);
    }
}
