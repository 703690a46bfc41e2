//! systemd's notification protocol (sd_notify(3)), spoken when `NOTIFY_SOCKET` is set, i.e.
//! when host-launch runs as a `Type=notify` unit (`systemd/host-launch@.service`): `READY=1`
//! when the guest reports ready, `STATUS=` with the phase, `STOPPING=1`, `MAINPID=`, and
//! `WATCHDOG=1` while the guest's heartbeats arrive (`WATCHDOG_USEC`, for this pid only when
//! `WATCHDOG_PID` is set). Without `NOTIFY_SOCKET` every call does nothing.
//!
//! The protocol is one datagram of `KEY=VALUE` lines to a Unix socket, a path or an abstract
//! name (`@name`); std does both, so there is no dependency for forty lines. Errors are
//! ignored, as libsystemd's callers do: a launcher must not fail because its supervisor is
//! gone. The variables are removed from the environment once read, so UML never sees them.

use std::cell::Cell;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::{Duration, Instant};

/// The connection to systemd, or nothing when not run under it.
#[derive(Debug)]
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
    watchdog: Option<Duration>,
    last_ping: Cell<Option<Instant>>,
}

impl Notifier {
    /// Reads (and removes) `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID`.
    pub fn from_env() -> Notifier {
        let socket = std::env::var("NOTIFY_SOCKET").ok();
        let usec = std::env::var("WATCHDOG_USEC").ok();
        let pid = std::env::var("WATCHDOG_PID").ok();
        for k in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] {
            // SAFETY: called at the start of `run`, before this process starts any thread, so
            // nothing reads the environment meanwhile.
            unsafe { std::env::remove_var(k) };
        }
        let mut n = socket
            .as_deref()
            .map(Notifier::to)
            .unwrap_or_else(Notifier::none);
        n.watchdog = watchdog_interval(usec.as_deref(), pid.as_deref(), std::process::id());
        n
    }

    /// A notifier that sends nothing.
    pub fn none() -> Notifier {
        Notifier {
            target: None,
            watchdog: None,
            last_ping: Cell::new(None),
        }
    }

    /// A notifier to this socket: a path, or `@name` for an abstract one.
    pub fn to(socket: &str) -> Notifier {
        let addr = if let Some(name) = socket.strip_prefix('@') {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name.as_bytes())
        } else {
            SocketAddr::from_pathname(socket)
        };
        let target = addr
            .ok()
            .and_then(|a| UnixDatagram::unbound().ok().map(|s| (s, a)));
        Notifier {
            target,
            watchdog: None,
            last_ping: Cell::new(None),
        }
    }

    /// Whether systemd listens (so `status` can say the appliance is managed by it).
    pub fn active(&self) -> bool {
        self.target.is_some()
    }

    /// The watchdog interval systemd asked for, if any.
    pub fn watchdog(&self) -> Option<Duration> {
        self.watchdog
    }

    /// Sends these `KEY=VALUE` lines as one datagram.
    pub fn send(&self, lines: &[String]) {
        if let Some((sock, addr)) = &self.target {
            let mut msg = lines.join("\n");
            msg.push('\n');
            let _ = sock.send_to_addr(msg.as_bytes(), addr);
        }
    }

    /// `READY=1`, `MAINPID=` and the status text.
    pub fn ready(&self, status: &str) {
        self.send(&[
            "READY=1".into(),
            format!("MAINPID={}", std::process::id()),
            status_line(status),
        ]);
    }

    pub fn status(&self, status: &str) {
        self.send(&[status_line(status)]);
    }

    pub fn stopping(&self, status: &str) {
        self.send(&["STOPPING=1".into(), status_line(status)]);
    }

    /// How often the guest should send a heartbeat: a quarter of the watchdog interval, so
    /// that a lost one or two do not trip it; `None` without a watchdog, since nothing else
    /// needs them and each one wakes the guest and the launcher.
    pub fn heartbeat(&self) -> Option<Duration> {
        self.watchdog
            .map(|w| (w / 4).max(Duration::from_millis(100)))
    }

    /// The guest showed it is alive (a status event arrived): `WATCHDOG=1`, at most every
    /// quarter of the interval, as sd_watchdog_enabled(3) advises half or less.
    pub fn alive(&self, now: Instant) {
        let Some(every) = self.watchdog else { return };
        if self
            .last_ping
            .get()
            .is_some_and(|t| now.duration_since(t) < every / 4)
        {
            return;
        }
        self.last_ping.set(Some(now));
        self.send(&["WATCHDOG=1".into()]);
    }
}

