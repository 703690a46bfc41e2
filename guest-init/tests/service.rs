//! `service::spawn` against real processes. Needs root (as CI has): the tests switch to uid
//! 65534 and keep or drop capabilities.
//!
//! Tests run in parallel threads of one process, which is exactly the situation spawn's
//! fork design is for; `many_spawns_in_parallel_threads` leans on it on purpose.

use contract::Service;
use guest_init::service::{
    read_notify, spawn, tcp_ready, tcp_ready_within, Child, Notify, SpawnError, SpawnOptions,
};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use serde_json::json;
use std::collections::BTreeSet;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

const NOBODY: u32 = 65534;

/// The service's capabilities typed, as `contract::checked` gives them to guest-init.
fn caps(svc: &Service) -> Vec<contract::names::Capability> {
    svc.capabilities
        .iter()
        .map(|n| contract::names::Capability::from_name(n).expect("a capability name"))
        .collect()
}

fn service(v: serde_json::Value) -> Service {
    serde_json::from_value(v).expect("test contract")
}

fn sh(script: &str) -> serde_json::Value {
    json!(["/bin/sh", "-c", script])
}

struct Output {
    out: String,
    err: String,
    status: WaitStatus,
}

fn start(svc: &Service) -> Child {
    spawn(svc, &caps(svc), &SpawnOptions::default()).unwrap_or_else(|e| panic!("spawn failed: {e}"))
}

fn run(svc: &Service) -> Output {
    collect(start(svc))
}

/// Reads one non-blocking pipe; returns false at end of file.
fn drain(fd: &OwnedFd, into: &mut Vec<u8>) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match nix::unistd::read(fd.as_raw_fd(), &mut buf) {
            Ok(0) => return false,
            Ok(n) => into.extend_from_slice(&buf[..n]),
            Err(Errno::EAGAIN) => return true,
            Err(Errno::EINTR) => continue,
            Err(e) => panic!("read: {e}"),
        }
    }
}

/// Reads stdout and stderr to their ends, then reaps exactly this child.
fn collect(child: Child) -> Output {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let (mut out_open, mut err_open) = (true, true);
    let deadline = Instant::now() + Duration::from_secs(30);
    while out_open || err_open {
        if out_open {
            out_open = drain(&child.stdout, &mut out);
        }
        if err_open {
            err_open = drain(&child.stderr, &mut err);
        }
        // Wait for output or end of file on what is still open (an event), not for a while.
        let open: Vec<_> = [(out_open, &child.stdout), (err_open, &child.stderr)]
            .into_iter()
            .filter(|(o, _)| *o)
            .map(|(_, fd)| PollFd::new(fd.as_fd(), PollFlags::POLLIN))
            .collect();
        let mut fds = open;
        let left = deadline.saturating_duration_since(Instant::now());
        let timeout = PollTimeout::try_from(left).unwrap_or(PollTimeout::ZERO);
        if !fds.is_empty() && poll(&mut fds, timeout) == Ok(0) {
            let _ = kill(child.pid, Signal::SIGKILL);
            let _ = waitpid(child.pid, None);
            panic!("child did not finish");
        }
    }
    let status = waitpid(child.pid, None).expect("waitpid");
    Output {
        out: String::from_utf8_lossy(&out).into_owned(),
        err: String::from_utf8_lossy(&err).into_owned(),
        status,
    }
}

fn ok(o: &Output) {
    assert!(
        matches!(o.status, WaitStatus::Exited(_, 0)),
        "status {:?}, stdout {:?}, stderr {:?}",
        o.status,
        o.out,
        o.err
    );
}

/// A `Name:\tvalue` line of /proc/<pid>/status output.
fn field<'a>(status: &'a str, name: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {name} in {status}"))
        .trim()
}

fn proc_status(svc: serde_json::Value) -> String {
    let o = run(&service(svc));
    ok(&o);
    o.out
}

#[test]
fn runs_as_the_contract_user_group_and_groups() {
    let o = run(&service(json!({
        "argv": sh("id -u; id -g; id -G"),
        "uid": NOBODY, "gid": 65533, "groups": [100, 200],
    })));
    ok(&o);
    let lines: Vec<&str> = o.out.lines().collect();
    assert_eq!(lines[0], "65534");
    assert_eq!(lines[1], "65533");
    let groups: BTreeSet<&str> = lines[2].split_whitespace().collect();
    assert_eq!(groups, BTreeSet::from(["65533", "100", "200"]));
}

