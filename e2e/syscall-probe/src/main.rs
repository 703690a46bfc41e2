//! Times guest system calls from inside a VM, one line per figure on standard output:
//! `probe OP ns_per_op=N iterations=M`. The operations are those a trap into the UML kernel
//! costs most on: `getpid` (the cheapest system call), `pipe_rw` (a 1-byte write then a
//! 1-byte read of a pipe, per call), `ctx_switch` (two processes pass a byte back and forth
//! over two pipes: per switch, its two system calls included), `thread_switch` (the same
//! between two threads of one process), `page_fault` (first touch of a fresh anonymous page).
//! The switch runs also check that each side's FP register survives the other's
//! (`fp_kept=yes`), since a cheaper trap must still swap FP state between guest processes
//! and threads.
//!
//! `syscall-probe [SCALE]`: SCALE multiplies the iteration counts (default 1). Runs on the
//! host too, as the benchmark's baseline.

use std::time::Instant;

fn main() {
    let scale: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
        .max(1);
    report("getpid", 20_000 * scale, getpid);
    report("pipe_rw", 10_000 * scale, pipe_rw);
    report("ctx_switch", 5_000 * scale, ctx_switch);
    report("thread_switch", 5_000 * scale, thread_switch);
    report("page_fault", 4_000 * scale, page_fault);
}

/// Runs `op(n)`, which returns how many operations it did, and prints the time per one.
fn report(name: &str, n: u64, op: fn(u64) -> Result<(u64, String), String>) {
    let t = Instant::now();
    match op(n) {
        Ok((ops, extra)) => {
            let ns = t.elapsed().as_nanos() as u64 / ops.max(1);
            println!("probe {name} ns_per_op={ns} iterations={ops}{extra}");
        }
        Err(e) => println!("probe {name} failed: {e}"),
    }
}

fn errno(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

fn getpid(n: u64) -> Result<(u64, String), String> {
    for _ in 0..n {
        // SAFETY: getpid has no arguments and no preconditions; the raw system call, as
        // a libc may cache the pid.
        unsafe { libc::syscall(libc::SYS_getpid) };
    }
    Ok((n, String::new()))
}

fn pipe() -> Result<[libc::c_int; 2], String> {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid array of two ints for pipe(2) to fill.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(errno("pipe"));
    }
    Ok(fds)
}

fn write1(fd: libc::c_int, b: u8) -> bool {
    // SAFETY: writes one byte from a live local.
    unsafe { libc::write(fd, (&b as *const u8).cast(), 1) == 1 }
}

fn read1(fd: libc::c_int) -> Option<u8> {
    let mut b = 0u8;
    // SAFETY: reads one byte into a live local.
    (unsafe { libc::read(fd, (&mut b as *mut u8).cast(), 1) } == 1).then_some(b)
}

fn pipe_rw(n: u64) -> Result<(u64, String), String> {
    let [r, w] = pipe()?;
    for _ in 0..n {
        if !write1(w, 1) || read1(r).is_none() {
            return Err(errno("pipe write/read"));
        }
    }
    close(&[r, w]);
    Ok((2 * n, String::new()))
}

fn close(fds: &[libc::c_int]) {
    for &fd in fds {
        // SAFETY: closes descriptors this program opened and uses no more.
        unsafe { libc::close(fd) };
    }
}

/// A 1-byte read or write (`nr`) whose caller holds `mark` in the FP register xmm7 across
/// the system call, which may block and switch to another process or thread; returns the
/// call's result and what xmm7 held after it. The system call instruction itself keeps xmm7,
/// so a different value means the kernel gave this thread another's FP state (or lost its
/// own). Plain Rust would not do: every xmm register is caller-saved, so a compiler spills
/// FP values to memory around a call.
fn fp_kept_call(nr: libc::c_long, fd: libc::c_int, b: *mut u8, mark: u64) -> (isize, u64) {
    let ret: isize;
    let after: u64;
    // SAFETY: a raw read(2)/write(2) of one byte at `b`, a live byte of the caller; the
    // syscall instruction clobbers rcx and r11 (declared), xmm7 is declared as clobbered.
    unsafe {
        std::arch::asm!(
            "movq xmm7, {mark}",
            "syscall",
            "movq {after}, xmm7",
            mark = in(reg) mark,
            after = lateout(reg) after,
            inlateout("rax") nr as isize => ret,
            in("rdi") fd as isize,
            in("rsi") b,
            in("rdx") 1usize,
            lateout("rcx") _,
            lateout("r11") _,
            out("xmm7") _,
            options(nostack),
        );
    }
    (ret, after)
}