/// One `STATUS=` line: a single line of text (newlines would start other assignments).
fn status_line(text: &str) -> String {
    let one: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(400)
        .collect();
    format!("STATUS={one}")
}

/// `WATCHDOG_USEC` as an interval, when it is for this process (`WATCHDOG_PID` absent or ours).
pub fn watchdog_interval(usec: Option<&str>, pid: Option<&str>, me: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|u| *u > 0)?;
    match pid {
        Some(p) if p.trim().parse::<u32>().ok() != Some(me) => None,
        _ => Some(Duration::from_micros(usec)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recv(sock: &UnixDatagram) -> String {
        let mut buf = [0u8; 1024];
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let n = sock.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn datagrams_reach_a_path_socket_and_an_abstract_one() {
        let dir = std::env::temp_dir().join(format!("hl-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::to(path.to_str().unwrap());
        assert!(n.active());
        n.ready("ready\nafter 300 ms");
        assert_eq!(
            recv(&server),
            format!(
                "READY=1\nMAINPID={}\nSTATUS=ready after 300 ms\n",
                std::process::id()
            )
        );
        n.stopping("stopping");
        assert_eq!(recv(&server), "STOPPING=1\nSTATUS=stopping\n");
        std::fs::remove_dir_all(&dir).unwrap();

        use std::os::linux::net::SocketAddrExt;
        let name = format!("hl-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let server = UnixDatagram::bind_addr(&addr).unwrap();
        let mut n = Notifier::to(&format!("@{name}"));
        n.watchdog = Some(Duration::from_secs(4));
        let t = Instant::now();
        n.alive(t);
        n.alive(t + Duration::from_millis(500)); // within a quarter: not sent
        n.alive(t + Duration::from_secs(1));
        n.status("ready");
        assert_eq!(recv(&server), "WATCHDOG=1\n");
        assert_eq!(recv(&server), "WATCHDOG=1\n");
        assert_eq!(recv(&server), "STATUS=ready\n");
    }

    #[test]
    fn without_a_socket_nothing_is_sent_and_no_watchdog_runs() {
        let n = Notifier::none();
        assert!(!n.active());
        n.ready("x");
        n.alive(Instant::now());
        assert_eq!(n.watchdog(), None);
        assert_eq!(n.heartbeat(), None, "no watchdog, no heartbeats asked for");
    }

    #[test]
    fn the_guest_beats_four_times_per_watchdog_interval() {
        let mut n = Notifier::none();
        n.watchdog = Some(Duration::from_secs(10));
        assert_eq!(n.heartbeat(), Some(Duration::from_millis(2500)));
        n.watchdog = Some(Duration::from_millis(20));
        assert_eq!(n.heartbeat(), Some(Duration::from_millis(100)));
    }

    #[test]
    fn the_watchdog_is_for_this_pid_only() {
        let d = Some(Duration::from_secs(10));
        assert_eq!(watchdog_interval(Some("10000000"), None, 7), d);
        assert_eq!(watchdog_interval(Some("10000000"), Some("7"), 7), d);
        assert_eq!(watchdog_interval(Some("10000000"), Some("8"), 7), None);
        assert_eq!(watchdog_interval(Some("0"), None, 7), None);
        assert_eq!(watchdog_interval(Some("x"), None, 7), None);
        assert_eq!(watchdog_interval(None, None, 7), None);
    }
}