#[test]
fn no_supplementary_groups_are_inherited() {
    let o = run(&service(
        json!({"argv": sh("id -G"), "uid": NOBODY, "gid": NOBODY}),
    ));
    ok(&o);
    assert_eq!(o.out.trim(), "65534");
}

#[test]
fn non_root_with_net_bind_service_holds_exactly_that_capability() {
    let s = proc_status(json!({
        "argv": sh("cat /proc/self/status"),
        "uid": NOBODY, "gid": NOBODY,
        "capabilities": ["CAP_NET_BIND_SERVICE"],
    }));
    for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(field(&s, set), "0000000000000400", "{set}");
    }
    assert_eq!(field(&s, "NoNewPrivs"), "1");
}

#[test]
fn non_root_without_capabilities_has_none() {
    let s = proc_status(json!({
        "argv": sh("cat /proc/self/status"), "uid": NOBODY, "gid": NOBODY,
    }));
    for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(field(&s, set), "0000000000000000", "{set}");
    }
    assert_eq!(field(&s, "NoNewPrivs"), "1");
}

#[test]
fn root_service_is_limited_to_the_listed_capabilities_too() {
    let s = proc_status(json!({
        "argv": sh("cat /proc/self/status"),
        "capabilities": ["CAP_NET_BIND_SERVICE", "CAP_CHOWN"],
    }));
    assert_eq!(field(&s, "Uid").split_whitespace().next(), Some("0"));
    for set in ["CapPrm", "CapEff", "CapBnd"] {
        assert_eq!(field(&s, set), "0000000000000401", "{set}");
    }
    let s = proc_status(json!({"argv": sh("cat /proc/self/status")}));
    for set in ["CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(field(&s, set), "0000000000000000", "{set}");
    }
}

/// A Python one-liner that tries to bind a low loopback port and prints what happened.
fn bind_low_port() -> serde_json::Value {
    json!([
        "/usr/bin/python3",
        "-c",
        r#"
import errno, socket
for port in range(880, 900):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", port))
        print("bound", port)
        break
    except OSError as e:
        if e.errno != errno.EADDRINUSE:
            print("error", e.errno)
            break
    finally:
        s.close()
"#
    ])
}

#[test]
fn net_bind_service_really_lets_nobody_bind_a_low_port() {
    let o = run(&service(json!({
        "argv": bind_low_port(), "uid": NOBODY, "gid": NOBODY,
        "capabilities": ["CAP_NET_BIND_SERVICE"],
    })));
    ok(&o);
    assert!(o.out.starts_with("bound "), "{:?} {:?}", o.out, o.err);
}

#[test]
fn without_the_capability_nobody_cannot_bind_a_low_port() {
    let o = run(&service(json!({
        "argv": bind_low_port(), "uid": NOBODY, "gid": NOBODY,
    })));
    ok(&o);
    assert_eq!(
        o.out.trim(),
        format!("error {}", libc::EACCES),
        "{:?}",
        o.err
    );
}

#[test]
fn signal_mask_and_ignored_signals_are_not_inherited() {
    // SAFETY: plain signal calls on this test thread / this test process. SIGUSR2 is not
    // used by anything else in this binary; the Rust runtime itself already ignores SIGPIPE.
    let old = unsafe {
        libc::signal(libc::SIGUSR2, libc::SIG_IGN);
        let mut block: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut block);
        libc::sigaddset(&mut block, libc::SIGUSR1);
        libc::sigaddset(&mut block, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &block, &mut old);
        old
    };
    let here = std::fs::read_to_string("/proc/thread-self/status").unwrap();
    assert_ne!(field(&here, "SigBlk"), "0000000000000000");
    assert_ne!(field(&here, "SigIgn"), "0000000000000000");
    let child = start(&service(json!({"argv": sh("cat /proc/self/status")})));
    // SAFETY: restores this thread's mask.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
    let o = collect(child);
    ok(&o);
    assert_eq!(field(&o.out, "SigBlk"), "0000000000000000");
    assert_eq!(field(&o.out, "SigIgn"), "0000000000000000");
}

