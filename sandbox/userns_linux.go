//go:build cgo

package sandbox

/*
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <pthread.h>
#include <sys/auxv.h>
#include <sys/resource.h>

// Limits the Go runtime needs to start (a small stack crashes it, a small
// address space stops it before main, too few descriptors make it abort
// when it makes its eventfd). The setuid process records the caller's
// limits here, before the runtime starts (the runtime itself raises the
// soft descriptor limit), and raises a soft limit below what the runtime
// needs, never beyond the caller's hard limit: nothing selfdock starts
// (the command, squashfuse, newuidmap, an entered command) can go past
// what the caller could set themselves. The command gets them back.
#define SD_NLIMITS 4
const int selfdock_limit_res[SD_NLIMITS] = {RLIMIT_STACK, RLIMIT_AS, RLIMIT_DATA, RLIMIT_NOFILE};
struct rlimit selfdock_limit_orig[SD_NLIMITS];
int selfdock_limit_raised[SD_NLIMITS];

static void selfdock_raise_limits(void) {
	// want: what the runtime is given when possible; need: below it, it
	// cannot start (measured: the heap's reservations fail under ~800 MiB,
	// the main thread's system stack overflows at 16 KiB; the sandbox
	// holds a few descriptors per --map).
	const rlim_t want[SD_NLIMITS] = {8 << 20, RLIM_INFINITY, RLIM_INFINITY, 1024};
	const rlim_t need[SD_NLIMITS] = {64 << 10, (rlim_t)1 << 30, (rlim_t)1 << 30, 64};
	static const char *flag[SD_NLIMITS] = {"-s", "-v", "-d", "-n"};
	static const rlim_t unit[SD_NLIMITS] = {1024, 1024, 1024, 1};
	static const char *unitName[SD_NLIMITS] = {"KiB", "KiB", "KiB", "descriptors"};
	for (int i = 0; i < SD_NLIMITS; i++) {
		struct rlimit l;
		if (getrlimit(selfdock_limit_res[i], &l) < 0)
			continue;
		selfdock_limit_orig[i] = l;
		selfdock_limit_raised[i] = 1; // given back to the command in any case
		if (l.rlim_cur == RLIM_INFINITY || l.rlim_cur >= want[i])
			continue;
		rlim_t cur = l.rlim_max == RLIM_INFINITY || l.rlim_max > want[i] ? want[i] : l.rlim_max;
		if (cur < need[i]) {
			char msg[200];
			int len = snprintf(msg, sizeof msg, "selfdock: the limit of ulimit %s (%lu %s, hard %lu) is too small for selfdock to start: it needs %lu %s\n",
					   flag[i], (unsigned long)(l.rlim_cur / unit[i]), unitName[i],
					   (unsigned long)(l.rlim_max / unit[i]), (unsigned long)(need[i] / unit[i]), unitName[i]);
			(void)!write(2, msg, len);
			_exit(124);
		}
		struct rlimit n = {cur, l.rlim_max};
		setrlimit(selfdock_limit_res[i], &n);
	}
	struct rlimit st;
	if (getrlimit(RLIMIT_STACK, &st) == 0 && st.rlim_cur < (8 << 20)) {
		// Thread stacks are mappings, not bound by RLIMIT_STACK: give the
		// runtime's threads a normal size whatever the caller's limit.
		pthread_attr_t a;
		if (pthread_attr_init(&a) == 0) {
			pthread_attr_setstacksize(&a, 8 << 20);
			pthread_setattr_default_np(&a);
			pthread_attr_destroy(&a);
		}
	}
}

// selfdock_userns is 0 when the constructor did nothing, 1 when it moved the
// process into a new user and mount namespace, and -errno when that failed.
int selfdock_userns;
// selfdock_userns_step names the step that failed.
const char *selfdock_userns_step = "";
// selfdock_fakeroot is 1 when the process is root of a --fakeroot user
// namespace, set up with the selfdock that started it.
int selfdock_fakeroot;

static int write_file(const char *path, const char *data) {
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = write(fd, data, strlen(data));
	int err = n < 0 ? -errno : 0;
	close(fd);
	return err;
}

// wants_sandbox reports whether the command line asks for run or build:
// the first word that is neither an option nor an option's value, or a
// first word with a slash, as the kernel runs a bundle's #! line (main's
// bundleArgs reads `selfdock ./BUNDLE ARG...` as `--image ./BUNDLE run
// ARG...`); *net says whether an option before CMD was --net. It mirrors
// the CLI's grammar loosely: a miss costs a clear error later (the user
// namespace) or a network namespace made for nothing (selfdock_early_net),
// never privilege. It only compares strings, so hostile arguments steer
// nothing else.
static int wants_sandbox(int argc, char **argv, int *net) {
	static const char *two[] = {"-m", "--map", "-v", "--vol", "-t", "--tmpfs", "-e", "--env", 0};
	static const char *one[] = {"-r", "--rootfs", "-C", "--chdir", "-E", "--unset", "--image", "--bundle", "--name", "--hostname", "--seccomp", "--overlay-size", 0};
	int sandbox = 0, i = 1;
	if (argc > 1 && argv[1][0] != '-' && strchr(argv[1], '/')) {
		sandbox = 1; // a bundle: its run's options follow
		i = 2;
	}
	for (; i < argc; i++) {
		const char *a = argv[i];
		int skip = 0;
		if (strcmp(a, "--") == 0)
			break;
		if (a[0] != '-') {
			if (sandbox)
				break; // CMD starts
			if (strcmp(a, "run") != 0 && strcmp(a, "build") != 0)
				return 0;
			sandbox = 1;
			continue;
		}
		// --fakeroot: this process stays in the initial user namespace
		// and starts a copy of itself in a new one (LaunchFakeroot).
		if (strcmp(a, "--fakeroot") == 0)
			return 0;
		if (strcmp(a, "--net") == 0 || strncmp(a, "--net=", 6) == 0)
			*net = 1;
		if (strchr(a, '='))
			continue;
		for (int k = 0; two[k]; k++)
			if (strcmp(a, two[k]) == 0)
				skip = 2;
		for (int k = 0; one[k]; k++)
			if (strcmp(a, one[k]) == 0)
				skip = 1;
		i += skip;
	}
	return sandbox;
}

// fakeroot_enter is the inner half of --fakeroot: sync is "R,W", the
// descriptors the outer selfdock passed. It unshares the user and mount
// namespaces, says so, and waits: the outer one maps the ids with
// newuidmap/newgidmap ('m'), or lets this process map only its own uid
// and gid to 0 ('s'), or its uid only ('G': the gid map is left to us).
static void fakeroot_enter(const char *sync) {
	int rfd, wfd;
	char c = 'r', map[64];
	uid_t uid = getuid();
	gid_t gid = getgid();
	selfdock_userns_step = "--fakeroot";
	if (sscanf(sync, "%d,%d", &rfd, &wfd) != 2) {
		selfdock_userns = -EINVAL;
		return;
	}
	if (unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0 || write(wfd, &c, 1) != 1 || read(rfd, &c, 1) != 1) {
		selfdock_userns = errno ? -errno : -EIO;
		return;
	}
	close(rfd);
	close(wfd);
	int err = 0;
	if (c == 's') {
		snprintf(map, sizeof map, "0 %u 1\n", uid);
		err = write_file("/proc/self/uid_map", map);
	}
	if (err == 0 && (c == 's' || c == 'G')) {
		err = write_file("/proc/self/setgroups", "deny");
		snprintf(map, sizeof map, "0 %u 1\n", gid);
		if (err == 0)
			err = write_file("/proc/self/gid_map", map);
	}
	if (err < 0 || (c != 's' && c != 'G' && c != 'm')) {
		selfdock_userns = err < 0 ? err : -EPROTO;
		return;
	}
	selfdock_userns = 1;
	selfdock_fakeroot = 1;
}

// self_contained reports whether this executable carries an image (selfdock
// pack --self-contained): its last bytes are a trailer with the magic.
static int self_contained(void) {
	char b[12];
	int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	off_t end = lseek(fd, 0, SEEK_END);
	int ok = end >= 80 && pread(fd, b, sizeof b, end - 80) == sizeof b && memcmp(b, "selfdock-sc\n", 12) == 0;
	close(fd);
	return ok;
}

// selfdock_enter_userns runs before the Go runtime starts any thread, which
// unshare(CLONE_NEWUSER) requires. It returns at once when euid is 0: then
// the process is setuid root (or real root) and its environment and
// arguments are hostile input that must not steer anything here.
// The caller's TZ, hidden from the setuid process (see hide_tz).
const char selfdock_caller_tz[] = "SELFDOCK_CALLER_TZ=";

// hide_tz renames the caller's TZ entries in place, in the very array the
// Go runtime will read its environment from. Go's time package reads TZ
// during package initialisation (a dependency asks for the local zone),
// before main can clean anything: a TZ naming a file would make the setuid
// process open that file as root, where a FIFO hangs it and a device file
// acts (a watchdog, a tape). Hidden, TZ is /etc/localtime's; the command
// gets the caller's TZ back (policy.Environ).
// hide_runtime_env does the same for the variables that steer the Go
// runtime as it starts (policy.RuntimeEnv): in secure mode the runtime
// ignores GOTRACEBACK only, and GODEBUG could turn its checks off. They
// never reach the command either.
static void hide_runtime_env(char **envp) {
	static const char *names[] = {"GODEBUG=", "GOTRACEBACK=", "GOMAXPROCS=", "GOGC=", "GOMEMLIMIT=", "GOENV="};
	for (char **e = envp; e && *e; e++)
		for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
			if (strncmp(*e, names[i], strlen(names[i])) == 0)
				*e = (char *)"SELFDOCK_HIDDEN=1";
}

static void hide_tz(char **envp) {
	const size_t n = sizeof selfdock_caller_tz - 1;
	for (char **e = envp; e && *e; e++) {
		if (strncmp(*e, "TZ=", 3) != 0)
			continue;
		size_t len = strlen(*e + 3);
		char *s = malloc(n + len + 1);
		if (!s) {
			*e = (char *)selfdock_caller_tz; // no memory: the value is lost, never used
			continue;
		}
		memcpy(s, selfdock_caller_tz, n);
		memcpy(s + n, *e + 3, len + 1);
		*e = s;
	}
}

// block_for_pid1 blocks, before the Go runtime starts, the signals whose
// runtime handlers would end the process: as PID 1, selfdock boot-init
// (boot/init_linux.go) must not die of a signal the old init left pending.
// The runtime keeps the mask on its threads; boot-init relays every signal
// to a channel, and its signal thread then takes them.
static void block_for_pid1(void) {
	sigset_t set;
	sigemptyset(&set);
	const int sigs[] = {SIGHUP, SIGINT, SIGQUIT, SIGABRT, SIGUSR1, SIGUSR2, SIGPIPE, SIGALRM, SIGTERM, SIGSTKFLT,
			    SIGTSTP, SIGTTIN, SIGTTOU, SIGXCPU, SIGXFSZ, SIGVTALRM, SIGWINCH, SIGIO, SIGPWR, SIGSYS};
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
		sigaddset(&set, sigs[i]);
	for (int s = SIGRTMIN; s <= SIGRTMAX; s++) // the C library's own (32-34) are below SIGRTMIN
		sigaddset(&set, s);
	sigprocmask(SIG_BLOCK, &set, NULL);
}

extern char **environ;
void selfdock_early_net(void); // earlynet_linux.go

// initial_args finds argc and argv on the process's initial stack, laid out
// by the kernel as argc, argv[0..argc-1], NULL, envp[0..], NULL. glibc
// passes argc, argv and envp to constructors and musl passes nothing, but
// both point environ at that envp before any constructor runs. argc is the
// one word below environ's NULL whose value is its distance from it: no
// argv pointer can be that small. A stack that does not look like this
// gives no arguments at all.
static char **initial_args(int *argc) {
	char **envp = environ;
	*argc = 0;
	if (!envp || envp[-1])
		return NULL;
	for (long n = 0; n < (1L << 24); n++)
		if ((long)envp[-2 - n] == n) {
			*argc = (int)n;
			return envp - 1 - n;
		}
	return NULL;
}

__attribute__((constructor)) static void selfdock_enter_userns(void) {
	int argc;
	char **argv = initial_args(&argc);
	char **envp = environ;
#ifdef __GLIBC__
	// One malloc arena for the whole process: the Go runtime's threads
	// (pthreads under cgo) then do not each reserve and trim an arena of
	// their own at their first malloc (pthread_getattr_np's), a few system
	// calls and page faults per thread at every start. selfdock's C side
	// mallocs next to nothing. (musl, which make builds with, has no
	// per-thread arenas.)
	mallopt(M_ARENA_MAX, 1);
#endif
	if (getpid() == 1 && argc > 1 && strcmp(argv[1], "boot-init") == 0)
		block_for_pid1();
	if (geteuid() == 0) {
		// Privileged: only raise our own limits; no input steers this.
		// A setuid start (AT_SECURE) has a hostile environment: TZ hidden.
		if (getauxval(AT_SECURE)) {
			hide_tz(envp);
			hide_runtime_env(envp);
		}
		selfdock_raise_limits();
		int net = 0;
		if (wants_sandbox(argc, argv, &net) && !net)
			selfdock_early_net();
		return;
	}
	for (char **e = envp; e && *e; e++)
		if (strncmp(*e, "SELFDOCK_FAKEROOT_SYNC=", 23) == 0) {
			fakeroot_enter(*e + 23);
			return;
		}
	int net = 0, sandbox = wants_sandbox(argc, argv, &net);
	if (!sandbox && !self_contained())
		return;
	uid_t uid = getuid();
	gid_t gid = getgid();
	char map[64];
	if (unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0) {
		selfdock_userns = -errno;
		selfdock_userns_step = "unshare user namespace";
		return;
	}
	int err = write_file("/proc/self/setgroups", "deny");
	if (err == 0) {
		snprintf(map, sizeof map, "%u %u 1\n", uid, uid);
		err = write_file("/proc/self/uid_map", map);
	}
	if (err == 0) {
		snprintf(map, sizeof map, "%u %u 1\n", gid, gid);
		err = write_file("/proc/self/gid_map", map);
	}
	if (err < 0) {
		selfdock_userns = err;
		selfdock_userns_step = "write user namespace map";
		return;
	}
	selfdock_userns = 1;
	if (sandbox && !net)
		selfdock_early_net(); // owned by the user namespace just made
}
*/
import "C"

