//! A hostile guest against the VM boundary. The attacker is a busybox image whose service runs
//! as guest root with every capability, driven by a script delivered as a contract file, in a
//! VM jailed exactly as host-launch jails one (the harness starts VMs through `vmm`).
//!
//! - it mounts hostfs (Debian's UML kernel has it built in) and must see only its jail, read
//!   nothing of the host or of a running neighbour, and write nothing;
//! - acting as its own escaped UML process (its uid), it must not signal or ptrace the
//!   neighbour's UML, and inside its PID namespace it cannot even see it;
//! - a fork bomb and a memory hog inside it leave the host and the neighbour responsive.

use contract::Contract;
use e2e::{NetNs, RootFs, RunningVm, TempDir, Vm};
use serde_json::{json, Value};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const BOOT: Duration = Duration::from_secs(60);

fn image(dir: &TempDir) -> PathBuf {
    let image = dir.join("root.img");
    RootFs::new()
        .busybox(&[
            "sh", "mount", "ls", "cat", "echo", "mkdir", "tr", "sleep", "head", "httpd", "true",
            "mknod", "yes",
        ])
        .bytes("/www/index.html", b"neighbour\n".to_vec(), 0o644)
        .dir("/data", 0o755)
        .build(&image)
        .unwrap_or_else(|e| panic!("root image: {e}"));
    image
}

/// Guest root with every capability the contract can name.
fn root_service(argv: Value) -> Value {
    let caps: Vec<&str> = contract::names::CAPABILITIES.to_vec();
    json!({"name": "attacker", "argv": argv, "uid": 0, "gid": 0, "capabilities": caps,
           "restart": {"policy": "never"}})
}

fn contract(v: Value) -> Contract {
    contract::parse_json(v.to_string().as_bytes()).unwrap_or_else(|e| panic!("{e}\n{v:#}"))
}

/// The attack: hostfs onto the host's root, then reads and writes of host paths.
fn attack_script(reads: &[&Path], writes: &[&Path]) -> String {
    let mut s = String::from(
        "mkdir -p /run/h\n\
         if mount -t hostfs none /run/h -o /; then echo 'ATTACK hostfs=mounted'; \
         else echo 'ATTACK hostfs=refused'; rmdir /run/h; fi\n\
         echo \"ATTACK root=$(ls -a /run/h | tr '\\n' ' ')\"\n",
    );
    for p in reads {
        let p = p.display();
        s.push_str(&format!(
            "if cat /run/h{p} >/dev/null 2>&1 || ls /run/h{p} >/dev/null 2>&1; then \
             echo 'ATTACK read {p}=yes'; else echo 'ATTACK read {p}=no'; fi\n"
        ));
    }
    for p in writes {
        let p = p.display();
        s.push_str(&format!(
            "if echo pwned > /run/h{p}/pwned 2>/dev/null; then echo 'ATTACK write {p}=yes'; \
             else echo 'ATTACK write {p}=no'; fi\n"
        ));
    }
    s.push_str(
        "if [ -e /dev/tty1 ]; then echo 'ATTACK tty1=present'; else echo 'ATTACK tty1=gone'; fi\n",
    );
    s.push_str("echo 'ATTACK done'\nsleep 600\n");
    s
}

fn attacker(script: &str) -> Contract {
    contract(json!({
        "version": 1,
        "hostname": "attacker",
        "files": [{"path": "/run/attack.sh", "content": script, "mode": "0755"}],
        "service": root_service(json!(["/bin/sh", "/run/attack.sh"])),
    }))
}

fn attack_lines(vm: &RunningVm) -> Vec<String> {
    vm.console()
        .lines()
        .filter_map(|l| l.split_once("ATTACK ").map(|(_, r)| r.trim().to_string()))
        .collect()
}

/// A neighbour: a VM with its own data disk and config device, idling.
fn neighbour(dir: &TempDir, image: &Path) -> (RunningVm, PathBuf) {
    let disk = dir.join("neighbour-data.img");
    e2e::host::mkfs_ext4(&disk, "8M");
    let c = contract(json!({
        "version": 1,
        "hostname": "neighbour",
        "files": [{"path": "/run/secret", "content": "neighbour-secret-8d1f"}],
        "service": {"name": "idle", "argv": ["/bin/sleep", "600"]},
    }));
    let vm = Vm::new(image)
        .disk(&disk, false)
        .contract_device(&c)
        .spawn()
        .unwrap_or_else(|e| panic!("neighbour: {e}"));
    vm.wait_for_event("ready", BOOT)
        .unwrap_or_else(|e| panic!("neighbour: {e}"));
    (vm, disk)
}

