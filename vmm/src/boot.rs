//! Telling a kernel that failed while booting from one whose init ran.
//!
//! At 32 MiB (of which Debian's UML kernel image takes 11) a boot still fails now and then in
//! the kernel itself, about 1 in 50: at the peak of boot-time kernel threads and allocations
//! (the crypto self-test threads, sysfs nodes of the serial lines, btrfs's 3 MiB of zstd
//! workspaces), with the page allocator's watermark raised by a boost of one 4 MiB page
//! block, an allocation finds nothing to reclaim and the kernel panics ("System is deadlocked
//! on memory"), or a crypto self-test thread cannot start and the root file system then fails
//! to mount. The second kind was seen once in about 200 boots at 64 MiB too. Nothing of the
//! guest has run then — the root image is read-only and guest-init mounts the data disks
//! later — so booting again is safe. A panic that repeats (a broken image, say) ends the run.

/// How often a boot is tried when the kernel panics before init starts.
pub const BOOT_ATTEMPTS: u32 = 3;

/// How often a launcher reads the console while the kernel boots (until init's first status
/// event), to see a boot panic.
pub const PANIC_WATCH: std::time::Duration = std::time::Duration::from_millis(250);

/// How long a UML whose console shows a boot panic may take to end on its own before it is
/// killed (and booted again): a panicking UML aborts within milliseconds, but Debian's kernel
/// now and then stays hung after the panic (2 of about 120 boots of 100 VMs at once here),
/// and the launcher then waited for it forever.
pub const PANIC_EXIT_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// The kernel's panic message when it panicked while booting, before init ran: `None` if it
/// did not panic, or init was running (the panic then is about init, not the boot).
pub fn kernel_boot_panic(console: &str) -> Option<&str> {
    let line = console
        .lines()
        .find(|l| l.contains("Kernel panic - not syncing"))?;
    if line.contains("Attempted to kill init") {
        return None;
    }
    Some(line.trim())
}

/// What a UML kernel prints when the host rejects the floating-point state it hands back to a
/// process: UML before Linux 6.13 writes a fixed 2696-byte XSAVE area, and a host whose own is
/// larger (AMX makes it 11008 bytes) takes only a whole one. No process of the guest can run:
/// init dies at its first system call's return.
pub const XSTATE_REFUSED: &str = "ptrace set fp regs failed, errno = 14";

/// The operator's explanation of [`XSTATE_REFUSED`].
pub const XSTATE_HELP: &str = "this UML kernel cannot run a process on this host's CPU: it \
    writes a smaller floating-point state (XSAVE area) than the CPU's, which the host refuses \
    (\"ptrace set fp regs failed, errno = 14\"; e.g. a CPU with AMX, and a UML before 6.13 \
    that vmm's ptrace wrapper cannot reach because it is statically linked); use the \
    project's kernel (kernel/build: its patch 0005 fixes this) or Debian's linux.uml";

/// Why the kernel panicked, if the console shows a panic: the host incompatibility that made
/// init die ([`XSTATE_HELP`]), or the panic line.
pub fn kernel_panic(console: &str) -> Option<String> {
    let line = console
        .lines()
        .find(|l| l.contains("Kernel panic - not syncing"))?;
    if console.contains(XSTATE_REFUSED) {
        return Some(XSTATE_HELP.to_string());
    }
    Some(line.trim().to_string())
}

/// Whether boot number `attempt` (from 1) should be followed by another, and why: its kernel
/// panicked before init ran (`init_ran`: the guest sent anything on the status channel or
/// printed a guest-init line), and attempts are left. The one policy host-launch and the
/// test harness both follow.
pub fn retry_reason(attempt: u32, console: &str, init_ran: bool) -> Option<&str> {
    if attempt >= BOOT_ATTEMPTS || init_ran {
        return None;
    }
    kernel_boot_panic(console)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_that_refuses_the_kernels_fp_state_is_named_and_not_retried() {
        // What Debian's linux.uml 6.1 printed on a host with AMX.
        let console = "Run /sbin/init as init process\nuserspace - ptrace set fp regs failed, \
                       errno = 14\nKernel panic - not syncing: Attempted to kill init! \
                       exitcode=0x0000000b\nCPU: 0 PID: 1 Comm: init\n";
        let why = kernel_panic(console).unwrap();
        assert!(
            why.contains("cannot run a process on this host's CPU"),
            "{why}"
        );
        assert!(why.contains("kernel/build"), "{why}");
        assert_eq!(
            retry_reason(1, console, false),
            None,
            "booting again cannot help"
        );
    }

    #[test]
    fn boot_panics_are_recognized_but_not_init_dying() {
        let oom = "swapper invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL)\nOut of memory and no \
                   killable processes...\nKernel panic - not syncing: System is deadlocked on memory\n";
        assert_eq!(
            kernel_boot_panic(oom),
            Some("Kernel panic - not syncing: System is deadlocked on memory")
        );
        let root = "zswap: pool creation failed\nKernel panic - not syncing: VFS: Unable to mount \
                    root fs on unknown-block(98,0)\nCPU: 0 PID: 1 Comm: swapper\n";
        assert!(kernel_boot_panic(root)
            .unwrap()
            .ends_with("unknown-block(98,0)"));
        let init = "Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100\n";
        assert_eq!(kernel_boot_panic(init), None);
        assert_eq!(kernel_boot_panic("guest-init: ready\n"), None);
        assert!(retry_reason(1, oom, false).is_some());
        assert_eq!(
            kernel_panic(init).as_deref(),
            Some("Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100")
        );
        assert_eq!(kernel_panic("guest-init: ready\n"), None);
        assert_eq!(
            retry_reason(1, oom, true),
            None,
            "init ran: not a boot failure"
        );
        assert_eq!(
            retry_reason(BOOT_ATTEMPTS, oom, false),
            None,
            "no attempts left"
        );
    }
}