/// One side of a ping-pong: `n` times read a byte from `rx` and write one to `tx` (or the
/// other way round when `first`), holding `mark` in xmm7 across every call; whether the mark
/// survived every one.
fn ping_pong(
    n: u64,
    rx: libc::c_int,
    tx: libc::c_int,
    first: bool,
    mark: u64,
) -> Result<bool, String> {
    let mut kept = true;
    let mut b = 1u8;
    for _ in 0..n {
        let calls = if first {
            [(libc::SYS_write, tx), (libc::SYS_read, rx)]
        } else {
            [(libc::SYS_read, rx), (libc::SYS_write, tx)]
        };
        for (nr, fd) in calls {
            let (ret, after) = fp_kept_call(nr, fd, &mut b, mark);
            if ret != 1 {
                return Err(format!("ping-pong: system call {nr} returned {ret}"));
            }
            kept &= after == mark;
        }
    }
    Ok(kept)
}

/// Two processes pass a byte back and forth over two pipes, each with its own FP mark.
fn ctx_switch(n: u64) -> Result<(u64, String), String> {
    let [a_r, a_w] = pipe()?;
    let [b_r, b_w] = pipe()?;
    // SAFETY: fork in a single-threaded program; the child only uses its own stack and
    // async-signal-safe calls (read, write, _exit).
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(errno("fork"));
    }
    if pid == 0 {
        let ok = ping_pong(n, a_r, b_w, false, 0x4141_4141_4141_4141) == Ok(true);
        // SAFETY: ends the child without running the parent's exit handlers.
        unsafe { libc::_exit(if ok { 0 } else { 3 }) };
    }
    let ours = ping_pong(n, b_r, a_w, true, 0x1234_5678_9abc_def0)?;
    let mut status = 0;
    // SAFETY: waits for the child this function forked; status is a live local.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    close(&[a_r, a_w, b_r, b_w]);
    let child_ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    let kept = if ours && child_ok { "yes" } else { "NO" };
    // Two switches per round trip.
    Ok((2 * n, format!(" fp_kept={kept}")))
}

/// The same between two threads of one process: under UML they share one host process, so
/// their FP state is swapped inside it, not by the host's scheduler.
fn thread_switch(n: u64) -> Result<(u64, String), String> {
    let [a_r, a_w] = pipe()?;
    let [b_r, b_w] = pipe()?;
    let other = std::thread::spawn(move || ping_pong(n, a_r, b_w, false, 0x5151_5151_5151_5151));
    let ours = ping_pong(n, b_r, a_w, true, 0x0fed_cba9_8765_4321)?;
    let theirs = other
        .join()
        .map_err(|_| "the other thread panicked".to_string())??;
    close(&[a_r, a_w, b_r, b_w]);
    let kept = if ours && theirs { "yes" } else { "NO" };
    Ok((2 * n, format!(" fp_kept={kept}")))
}

fn page_fault(n: u64) -> Result<(u64, String), String> {
    // In mappings of 1024 pages (4 MiB), so that a large SCALE fits a small VM.
    let mut left = n;
    while left > 0 {
        let pages = left.min(1024);
        fault_in(pages as usize)?;
        left -= pages;
    }
    Ok((n, String::new()))
}

/// Maps `pages` fresh anonymous pages, writes a byte to each, unmaps them.
fn fault_in(pages: usize) -> Result<(), String> {
    let len = pages * 4096;
    // SAFETY: a fresh private anonymous mapping; checked for MAP_FAILED below.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(errno("mmap"));
    }
    let base = p.cast::<u8>();
    for i in 0..pages {
        // SAFETY: i * 4096 < len, inside the mapping made above.
        unsafe { base.add(i * 4096).write_volatile(1) };
    }
    // SAFETY: unmaps exactly the mapping made above.
    unsafe { libc::munmap(p, len) };
    Ok(())
}