import (
	"fmt"
	"syscall"

	"github.com/selfdock/selfdock/policy"
)

// callerTZ is the name the constructor gives the caller's TZ.
func callerTZ() string { return C.GoString(&C.selfdock_caller_tz[0]) }

// userNamespace reports what the constructor did: entered is true when the
// process runs in its own user namespace; err says why entering failed.
func userNamespace() (entered bool, err error) {
	switch v := int(C.selfdock_userns); {
	case v == 1:
		return true, nil
	case v < 0:
		return false, fmt.Errorf("%s: %w", C.GoString(C.selfdock_userns_step), syscall.Errno(-v))
	}
	return false, nil
}

// raisedLimits are the caller's limits that the constructor raised for the
// setuid process to start; the command gets them back.
func raisedLimits() []policy.Rlimit {
	var out []policy.Rlimit
	names := [...]string{"stack", "as", "data", "nofile"}
	for i := range names {
		if C.selfdock_limit_raised[i] != 0 {
			o := C.selfdock_limit_orig[i]
			out = append(out, policy.Rlimit{Resource: int(C.selfdock_limit_res[i]), Name: names[i],
				Cur: uint64(o.rlim_cur), Max: uint64(o.rlim_max)})
		}
	}
	return out
}

// InUserNamespace reports whether the constructor put the process in a
// user namespace of its own (then a uid of 0 means --fakeroot, not root).
func InUserNamespace() bool { return C.selfdock_userns == 1 }

// InFakeroot reports whether the process is root of a --fakeroot user
// namespace.
func InFakeroot() bool { return C.selfdock_fakeroot == 1 }