#[test]
fn the_service_leads_its_own_session_without_a_terminal() {
    let child = start(&service(json!({"argv": sh("cat /proc/$$/stat")})));
    let pid = child.pid.as_raw();
    let o = collect(child);
    ok(&o);
    let after_name = o.out.rsplit_once(')').expect("stat").1;
    let f: Vec<i64> = after_name
        .split_whitespace()
        .skip(1)
        .take(4)
        .map(|x| x.parse().unwrap())
        .collect();
    let (pgrp, session, tty) = (f[1], f[2], f[3]);
    assert_eq!(session, i64::from(pid), "session id");
    assert_eq!(pgrp, i64::from(pid), "process group");
    assert_eq!(tty, 0, "controlling terminal");
}

#[test]
fn the_environment_is_exactly_the_contracts() {
    let o = run(&service(json!({
        "argv": ["/usr/bin/env"],
        "env": {"A": "1", "B": "two words", "EMPTY": ""},
    })));
    ok(&o);
    assert_eq!(o.out, "A=1\nB=two words\nEMPTY=\n");
    let o = run(&service(json!({"argv": ["/usr/bin/env"]})));
    ok(&o);
    assert_eq!(o.out, "");
}

#[test]
fn workdir_defaults_to_root_and_is_applied() {
    let o = run(&service(json!({"argv": sh("pwd")})));
    ok(&o);
    assert_eq!(o.out, "/\n");
    let o = run(&service(
        json!({"argv": sh("pwd"), "workdir": "/tmp", "uid": NOBODY}),
    ));
    ok(&o);
    assert_eq!(o.out, "/tmp\n");
}

#[test]
fn umask_is_set_explicitly() {
    let o = run(&service(json!({"argv": sh("umask")})));
    ok(&o);
    assert_eq!(o.out.trim(), "0022");
}

#[test]
fn stdin_is_dev_null() {
    let o = run(&service(json!({
        "argv": sh("readlink /proc/self/fd/0; cat; echo end"),
    })));
    ok(&o);
    assert_eq!(o.out, "/dev/null\nend\n");
}

#[test]
fn stdout_and_stderr_arrive_separately() {
    let o = run(&service(
        json!({"argv": sh("echo out; echo err >&2; echo out2")}),
    ));
    ok(&o);
    assert_eq!(o.out, "out\nout2\n");
    assert_eq!(o.err, "err\n");
}

#[test]
fn parent_ends_are_nonblocking_and_close_on_exec() {
    let child = start(&service(json!({
        "argv": ["/bin/true"], "readiness": {"type": "notify", "fd": 3},
    })));
    let ready = child.ready.as_ref().expect("ready fd");
    for fd in [&child.stdout, &child.stderr, ready] {
        let fl = nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFL).unwrap();
        assert_ne!(fl & libc::O_NONBLOCK, 0, "O_NONBLOCK");
        let fd_fl = nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFD).unwrap();
        assert_ne!(fd_fl & libc::FD_CLOEXEC, 0, "FD_CLOEXEC");
    }
    ok(&collect(child));
}

/// The fd numbers a running process has open, seen from outside.
fn open_fds(pid: nix::unistd::Pid) -> BTreeSet<i32> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().parse().unwrap())
        .collect()
}

fn link(pid: nix::unistd::Pid, fd: i32) -> String {
    std::fs::read_link(format!("/proc/{pid}/fd/{fd}"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

fn stop(child: Child) {
    let _ = kill(child.pid, Signal::SIGKILL);
    let _ = waitpid(child.pid, None);
}

#[test]
fn only_stdio_is_open_even_if_the_parent_leaks_an_fd() {
    // An fd without close-on-exec in the parent, as a careless module of PID 1 might leave.
    // SAFETY: plain open/close of /dev/null.
    let leak = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY) };
    assert!(leak >= 0);
    // spawn returns after a successful exec, so /proc/<pid>/fd is the service's own table.
    let child = start(&service(json!({"argv": ["/bin/sleep", "30"]})));
    // SAFETY: closes the fd opened above.
    unsafe { libc::close(leak) };
    let fds = open_fds(child.pid);
    let (l0, l1, l2) = (link(child.pid, 0), link(child.pid, 1), link(child.pid, 2));
    stop(child);
    assert_eq!(fds, BTreeSet::from([0, 1, 2]));
    assert_eq!(l0, "/dev/null");
    assert!(
        l1.starts_with("pipe:") && l2.starts_with("pipe:") && l1 != l2,
        "{l1} {l2}"
    );
}

#[test]
fn the_notify_fd_is_the_only_extra_fd() {
    let child = start(&service(json!({
        "argv": ["/bin/sleep", "30"], "readiness": {"type": "notify", "fd": 7},
    })));
    let fds = open_fds(child.pid);
    let l7 = link(child.pid, 7);
    stop(child);
    assert_eq!(fds, BTreeSet::from([0, 1, 2, 7]));
    assert!(l7.starts_with("pipe:"), "{l7}");
}

/// Waits (poll) for the notify pipe to say something, then asks `read_notify` what; gives up
/// with what it says after 20 s.
fn wait_notify(fd: &OwnedFd) -> Notify {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let n = read_notify(fd.as_fd());
        let left = deadline.saturating_duration_since(Instant::now());
        if n != Notify::Pending || left.is_zero() {
            return n;
        }
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        let _ = poll(
            &mut fds,
            PollTimeout::try_from(left).unwrap_or(PollTimeout::ZERO),
        );
    }
}

