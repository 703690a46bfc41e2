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
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;
use vmm::channel::Dropped;
use vmm::follow::{Escalation, Heard, Note, Observer, Rules};
use vmm::requests::{StopSignals, STOP_SIGNALS};

/// Added to the service's stop timeout before the VM is killed: guest-init's own shutdown.
pub const STOP_MARGIN: Duration = Duration::from_secs(10);

/// The exit status when the VM ended without the service's (a fatal contract error, a
/// kernel panic, a VM killed): as runc's for a container that could not run its process.
pub const NO_SERVICE_STATUS: i32 = 255;

/// Longest status line kept (guest-init's are far shorter).
const MAX_STATUS_LINE: usize = 64 * 1024;

/// What the monitor needs to boot and stop the VM.
#[derive(Debug)]
pub struct Vm {
    pub dir: Dir,
    pub machine: vmm::cmdline::Machine,
    pub jail: vmm::jail::Jail,
    pub net: Option<Net>,
    pub stop_timeout: Duration,
}

/// vmm's stop signals and SIGQUIT, runc's too.
fn stop_signals() -> [libc::c_int; 4] {
    let [a, b, c] = STOP_SIGNALS;
    [a, b, c, libc::SIGQUIT]
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
    match StopSignals::block(&stop_signals()) {
        Ok(sigs) => {
            let _ = sigs.wait();
        }
        Err(e) => say(&format!("creating a signalfd: {e}")),
    }
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
}

/// What uml-runc adds to vmm's follow loop: the service's exit status, and its lines on
/// conmon's pipe.
impl Observer for Seen {
    fn status_line(&mut self, line: &[u8]) -> Heard {
        note(line, self)
    }

    fn stop_requested(&mut self, _signal: Option<libc::c_int>, _again: bool) {
        say("stopping the guest (ctrl-alt-del: the service's stop, then power-off)");
    }

    fn note(&mut self, note: Note) {
        if let Note::StopTimedOut = note {
            say("the guest did not power off within its stop timeout; killing the VM");
        }
    }
}

fn boot_and_follow(vm: &Vm) -> Result<i32> {
    let mut stops = StopSignals::block(&stop_signals())
        .map_err(|e| Error::new(format!("creating a signalfd: {e}")))?;
    let (mut running, console) =
        vmm::launch::launch(&vm.machine, &vm.jail).map_err(|e| Error::new(e.to_string()))?;
    let pump = std::thread::spawn(move || copy_console(console));
    let rules = Rules {
        stop_timeout: vm.stop_timeout + STOP_MARGIN,
        escalation: Escalation::Kill,
        again_escalates: false,
        power_off_grace: None,
        panic_watch: false,
        max_line: MAX_STATUS_LINE,
        dropped: Arc::new(Dropped::default()),
    };
    let mut seen = Seen::default();
    let ended = vmm::follow::follow(&mut running, &rules, Some(&mut stops), &mut seen)
        .map_err(|e| Error::new(format!("waiting for UML: {e}")))?;
    let _ = pump.join();
    if let Some(f) = &seen.fatal {
        say(&format!("guest-init could not run the service: {f}"));
    }
    Ok(match seen.exit {
        Some(code) => code,
        None => {
            say(&format!(
                "the VM ended ({}) without the service's exit status",
                ended.status
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

/// One status line: what it says about the service.
fn note(line: &[u8], seen: &mut Seen) -> Heard {
    let Some(l) = contract::status::parse(&String::from_utf8_lossy(line)) else {
        return Heard::Junk;
    };
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
        Event::PowerOff { .. } => return Heard::PowerOff,
        _ => {}
    }
    Heard::Event
}
