/*
 * The floor of a guest system call under ptrace-mode UML, measured on the host: a child
 * makes getpid() calls under PTRACE_SYSEMU (the host does not run them, as for a guest)
 * and this process does per call what UML's userspace() does per trap in
 * arch/um/os-Linux/skas/process.c, timing each host call:
 *   PTRACE_SETREGS, PTRACE_SETREGSET NT_X86_XSTATE (the whole host area, patch 0005),
 *   PTRACE_SYSEMU, waitpid, PTRACE_GETREGS, PTRACE_GETREGSET NT_X86_XSTATE.
 * Prints ns per call of each and the whole loop's ns per trap, then the same loop without
 * the FP write (patch 0006) and without both FP calls. Pin it to one CPU
 * (`taskset -c 1`) to see the cost without a cross-CPU wake-up.
 *
 *   gcc -O2 -o /tmp/trap-floor kernel/tools/trap-floor.c && /tmp/trap-floor [N]
 */
#define _GNU_SOURCE
#include <elf.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000000000LL + t.tv_nsec;
}

enum { SETREGS, SETFP, SYSEMU, WAIT, GETREGS, GETFP, STEPS };
static const char *names[STEPS] = {
	"PTRACE_SETREGS", "PTRACE_SETREGSET xstate", "PTRACE_SYSEMU",
	"waitpid", "PTRACE_GETREGS", "PTRACE_GETREGSET xstate",
};

static void die(const char *what)
{
	perror(what);
	exit(1);
}

/* One run of n traps; fp: 0 no FP calls, 1 read only, 2 read and write. */
static long long run(pid_t pid, long n, int fp, long long *step, size_t xlen)
{
	static char xstate[64 * 1024] __attribute__((aligned(64)));
	struct user_regs_struct regs;
	struct iovec iov = { xstate, xlen };
	long long t0 = now_ns(), t, u;
	int status;

	if (ptrace(PTRACE_GETREGS, pid, 0, &regs) || ptrace(PTRACE_GETREGSET, pid, NT_X86_XSTATE, &iov))
		die("initial GETREGS");
	for (long i = 0; i < n; i++) {
		t = now_ns();
		if (ptrace(PTRACE_SETREGS, pid, 0, &regs))
			die("SETREGS");
		u = now_ns(); step[SETREGS] += u - t; t = u;
		if (fp == 2) {
			iov.iov_len = xlen;
			if (ptrace(PTRACE_SETREGSET, pid, NT_X86_XSTATE, &iov))
				die("SETREGSET");
		}
		u = now_ns(); step[SETFP] += u - t; t = u;
		if (ptrace(PTRACE_SYSEMU, pid, 0, 0))
			die("SYSEMU");
		u = now_ns(); step[SYSEMU] += u - t; t = u;
		if (waitpid(pid, &status, __WALL) < 0 || !WIFSTOPPED(status))
			die("waitpid");
		u = now_ns(); step[WAIT] += u - t; t = u;
		if (ptrace(PTRACE_GETREGS, pid, 0, &regs))
			die("GETREGS");
		u = now_ns(); step[GETREGS] += u - t; t = u;
		if (fp) {
			iov.iov_len = xlen;
			if (ptrace(PTRACE_GETREGSET, pid, NT_X86_XSTATE, &iov))
				die("GETREGSET");
		}
		u = now_ns(); step[GETFP] += u - t;
		/* As the guest kernel does: the call returns 42, the next one follows. */
		regs.rax = 42;
	}
	return now_ns() - t0;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 200000;
	static char probe[64 * 1024];
	struct iovec iov = { probe, sizeof(probe) };
	int status;
	pid_t pid = fork();

	if (pid < 0)
		die("fork");
	if (pid == 0) {
		ptrace(PTRACE_TRACEME, 0, 0, 0);
		raise(SIGSTOP);
		for (;;)
			syscall(SYS_getpid);
	}
	if (waitpid(pid, &status, __WALL) < 0)
		die("waitpid");
	if (ptrace(PTRACE_GETREGSET, pid, NT_X86_XSTATE, &iov))
		die("GETREGSET size");
	printf("trap-floor: %ld traps per run, host XSAVE area %zu bytes\n", n, iov.iov_len);
	const char *runs[3] = { "no FP calls", "FP read only (0006)", "FP read and write (before)" };
	for (int fp = 2; fp >= 0; fp--) {
		long long step[STEPS] = { 0 };
		long long total = run(pid, n, fp, step, iov.iov_len);

		printf("%-28s %6lld ns per trap:", runs[fp], total / n);
		for (int s = 0; s < STEPS; s++)
			if (step[s] / n > 30)
				printf(" %s %lld", names[s], step[s] / n);
		printf("\n");
	}
	kill(pid, SIGKILL);
	return 0;
}
