/*
 * Preloaded into a dynamically linked UML kernel (Debian's linux.uml 6.1) by the vmm crate.
 *
 * UML before Linux 6.13 hands a process's floating-point state back to the host with
 * PTRACE_SETREGSET/NT_X86_XSTATE in a fixed 2696-byte buffer. The host takes only a buffer of
 * its whole XSAVE size (11008 bytes on a CPU with AMX) and answers EFAULT otherwise, so no
 * guest process can run ("ptrace set fp regs failed, errno = 14"). This wrapper does what the
 * project's kernel does in kernel/patches/0005: on that EFAULT it learns the host's size once
 * (how much of a large buffer PTRACE_GETREGSET fills) and from then on writes the kernel's
 * bytes through a buffer of that size, whose tail (AMX state, which the header's xstate_bv
 * marks unused: no guest process can enable it) stays as the probe read it. Every other call
 * goes to libc's ptrace unchanged, and on a host whose XSAVE area fits nothing changes.
 * UML calls ptrace from one thread only, so the one buffer needs no lock.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/types.h>
#include <sys/uio.h>

typedef long (*ptrace_fn)(int, pid_t, void *, void *);

/* Larger than any XSAVE area an x86 CPU has (11008 with AMX). */
#define PROBE_BYTES (64 * 1024)

static ptrace_fn real_ptrace;
static void *whole;
static size_t whole_len;

static long call_real(int req, pid_t pid, void *addr, void *data)
{
	if (!real_ptrace)
		real_ptrace = (ptrace_fn)dlsym(RTLD_NEXT, "ptrace");
	if (!real_ptrace) {
		errno = ENOSYS;
		return -1;
	}
	return real_ptrace(req, pid, addr, data);
}

/*
 * Learns the host's XSAVE size from `pid`'s state and keeps that state as `whole`: 1, or 0
 * when the size cannot be read or is not larger than `have` (then nothing is kept).
 */
static int learn_whole(pid_t pid, size_t have)
{
	struct iovec probe;
	void *buf = malloc(PROBE_BYTES);

	if (!buf)
		return 0;
	probe.iov_base = buf;
	probe.iov_len = PROBE_BYTES;
	if (call_real(PTRACE_GETREGSET, pid, (void *)NT_X86_XSTATE, &probe) != 0 ||
	    probe.iov_len <= have) {
		free(buf);
		return 0;
	}
	whole = buf;
	whole_len = probe.iov_len;
	return 1;
}

static long set_through_whole(pid_t pid, const struct iovec *iov)
{
	struct iovec w = { .iov_base = whole, .iov_len = whole_len };

	memcpy(whole, iov->iov_base, iov->iov_len);
	return call_real(PTRACE_SETREGSET, pid, (void *)NT_X86_XSTATE, &w);
}

long ptrace(enum __ptrace_request request, ...)
{
	va_list ap;
	pid_t pid;
	void *addr, *data;
	const struct iovec *iov;
	long r;
	int saved;

	va_start(ap, request);
	pid = va_arg(ap, pid_t);
	addr = va_arg(ap, void *);
	data = va_arg(ap, void *);
	va_end(ap);

	if (request != PTRACE_SETREGSET || (long)addr != NT_X86_XSTATE || !data)
		return call_real(request, pid, addr, data);
	iov = data;
	if (whole && iov->iov_len < whole_len)
		return set_through_whole(pid, iov);
	r = call_real(request, pid, addr, data);
	if (r == 0 || errno != EFAULT || whole)
		return r;
	saved = errno;
	if (!learn_whole(pid, iov->iov_len)) {
		errno = saved;
		return r;
	}
	return set_through_whole(pid, iov);
}
