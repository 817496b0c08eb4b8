//go:build cgo

package sandbox

/*
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

// Values of the new mount API, spelled out so that old headers do.
#define SD_FSOPEN_CLOEXEC 0x1
#define SD_FSCONFIG_CMD_CREATE 6
#define SD_FSMOUNT_CLOEXEC 0x1
#define SD_MOUNT_ATTR (0x2 | 0x4 | 0x8) // nosuid, nodev, noexec
#define SD_MOVE_MOUNT (0x4 | 0x40)       // F_EMPTY_PATH, T_EMPTY_PATH

// sd_child is everything the child needs; it lives in C memory.
struct sd_child {
	const char *path;
	char **argv, **envp;
	const char *dir;
	int setcred;
	unsigned uid, gid;
	int ngroups;
	gid_t *groups;
	int procfd;    // /proc inside the new root, or -1
	int pdeathsig;
	int parentfd;  // a pidfd of the parent, to notice that it died before pdeathsig was set
	int errfd;     // write end of a close-on-exec pipe
	struct sock_fprog *filter;
	int nrlimits;
	int *rlimit_res;
	struct rlimit *rlimits;
	sigset_t mask; // the parent thread's mask, restored before execve
};

enum { SD_PROC = 1, SD_CRED, SD_REGAIN, SD_RLIMIT, SD_PDEATH, SD_CHDIR, SD_FILTER, SD_EXEC, SD_ORPHAN };

// sd_fail reports which step failed and why, then exits. Only raw system
// calls run in the child: it shares the parent's memory until execve.
static void sd_fail(struct sd_child *c, int step) {
	int e[2] = {step, errno};
	syscall(SYS_write, c->errfd, e, sizeof e);
	syscall(SYS_exit, 127);
}

struct sd_sigaction { void *handler; unsigned long flags; void *restorer; unsigned long mask; };

static int sd_child_main(void *arg) {
	struct sd_child *c = arg;
	struct sd_sigaction dfl = {SIG_DFL, 0, 0, 0};
	for (int s = 1; s < 65; s++)
		syscall(SYS_rt_sigaction, s, &dfl, NULL, 8);
	if (c->procfd >= 0) {
		// This process is PID 1 of the new namespace: its procfs shows it.
		int fs = syscall(SYS_fsopen, "proc", SD_FSOPEN_CLOEXEC);
		if (fs < 0 || syscall(SYS_fsconfig, fs, SD_FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
			sd_fail(c, SD_PROC);
		int m = syscall(SYS_fsmount, fs, SD_FSMOUNT_CLOEXEC, SD_MOUNT_ATTR);
		if (m < 0 || syscall(SYS_move_mount, m, "", c->procfd, "", SD_MOVE_MOUNT) < 0)
			sd_fail(c, SD_PROC);
	}
	if (c->setcred) {
		if (syscall(SYS_setgroups, c->ngroups, c->groups) < 0 ||
		    syscall(SYS_setresgid, c->gid, c->gid, c->gid) < 0 ||
		    syscall(SYS_setresuid, c->uid, c->uid, c->uid) < 0)
			sd_fail(c, SD_CRED);
		if (c->uid != 0 && syscall(SYS_setuid, 0) == 0) {
			errno = EPERM;
			sd_fail(c, SD_REGAIN);
		}
		// And no capability is left (securebits could keep some).
		struct { unsigned version; int pid; } hdr = {0x20080522, 0};
		struct { unsigned eff, perm, inh; } data[2];
		if (syscall(SYS_capget, &hdr, data) < 0 ||
		    (c->uid != 0 && (data[0].eff | data[0].perm | data[1].eff | data[1].perm))) {
			errno = EPERM;
			sd_fail(c, SD_REGAIN);
		}
	}
	for (int i = 0; i < c->nrlimits; i++)
		if (syscall(SYS_setrlimit, c->rlimit_res[i], &c->rlimits[i]) < 0)
			sd_fail(c, SD_RLIMIT);
	if (c->pdeathsig && syscall(SYS_prctl, PR_SET_PDEATHSIG, c->pdeathsig, 0, 0, 0) < 0)
		sd_fail(c, SD_PDEATH);
	// A parent killed before the line above sent no signal: never run
	// the command orphaned. (getppid() cannot tell: it is 0 for PID 1.)
	// A pidfd polls readable once its process has exited (pidfd_send_signal
	// would not do: the parent is outside this PID namespace).
	// ppoll, not poll: arm64 has only the former.
	struct pollfd pfd = {c->parentfd, POLLIN, 0};
	struct timespec now = {0, 0};
	if (c->parentfd >= 0 && (syscall(SYS_ppoll, &pfd, 1, &now, NULL, 0) != 0 || pfd.revents)) {
		errno = ESRCH;
		sd_fail(c, SD_ORPHAN);
	}
	if (syscall(SYS_chdir, c->dir) < 0)
		sd_fail(c, SD_CHDIR);
	if (c->filter && syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, c->filter) < 0)
		sd_fail(c, SD_FILTER);
	// Nothing but stdio reaches the command (the fd table is the child's own).
	syscall(SYS_close_range, 3, ~0U, 4); // CLOSE_RANGE_CLOEXEC
	syscall(SYS_rt_sigprocmask, SIG_SETMASK, &c->mask, NULL, 8);
	syscall(SYS_execve, c->path, c->argv, c->envp);
	sd_fail(c, SD_EXEC);
	return 0;
}

// sd_spawn clones the child (sharing memory, the parent thread suspended
// until it execs) with every signal blocked, so no Go handler runs in it:
// the raw system call, because the C library's sigfillset leaves out its own
// signals (glibc 32 and 33, musl 32 to 34), which the caller, whose real uid
// the child has, could send to run the runtime's handler on the child's
// stack, in the parent's memory. The child resets every handler to the
// default before it unblocks anything.
// The child's stack: static, as a process starts one command at most (run
// or enter), and musl would give a malloc'd 64 KiB back with munmap.
static char sd_stack[64 << 10] __attribute__((aligned(16)));

static int sd_spawn(struct sd_child *c, int *pidfd) {
	unsigned long all = ~0UL;
	memset(&c->mask, 0, sizeof c->mask);
	syscall(SYS_rt_sigprocmask, SIG_SETMASK, &all, &c->mask, 8);
	int pid = clone(sd_child_main, sd_stack + sizeof sd_stack, CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD, c, pidfd);
	int err = errno;
	syscall(SYS_rt_sigprocmask, SIG_SETMASK, &c->mask, NULL, 8);
	return pid < 0 ? -err : pid;
}
*/
import "C"

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// spawnSteps name the child's steps for error messages.
var spawnSteps = map[int]string{1: "mount /proc", 2: "set ids", 3: "check ids", 4: "set rlimits",
	5: "set parent death signal", 6: "chdir", 7: "load seccomp", 8: "exec", 9: "selfdock died"}