/// Runs `program args` as `uid` (no capabilities, like an escaped UML process of that VM),
/// optionally inside the PID namespace of process `ns_of`; its exit status and output.
fn as_vm_uid(uid: u32, ns_of: Option<u32>, program: &str, args: &[String]) -> (bool, String) {
    let mut cmd = match ns_of {
        Some(pid) => {
            let mut c = Command::new("nsenter");
            c.arg(format!("--target={pid}"))
                .arg("--pid")
                .arg(format!("--setuid={uid}"))
                .arg(format!("--setgid={uid}"))
                .arg("--")
                .arg(program);
            c
        }
        None => {
            let mut c = Command::new(program);
            e2e::host::as_uid(&mut c, uid);
            c
        }
    };
    let out = cmd.args(args).output().expect("running a probe");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn a_root_guest_with_every_capability_reaches_nothing_of_the_host_or_its_neighbour() {
    let dir = TempDir::new("isolation").unwrap();
    let image = image(&dir);
    let secret = dir.join("host-secret.txt");
    std::fs::write(&secret, "host-secret-5c2a").unwrap();
    let n_image = dir.join("neighbour-root.img");
    std::fs::copy(&image, &n_image).unwrap();
    let (neighbour, n_disk) = neighbour(&dir, &n_image);
    let n_pid = neighbour.pid().expect("neighbour pid");
    let n_config = neighbour.config_device_path();
    assert!(n_config.is_file());

    let reads: Vec<&Path> = vec![
        Path::new("/etc/shadow"),
        Path::new("/etc/hostname"),
        Path::new("/root"),
        &secret,
        &n_disk,
        &n_config,
        &n_image,
        &image,
    ];
    let writes: Vec<&Path> = vec![Path::new("/"), dir.path(), Path::new("/dev")];
    let script = attack_script(&reads, &writes);
    let vm = Vm::new(&image)
        .contract_device(&attacker(&script))
        .spawn()
        .unwrap_or_else(|e| panic!("attacker: {e}"));
    vm.wait_for_console("ATTACK done", BOOT)
        .unwrap_or_else(|e| panic!("{e}"));
    let lines = attack_lines(&vm);
    let report = format!("{lines:#?}\n--- console ---\n{}", vm.console());

    // Debian's kernel has hostfs: the mount works, and shows the jail, nothing else.
    if e2e::kernel_path() == Path::new(e2e::DEFAULT_KERNEL) {
        assert!(
            lines.iter().any(|l| l == "hostfs=mounted"),
            "Debian's kernel should mount hostfs (the attack would not be tested): {report}"
        );
    }
    let root = lines
        .iter()
        .find_map(|l| l.strip_prefix("root="))
        .unwrap_or_default();
    for host_dir in [
        "etc", "root", "home", "var", "proc", "sys", "boot", "bin", "sbin", "run",
    ] {
        assert!(
            !root.split_whitespace().any(|e| e == host_dir),
            "the guest sees the host's /{host_dir} through hostfs: {report}"
        );
    }
    for p in &reads {
        let want = format!("read {}=no", p.display());
        let own_image = *p == image.as_path();
        if own_image {
            continue; // its own image is in its jail (read-only), as UML needs it
        }
        assert!(lines.contains(&want), "{want} missing: {report}");
    }
    assert!(
        lines.iter().any(|l| l == "tty1=gone"),
        "the status channel's node is still there for the service: {report}"
    );
    for p in &writes {
        let want = format!("write {}=no", p.display());
        assert!(lines.contains(&want), "{want} missing: {report}");
    }

    // As an escaped UML process of the attacker (its uid, no capabilities).
    let uid = vm.uid();
    assert_ne!(uid, neighbour.uid(), "two VMs share a uid");
    let (ok, out) = as_vm_uid(uid, None, "kill", &["-0".into(), n_pid.to_string()]);
    assert!(
        !ok,
        "the attacker's uid may signal the neighbour's UML: {out}"
    );
    assert!(out.contains("Operation not permitted"), "{out}");
    let environ = format!("/proc/{n_pid}/environ");
    let (ok, out) = as_vm_uid(uid, None, "cat", std::slice::from_ref(&environ));
    assert!(
        !ok,
        "the attacker's uid may read (ptrace-read) the neighbour's UML: {out}"
    );
    for f in [&n_disk, &n_config] {
        let (ok, out) = as_vm_uid(uid, None, "cat", &[f.display().to_string()]);
        assert!(!ok, "the attacker's uid may read {}: {out}", f.display());
    }
    let attach = ptrace_attach_as(uid, n_pid);
    assert_eq!(
        attach.as_ref().map_err(|e| e.raw_os_error()),
        Err(Some(libc::EPERM)),
        "ptrace attach of the neighbour's UML as the attacker's uid"
    );
    assert!(
        !ok,
        "the attacker's uid may read the neighbour's disk: {out}"
    );
    // Inside the attacker's PID namespace the neighbour does not even exist.
    let a_pid = vm.pid().expect("attacker pid");
    let (ok, out) = as_vm_uid(uid, Some(a_pid), "kill", &["-0".into(), n_pid.to_string()]);
    assert!(!ok && out.contains("No such process"), "{out}");

    drop(vm);
    // Nothing was written on the host.
    let pwned: Vec<_> = walk(dir.path())
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n == "pwned"))
        .collect();
    assert!(pwned.is_empty(), "files written on the host: {pwned:?}");
    assert!(!Path::new("/pwned").exists());
    let outcome = neighbour_stop(neighbour);
    assert!(outcome, "the neighbour did not power off cleanly");
}

