/*
 * seccomp_int80.c: probes the 32-bit system call entry points for
 * TestSeccompLoadThread. The sandbox's filter must deny through int 0x80
 * (i386) and the x32 ABI what it denies through the 64-bit syscall
 * instruction, or a sandboxed program would simply switch entry points.
 *
 * Built two ways by the test: as an x86-64 program that issues int 0x80
 * itself (plain gcc, -no-pie so its static data has 32-bit addresses), and
 * with an i386 compiler (gcc-i686-linux-gnu, or gcc-multilib) as a static
 * i386 program. It prints one line per probe, "name result", where result
 * is the raw kernel return value (a negative errno on failure), and expects
 * fd 0 to be its controlling terminal so that an unfiltered TIOCSTI would
 * succeed.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <unistd.h>

/* i386 system call numbers (arch/x86/entry/syscalls/syscall_32.tbl). */
#define I386_GETPID 20
#define I386_IOCTL 54
#define I386_KEYCTL 288

/* x32 ioctl: its own number (514) plus the x32 bit (syscall_64.tbl). */
#define X32_IOCTL (0x40000000 | 514)

/* Static, so a non-PIE build places it below 4 GiB, where the 32-bit ABI
 * can address it. */
static char ch = '\n';

/* int80 issues an i386 system call through int 0x80 and returns the raw
 * result. From a 64-bit process the kernel treats it exactly as a 32-bit
 * program's call: seccomp sees AUDIT_ARCH_I386. */
static long int80(long nr, long a, long b, long c)
{
	long ret;
#ifdef __x86_64__
	/* r8-r11 are not preserved by every kernel's int 0x80 path. */
	__asm__ volatile("int $0x80"
			 : "=a"(ret)
			 : "a"(nr), "b"(a), "c"(b), "d"(c)
			 : "memory", "r8", "r9", "r10", "r11");
#else
	__asm__ volatile("int $0x80"
			 : "=a"(ret)
			 : "a"(nr), "b"(a), "c"(b), "d"(c)
			 : "memory");
#endif
	return ret;
}

int main(void)
{
	if ((uintptr_t)&ch > 0xffffffffu) {
		fprintf(stderr, "seccomp_int80: static data above 4 GiB; build with -no-pie\n");
		return 2;
	}
	long pid = int80(I386_GETPID, 0, 0, 0);
	printf("getpid %ld\n", pid > 0 ? 0L : pid); /* 0: it worked */
	/* An unknown keyctl operation: EOPNOTSUPP unless the filter denies it. */
	printf("keyctl %ld\n", int80(I386_KEYCTL, 9999, 0, 0));
	printf("ioctl_tiocsti %ld\n", int80(I386_IOCTL, 0, TIOCSTI, (long)(uintptr_t)&ch));
#ifdef __x86_64__
	{
		/* This kernel may lack the x32 ABI (ENOSYS then), but seccomp
		 * runs before that check, so the filter's answer shows. */
		long r = syscall(X32_IOCTL, 0, TIOCSTI, &ch);
		printf("x32_ioctl_tiocsti %ld\n", r < 0 ? -(long)errno : r);
	}
#endif
	return 0;
}