// spawnC forks the command with a small C child that does, inside the new
// PID namespace, what must happen there: mount its /proc (where procfs has
// no pidns option: the way (b) of NOTES.md), become the caller, check
// that root cannot be regained, load the seccomp filter, exec. No Go code
// runs between the fork and the exec.
func (s *sandbox) spawnC(procfd int, filter []unix.SockFilter) (int, error) {
	var pipe [2]int
	if err := unix.Pipe2(pipe[:], unix.O_CLOEXEC); err != nil {
		return 0, err
	}
	defer unix.Close(pipe[0])
	c := (*C.struct_sd_child)(C.calloc(1, C.size_t(unsafe.Sizeof(C.struct_sd_child{}))))
	defer C.free(unsafe.Pointer(c))
	var frees []unsafe.Pointer
	defer func() {
		for _, p := range frees {
			C.free(p)
		}
	}()
	cstr := func(s string) *C.char { p := C.CString(s); frees = append(frees, unsafe.Pointer(p)); return p }
	carr := func(v []string) **C.char {
		a := (**C.char)(C.calloc(C.size_t(len(v)+1), C.size_t(unsafe.Sizeof(uintptr(0)))))
		frees = append(frees, unsafe.Pointer(a))
		sl := unsafe.Slice(a, len(v)+1)
		for i, x := range v {
			sl[i] = cstr(x)
		}
		return a
	}
	c.path, c.argv, c.envp, c.dir = cstr(s.argv0), carr(s.plan.Argv), carr(s.plan.Env), cstr(s.dir)
	c.procfd, c.errfd, c.parentfd = C.int(procfd), C.int(pipe[1]), -1
	if !s.enter {
		c.pdeathsig = C.int(unix.SIGKILL)
		self, err := unix.PidfdOpen(unix.Getpid(), 0)
		if err != nil {
			return 0, fmt.Errorf("pidfd: %w", err)
		}
		defer unix.Close(self)
		c.parentfd = C.int(self)
	}
	if s.priv != Unprivileged {
		c.setcred, c.uid, c.gid = 1, C.uint(s.plan.User.Uid), C.uint(s.plan.User.Gid)
		if n := len(s.plan.User.Groups); n > 0 {
			g := (*C.gid_t)(C.calloc(C.size_t(n), 4))
			frees = append(frees, unsafe.Pointer(g))
			for i, v := range s.plan.User.Groups {
				unsafe.Slice(g, n)[i] = C.gid_t(v)
			}
			c.ngroups, c.groups = C.int(n), g
		}
	}
	if len(filter) > 0 {
		f := (*C.struct_sock_filter)(C.calloc(C.size_t(len(filter)), 8))
		frees = append(frees, unsafe.Pointer(f))
		copy(unsafe.Slice((*unix.SockFilter)(unsafe.Pointer(f)), len(filter)), filter)
		prog := (*C.struct_sock_fprog)(C.calloc(1, C.size_t(unsafe.Sizeof(C.struct_sock_fprog{}))))
		frees = append(frees, unsafe.Pointer(prog))
		prog.len, prog.filter = C.ushort(len(filter)), f
		c.filter = prog
	}
	if n := len(s.plan.Rlimits); n > 0 {
		res := (*C.int)(C.calloc(C.size_t(n), 4))
		lim := (*C.struct_rlimit)(C.calloc(C.size_t(n), 16))
		frees = append(frees, unsafe.Pointer(res), unsafe.Pointer(lim))
		for i, r := range s.plan.Rlimits {
			unsafe.Slice(res, n)[i] = C.int(r.Resource)
			unsafe.Slice(lim, n)[i] = C.struct_rlimit{rlim_cur: C.rlim_t(r.Cur), rlim_max: C.rlim_t(r.Max)}
		}
		c.nrlimits, c.rlimit_res, c.rlimits = C.int(n), res, lim
	}
	var pidfd C.int
	pid := int(C.sd_spawn(c, &pidfd))
	unix.Close(pipe[1])
	if pid < 0 {
		return 0, fmt.Errorf("clone: %w", unix.Errno(-pid))
	}
	s.pidfd = int(pidfd)
	var e [2]int32
	if n, _ := unix.Read(pipe[0], (*[8]byte)(unsafe.Pointer(&e))[:]); n == 8 {
		var ws unix.WaitStatus
		unix.Wait4(pid, &ws, 0, nil)
		if e[0] == 8 {
			return 0, execError(s.plan.Argv[0], unix.Errno(e[1]))
		}
		return 0, fmt.Errorf("command %q: %s: %w", s.plan.Argv[0], spawnSteps[int(e[0])], unix.Errno(e[1]))
	}
	return pid, nil
}
