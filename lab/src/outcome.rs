//! How a test VM's run ended: its console, exit status and status events, with the
//! assertions the tests make on them.

use crate::events::Event;
use std::process::ExitStatus;
use std::time::Duration;

/// How a VM run ended.
#[derive(Debug)]
pub struct VmOutcome {
    /// Everything the guest console showed (kernel messages and guest-init's lines), with
    /// `\r\n` turned into `\n`.
    pub console: String,
    /// The exit status of the `linux` process (success after a clean power-off).
    pub status: ExitStatus,
    /// Whether the VM was killed after the timeout.
    pub timed_out: bool,
    /// Whether UML was killed because it had not exited 5 s after the guest powered off.
    pub killed_after_power_off: bool,
    /// Wall-clock time from start to exit.
    pub duration: Duration,
    /// The command that was run.
    pub command_line: String,
    /// What UML itself printed on the host (its start-up checks).
    pub host_stderr: String,
    /// The status events guest-init sent on `/dev/tty1`, in order.
    pub events: Vec<Event>,
    /// The raw text of the status channel.
    pub status_text: String,
}

impl VmOutcome {
    /// Exit status 0, not killed by the timeout, no kernel panic on the console.
    pub fn powered_off_cleanly(&self) -> bool {
        // A guest that powered off cleanly stays so when its UML then hangs or aborts on its
        // way out (Debian's kernel, now and then): the guest's shutdown is what is tested.
        let exited = self.status.success() || self.uml_ended_after_power_off();
        exited && !self.timed_out && !self.console.contains("Kernel panic")
    }

    /// UML was killed, or died of a signal, after guest-init's `power_off` event and the
    /// kernel's "System halted".
    pub fn uml_ended_after_power_off(&self) -> bool {
        use std::os::unix::process::ExitStatusExt;
        let halted = self.event("power_off").is_some() && self.console.contains("System halted");
        halted && (self.killed_after_power_off || self.status.signal().is_some())
    }

    /// Panics with [`VmOutcome::report`] unless [`VmOutcome::powered_off_cleanly`].
    #[track_caller]
    pub fn assert_clean_poweroff(&self) {
        assert!(
            self.powered_off_cleanly(),
            "the VM did not power off cleanly\n{}",
            self.report()
        );
    }

    /// Panics with [`VmOutcome::report`] unless the console contains `needle`.
    #[track_caller]
    pub fn assert_console_contains(&self, needle: &str) {
        assert!(
            self.console.contains(needle),
            "the console does not show {needle:?}\n{}",
            self.report()
        );
    }

    /// The console lines guest-init printed, without the `guest-init: ` prefix.
    pub fn guest_init_lines(&self) -> Vec<&str> {
        self.console
            .lines()
            .filter_map(|l| l.strip_prefix("guest-init: "))
            .collect()
    }

    /// The status events, in order.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// The first status event called `name`.
    pub fn event(&self, name: &str) -> Option<&Event> {
        self.events.iter().find(|e| e.name == name)
    }

    /// Every status event called `name`, in order.
    pub fn events_named(&self, name: &str) -> Vec<&Event> {
        self.events.iter().filter(|e| e.name == name).collect()
    }

    /// The names of the status events, in order.
    pub fn event_names(&self) -> Vec<&str> {
        crate::events::names(&self.events)
    }

    /// The first event called `name`; panics with [`VmOutcome::report`] if there is none.
    #[track_caller]
    pub fn expect_event(&self, name: &str) -> &Event {
        self.event(name).unwrap_or_else(|| {
            panic!("no status event {name:?}\n{}", self.report());
        })
    }

    /// Panics with [`VmOutcome::report`] unless the events `names` occur in this order
    /// (other events may come between them).
    #[track_caller]
    pub fn assert_events_in_order(&self, names: &[&str]) {
        assert!(
            crate::events::in_order(&self.events, names),
            "the status events do not include {names:?} in this order\n{}",
            self.report()
        );
    }

    /// Everything known about the run, for a failing test's message.
    pub fn report(&self) -> String {
        format!(
            "command: {}\nstatus: {} timed out: {} duration: {:?}\n--- console ---\n{}\n--- \
             status channel ---\n{}\n--- host stderr ---\n{}",
            self.command_line,
            self.status,
            self.timed_out,
            self.duration,
            self.console,
            self.status_text.trim_end(),
            self.host_stderr
        )
    }
}