/// A FIFO in a fresh directory that any user may open: the test writes to it when the
/// service may go on (an event instead of a sleep in the service's script).
struct Gate {
    dir: std::path::PathBuf,
}

impl Gate {
    fn new(name: &str) -> Gate {
        let dir = std::env::temp_dir().join(format!("gi-gate-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).expect("gate dir");
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .expect("chmod gate dir");
        nix::unistd::mkfifo(
            &dir.join("fifo"),
            nix::sys::stat::Mode::from_bits_truncate(0o666),
        )
        .expect("mkfifo");
        std::fs::set_permissions(
            dir.join("fifo"),
            std::os::unix::fs::PermissionsExt::from_mode(0o666),
        )
        .expect("chmod fifo");
        Gate { dir }
    }

    fn path(&self) -> String {
        self.dir.join("fifo").display().to_string()
    }

    /// Lets the service go on, once it has the FIFO open for reading (until then, a
    /// non-blocking open for writing fails with ENXIO); panics after 20 s.
    fn open(&self) {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(self.dir.join("fifo"))
            {
                Ok(mut f) => {
                    f.write_all(b"go\n").expect("write the gate");
                    return;
                }
                Err(e) if e.raw_os_error() == Some(libc::ENXIO) && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => panic!("the service never opened the gate: {e}"),
            }
        }
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn a_newline_on_the_notify_fd_means_ready() {
    let gate = Gate::new("notify");
    let script = format!(
        "read go < {}; printf 'starting...\\n' >&3; exec sleep 30",
        gate.path()
    );
    let child = start(&service(json!({
        "argv": sh(&script),
        "readiness": {"type": "notify", "fd": 3},
    })));
    let ready = child.ready.as_ref().expect("ready fd");
    assert_eq!(read_notify(ready.as_fd()), Notify::Pending);
    gate.open();
    assert_eq!(wait_notify(ready), Notify::Ready);
    stop(child);
}

#[test]
fn end_of_file_before_a_newline_means_never_ready() {
    let child = start(&service(json!({
        "argv": sh("printf 'almost' >&5; exec 5>&-; exec sleep 30"),
        "readiness": {"type": "notify", "fd": 5},
    })));
    let ready = child.ready.as_ref().expect("ready fd");
    assert_eq!(wait_notify(ready), Notify::Never);
    stop(child);
}

#[test]
fn a_missing_program_is_reported_with_its_path_and_errno() {
    let svc = service(json!({"argv": ["/usr/bin/nope", "x"]}));
    let err = spawn(&svc, &caps(&svc), &SpawnOptions::default()).expect_err("must fail");
    match &err {
        SpawnError::Exec { step, errno, .. } => {
            assert_eq!(*step, "execve");
            assert_eq!(*errno, Errno::ENOENT);
        }
        other => panic!("wrong error {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "service.argv[0] '/usr/bin/nope': No such file or directory (ENOENT)"
    );
}

#[test]
fn the_contracts_resource_limits_bind_the_service() {
    // Lower than any host's default, so the test needs no CAP_SYS_RESOURCE.
    let svc = service(json!({
        "argv": sh("ulimit -Sn; ulimit -Hn; ulimit -c"), "uid": NOBODY, "gid": NOBODY,
        "rlimits": {"RLIMIT_NOFILE": {"soft": 123, "hard": 456}, "RLIMIT_CORE": {"soft": 0, "hard": 0}},
    }));
    let o = run(&svc);
    ok(&o);
    assert_eq!(o.out, "123\n456\n0\n");
    // Without rlimits the service keeps what PID 1 has (here: the test's own limits).
    let o = run(&service(json!({"argv": sh("ulimit -Hn"), "uid": NOBODY})));
    ok(&o);
    let own = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
    assert_eq!(o.out.trim(), own.1.to_string());
}

#[test]
fn the_oom_score_adj_reaches_the_service() {
    // Positive: this host's own limits refuse a negative value even to root (the guest does
    // not; uml-runc/tests/spec.rs checks -300 in a VM, set before the uid change).
    let svc = service(json!({
        "argv": sh("cat /proc/self/oom_score_adj"), "uid": NOBODY, "gid": NOBODY,
        "oom_score_adj": 321,
    }));
    let o = run(&svc);
    ok(&o);
    assert_eq!(o.out, "321\n");
}

#[test]
fn no_new_privs_is_set_unless_the_contract_says_false() {
    let status = sh("grep NoNewPrivs /proc/self/status");
    let o = run(&service(json!({"argv": status.clone(), "uid": NOBODY})));
    ok(&o);
    assert_eq!(o.out.split_whitespace().last(), Some("1"), "{}", o.out);
    let o = run(&service(
        json!({"argv": status, "uid": NOBODY, "no_new_privileges": false}),
    ));
    ok(&o);
    assert_eq!(o.out.split_whitespace().last(), Some("0"), "{}", o.out);
}

#[test]
fn a_resource_limit_the_kernel_refuses_is_named() {
    // No one may raise RLIMIT_NOFILE above fs.nr_open, not even with CAP_SYS_RESOURCE.
    let svc = service(json!({
        "argv": ["/bin/true"],
        "rlimits": {"RLIMIT_NOFILE": {"soft": 1024, "hard": 1u64 << 40}},
    }));
    let err = spawn(&svc, &caps(&svc), &SpawnOptions::default()).expect_err("must fail");
    assert!(
        matches!(
            err,
            SpawnError::Exec {
                step: "prlimit64",
                errno: Errno::EPERM,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("service.rlimits [\"RLIMIT_NOFILE\"]"),
        "{err}"
    );
}

#[test]
fn a_failing_setup_step_is_named() {
    let svc = service(json!({"argv": ["/bin/true"], "workdir": "/does/not/exist"}));
    let err = spawn(&svc, &caps(&svc), &SpawnOptions::default()).expect_err("must fail");
    assert!(
        matches!(
            err,
            SpawnError::Exec {
                step: "chdir",
                errno: Errno::ENOENT,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("'/does/not/exist'"), "{err}");

    // chdir happens as the service user, so a directory only root may enter is refused.
    let dir = std::env::temp_dir().join(format!("guest-init-svc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let svc = service(json!({
        "argv": ["/bin/true"], "workdir": dir.to_str().unwrap(), "uid": NOBODY, "gid": NOBODY,
    }));
    let err = spawn(&svc, &caps(&svc), &SpawnOptions::default()).expect_err("must fail");
    let _ = std::fs::remove_dir(&dir);
    assert!(
        matches!(
            err,
            SpawnError::Exec {
                step: "chdir",
                errno: Errno::EACCES,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn many_spawns_in_parallel_threads() {
    let threads: Vec<_> = (0..8)
        .map(|t| {
            std::thread::spawn(move || {
                for i in 0..10 {
                    let o = run(&service(json!({
                        "argv": ["/bin/echo", format!("{t}-{i}")], "uid": NOBODY,
                    })));
                    ok(&o);
                    assert_eq!(o.out, format!("{t}-{i}\n"));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn tcp_readiness_probe() {
    use nix::sys::socket::{
        bind, getsockname, listen, socket, AddressFamily, Backlog, SockFlag, SockType, SockaddrIn,
    };
    // The port stays bound (not listening) while the probe must fail, so no other test or
    // process can take it in between: a dropped listener's port could be reused at once.
    let sock = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .unwrap();
    bind(sock.as_raw_fd(), &SockaddrIn::new(127, 0, 0, 1, 0)).unwrap();
    let bound: SockaddrIn = getsockname(sock.as_raw_fd()).unwrap();
    let addr = std::net::SocketAddr::V4(bound.into());
    assert!(!tcp_ready_within(addr, Duration::from_millis(100)));
    listen(&sock, Backlog::new(4).unwrap()).unwrap();
    assert!(tcp_ready(addr));
}
