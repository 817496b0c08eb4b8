#define _GNU_SOURCE
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* A fake init: starts a child that must die at boot, optionally forbids
 * itself execve (so that the takeover's execve fails), then reaps forever
 * in waitid like systemd, reporting each child it reaps. */
static void deny_exec(void) {
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_execve, 2, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_execveat, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
	};
	struct sock_fprog p = {sizeof f / sizeof f[0], f};
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &p)) {
		perror("seccomp");
		exit(1);
	}
}

static volatile sig_atomic_t stop;
static void on_usr1(int sig) { (void)sig; stop = 1; }

/* spin runs in user space until SIGUSR1: a target stopped outside any
 * system call, where the takeover must write its own syscall instruction. */
static void spin(void) {
	volatile unsigned long n = 0;
	signal(SIGUSR1, on_usr1);
	printf("fakeinit spinning\n");
	fflush(stdout);
	while (!stop)
		n++;
	printf("fakeinit spin ended\n");
	fflush(stdout);
}

/* nap sleeps in nanosleep (a call the kernel restarts through
 * restart_syscall) until SIGUSR1, instead of reaping. */
static void nap(void) {
	signal(SIGUSR1, on_usr1);
	printf("fakeinit sleeping\n");
	fflush(stdout);
	while (!stop) {
		struct timespec ts = {1000, 0};
		nanosleep(&ts, NULL);
	}
	printf("fakeinit sleep ended\n");
	fflush(stdout);
}

int main(int argc, char **argv) {
	/* As systemd does, block signals (and ignore one): the new system must
	 * not inherit either. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGUSR2);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGHUP, SIG_IGN);
	signal(SIGRTMIN + 3, SIG_IGN);
	pid_t c = fork();
	if (c == 0) {
		sigprocmask(SIG_UNBLOCK, &set, NULL);
		signal(SIGHUP, SIG_DFL);
		execl("/bin/sleep", "sleep", "1000", (char *)0);
		_exit(127);
	}
	if (argc > 1 && strncmp(argv[1], "deny-exec", 9) == 0)
		deny_exec();
	printf("fakeinit ready pid=%d child=%d\n", getpid(), c);
	fflush(stdout);
	if (argc > 1 && strcmp(argv[1], "deny-exec-spin") == 0)
		spin();
	if (argc > 1 && (strcmp(argv[1], "sleep") == 0 || strcmp(argv[1], "deny-exec-sleep") == 0))
		nap();
	for (;;) {
		siginfo_t si;
		memset(&si, 0, sizeof si);
		if (waitid(P_ALL, 0, &si, WEXITED) == 0) {
			printf("fakeinit reaped %d\n", si.si_pid);
			fflush(stdout);
		} else if (errno == ECHILD) {
			pause();
		} else if (errno != EINTR) {
			printf("fakeinit waitid: %s\n", strerror(errno));
			fflush(stdout);
		}
	}
}