/// PTRACE_ATTACH to `pid` from a process running as `uid` (no capabilities): the spawn
/// fails with the attach's error, or succeeds if the attach did.
fn ptrace_attach_as(uid: u32, pid: u32) -> std::io::Result<()> {
    let mut cmd = Command::new("true");
    // SAFETY: between fork and exec only setgroups/setgid/setuid and ptrace are called.
    unsafe {
        cmd.pre_exec(move || {
            e2e::host::become_uid(uid)?;
            let null = std::ptr::null_mut::<libc::c_void>();
            if libc::ptrace(libc::PTRACE_ATTACH, pid as libc::pid_t, null, null) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.status().map(|_| ())
}

fn neighbour_stop(vm: RunningVm) -> bool {
    let _ = vm.mconsole("cad");
    vm.wait(Duration::from_secs(60))
        .map(|o| o.powered_off_cleanly())
        .unwrap_or(false)
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            }
            out.push(p);
        }
    }
    out
}

/// How long one HTTP GET of the neighbour takes, or `None` if it fails.
fn get(ns: &NetNs, url: &str) -> Option<Duration> {
    let t = Instant::now();
    let out = ns.output("curl", &["-sS", "--max-time", "5", url]).ok()?;
    (out.status.success() && String::from_utf8_lossy(&out.stdout).contains("neighbour"))
        .then(|| t.elapsed())
}

#[test]
fn a_fork_bomb_and_a_memory_hog_leave_the_host_and_the_neighbour_responsive() {
    let dir = TempDir::new("bomb").unwrap();
    let image = image(&dir);
    let ns = NetNs::with_tap("tap0").expect("test network");
    let web = contract(json!({
        "version": 1,
        "hostname": "neighbour",
        "network": {"interfaces": [{"name": "vec0", "addresses": ["192.0.2.10/24"]}]},
        "service": {"name": "web", "argv": ["/bin/httpd", "-f", "-p", "8080", "-h", "/www"],
                    "readiness": {"type": "tcp", "port": 8080}},
    }));
    let neighbour = Vm::new(&image)
        .network(&ns)
        .contract_cmdline(&web)
        .spawn()
        .unwrap_or_else(|e| panic!("neighbour: {e}"));
    neighbour
        .wait_for_event("ready", BOOT)
        .unwrap_or_else(|e| panic!("{e}"));
    let url = "http://192.0.2.10:8080/index.html";
    assert!(get(&ns, url).is_some(), "the neighbour does not answer");

    // Both at once: a shell fork bomb, and a process eating all the guest's memory.
    let bomb = "b() { b | b & }; b &\n\
                head -c 1000000000 /dev/zero | tr '\\0' a | (x=$(cat); echo $x) &\n\
                echo 'ATTACK started'\nsleep 600\n";
    let attacker = Vm::new(&image)
        .memory_mib(48)
        .contract_device(&contract(json!({
            "version": 1,
            "hostname": "bomb",
            "files": [{"path": "/run/bomb.sh", "content": bomb, "mode": "0755"}],
            "service": root_service(json!(["/bin/sh", "/run/bomb.sh"])),
        })))
        .spawn()
        .unwrap_or_else(|e| panic!("attacker: {e}"));
    attacker
        .wait_for_console("ATTACK started", BOOT)
        .unwrap_or_else(|e| panic!("{e}"));
    let uid = attacker.uid();
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut worst = Duration::ZERO;
    let mut peak_procs = 0;
    while Instant::now() < deadline {
        let took = get(&ns, url).unwrap_or_else(|| {
            panic!(
                "the neighbour stopped answering during the attack\n{}",
                attacker.console()
            )
        });
        worst = worst.max(took);
        peak_procs = peak_procs.max(processes_of(uid));
        // The host itself: a new process starts and ends at once.
        let t = Instant::now();
        assert!(Command::new("true").status().unwrap().success());
        assert!(t.elapsed() < Duration::from_secs(2), "the host is sluggish");
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!(
        "neighbour's slowest answer during the attack: {worst:?}; attacker's host processes at \
         most {peak_procs}"
    );
    assert!(worst < Duration::from_secs(3), "slowest answer {worst:?}");
    assert!(
        peak_procs as u64 <= vmm::jail::DEFAULT_PROCESSES,
        "{peak_procs} host processes for one VM"
    );
    drop(attacker);
    assert_eq!(processes_of(uid), 0, "the attacker's processes outlived it");
    assert!(neighbour_stop(neighbour));
}

/// Host processes running as `uid`.
fn processes_of(uid: u32) -> usize {
    use std::os::unix::fs::MetadataExt;
    std::fs::read_dir("/proc")
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
                .filter(|e| e.metadata().is_ok_and(|m| m.uid() == uid))
                .count()
        })
        .unwrap_or(0)
}
