//go:build cgo

package sandbox

/*
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

static pthread_t sd_net_thread;
static int sd_net_started;     // a thread was started and not yet joined
static int sd_net_result = -1; // its namespace's nsfs descriptor, or -errno

// sd_net_setup gives the calling thread a new network namespace with lo up.
static int sd_net_setup(void) {
	// Safe: a new, empty network namespace for this thread only.
	if (unshare(CLONE_NEWNET) < 0)
		return -errno;
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -errno;
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	strcpy(ifr.ifr_name, "lo");
	ifr.ifr_flags = IFF_UP | IFF_LOOPBACK | IFF_RUNNING;
	// Safe: lo of this thread's own, fresh network namespace.
	int r = ioctl(s, SIOCSIFFLAGS, &ifr), e = errno;
	close(s);
	return r < 0 ? -e : 0;
}

static void *sd_net_make(void *unused) {
	(void)unused;
	int r = sd_net_setup();
	if (r < 0) {
		sd_net_result = r;
		return NULL;
	}
	// The process's own /proc; thread-self names this very thread.
	int fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	sd_net_result = fd < 0 ? -errno : fd;
	return NULL;
}

// selfdock_early_net starts making the sandbox's network namespace on a
// thread of its own: from the constructor, before the Go runtime starts,
// while the runtime and the packages initialise and the mount tree is built
// (or from Run, where the constructor did not guess run or build), and Run
// joins it (earlyNet). The thread blocks every signal, so none is ever
// delivered to it, and ends when it is done. If it cannot start, Run makes
// the namespace on its own thread (sd_net_setup).
void selfdock_early_net(void) {
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	if (pthread_create(&sd_net_thread, NULL, sd_net_make, NULL) == 0)
		sd_net_started = 1;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static int sd_net_pending(void) {
	return sd_net_started;
}

static void sd_net_start(void) {
	if (!sd_net_started)
		selfdock_early_net();
}

// sd_net_take waits for the thread, once, and returns its result, or
// -ENOENT when none was started.
static int sd_net_take(void) {
	if (!sd_net_started)
		return -ENOENT;
	sd_net_started = 0;
	pthread_join(sd_net_thread, NULL);
	return sd_net_result;
}
*/
import "C"

import (
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// startNet makes sure the network namespace is being made on a thread of
// its own (the constructor's, or one started now).
func startNet() { C.sd_net_start() }

// takeNet waits for the network namespace the thread made and takes it: its
// nsfs descriptor, or -1 when no thread could be started. With keep false
// (the plan shares the host's network after all) it is closed and -1
// returned.
func takeNet(keep bool) (int, error) {
	fd := int(C.sd_net_take())
	switch {
	case fd == -int(syscall.ENOENT):
		return -1, nil
	case fd < 0:
		if !keep {
			return -1, nil
		}
		return -1, fmt.Errorf("network namespace: %w", syscall.Errno(-fd))
	case !keep:
		unix.Close(fd)
		return -1, nil
	}
	return fd, nil
}

// netHere gives the calling thread a new network namespace with lo up, for
// when no thread could be started to make one.
func netHere() error {
	if e := C.sd_net_setup(); e < 0 {
		return fmt.Errorf("network namespace: %w", syscall.Errno(-e))
	}
	return nil
}
