//! A UML that panics while booting and then hangs instead of ending (Debian's kernel did so
//! for 1 VM of 100 started at once): the launcher must not wait for it for ever, but kill it
//! and boot again, and after the last attempt report a kernel crash (124).
//!
//! Such a hang cannot be provoked in a real kernel at will, so the "kernel" here is a static
//! program that does what the hung UML did: print the kernel's boot panic on its console and
//! never end. Everything else is real: the spec, the jail, the launcher's loop.
//!
//! Needs root (the jail), `busybox-static` (the image) and a C compiler with a static libc
//! (`build-essential`, installed by scripts/setup for the kernel build).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What the hung UML did: its boot panic on the console (fd 1), then nothing, for ever.
const FAKE_KERNEL: &str = r#"
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        const char v[] = "6.1.0-hung-after-panic\n";
        write(1, v, sizeof v - 1);
        return 0;
    }
    const char p[] = "Kernel panic - not syncing: VFS: Unable to mount root fs on "
                     "unknown-block(98,0)\n";
    write(1, p, sizeof p - 1);
    for (;;) pause();
}
"#;

/// What Debian's linux.uml 6.1 did on a CPU with AMX: init died at its first return to
/// userspace because the host refused UML's FP state, the kernel panicked, and UML hung.
const XSTATE_KERNEL: &str = r#"
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        const char v[] = "6.1.0-xstate-refused\n";
        write(1, v, sizeof v - 1);
        return 0;
    }
    const char p[] = "Run /sbin/init as init process\n"
                     "userspace - ptrace set fp regs failed, errno = 14\n"
                     "Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b\n";
    write(1, p, sizeof p - 1);
    for (;;) pause();
}
"#;

fn fake_kernel(dir: &Path, source: &str) -> PathBuf {
    let src = dir.join("hung.c");
    let exe = dir.join("hung-kernel");
    std::fs::write(&src, source).unwrap();
    let ok = Command::new("cc")
        .args(["-static", "-O2", "-o"])
        .arg(&exe)
        .arg(&src)
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "cc -static failed: install build-essential (scripts/setup does, for kernel/build)"
    );
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    exe
}

/// `host-launch run SPEC` to its end: its exit status and what it said.
fn run_to_end(state: &Path, spec: &Path) -> (std::process::ExitStatus, String) {
    let mut run = common::host_launch(state, &["run", spec.to_str().unwrap(), "-q"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Not a timing assertion: a guard so that the old behaviour (waiting for ever) fails the
    // test instead of hanging it. Three attempts of about 2 s each end far earlier.
    let limit = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(s) = run.try_wait().unwrap() {
            break s;
        }
        if Instant::now() >= limit {
            let _ = run.kill();
            let _ = run.wait();
            panic!("the launcher still waits for a UML that panicked and hung");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = run.wait_with_output().unwrap();
    let said =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    (status, said)
}

#[test]
fn a_kernel_whose_fp_state_the_host_refuses_is_named_not_waited_for() {
    common::require_root_and_busybox();
    let dir = common::temp_dir("xstate-refused");
    let image = common::build_image(dir.path(), "never served\n");
    let data = dir.join("data.img");
    common::data_disk(&data);
    let kernel = fake_kernel(dir.path(), XSTATE_KERNEL);
    let spec = dir.join("xstate.json");
    let text = serde_json::json!({
        "name": "xstate1", "image": image, "kernel": kernel, "memory_mib": 32,
        "disks": [{"file": data}],
    });
    std::fs::write(&spec, text.to_string()).unwrap();
    let state = dir.join("state");
    let (status, said) = run_to_end(&state, &spec);
    assert_eq!(status.code(), Some(124), "a kernel crash:\n{said}");
    assert!(said.contains("did not end; killing it"), "{said}");
    assert!(
        said.contains("cannot run a process on this host's CPU") && said.contains("kernel/build"),
        "the launcher names the cause and the fix:\n{said}"
    );
    // Init ran (and died): booting again would only fail again.
    assert!(
        !state.join("xstate1").join("console.boot1.log").exists(),
        "not booted again:\n{said}"
    );
}

#[test]
fn a_uml_hung_after_a_boot_panic_is_killed_and_booted_again() {
    common::require_root_and_busybox();
    let dir = common::temp_dir("hung-panic");
    let image = common::build_image(dir.path(), "never served\n");
    let data = dir.join("data.img");
    common::data_disk(&data);
    let kernel = fake_kernel(dir.path(), FAKE_KERNEL);
    let spec = dir.join("hung.json");
    let text = serde_json::json!({
        "name": "hung1",
        "image": image,
        "kernel": kernel,
        "memory_mib": 32,
        "disks": [{"file": data}],
    });
    std::fs::write(&spec, text.to_string()).unwrap();
    let state = dir.join("state");
    let (status, said) = run_to_end(&state, &spec);
    assert_eq!(
        status.code(),
        Some(124),
        "a kernel crash after the last attempt:\n{said}"
    );
    assert!(said.contains("did not end; killing it"), "{said}");
    for n in 1..host_launch::launch::run::BOOT_ATTEMPTS {
        let kept = state.join("hung1").join(format!("console.boot{n}.log"));
        let console = std::fs::read_to_string(&kept).unwrap_or_default();
        assert!(
            console.contains("Kernel panic - not syncing"),
            "boot {n} was repeated and its console kept: {}\n{said}",
            kept.display()
        );
    }
}
