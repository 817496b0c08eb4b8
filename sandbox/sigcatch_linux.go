//go:build cgo

package sandbox

/*
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>

static unsigned long sd_sig_pending; // bit N-1: signal N came and is not taken yet
static int sd_sig_wake = -1;         // write end of a non-blocking pipe
static long sd_sig_pid;              // the process that installed the handler

// sd_sig_record is async-signal-safe: an atomic OR and a raw write, which
// cannot block (a full pipe only drops the wake-up byte: the bit stays).
// In a child that Go forked sharing our memory (vfork), before its execve,
// it does nothing: Go resets only the signals its runtime handles there, not
// a SIGINT or SIGHUP that was ignored when selfdock started.
static void sd_sig_record(int sig) {
	if (syscall(SYS_getpid) != sd_sig_pid)
		return;
	int saved = errno;
	__atomic_fetch_or(&sd_sig_pending, 1UL << (sig - 1), __ATOMIC_SEQ_CST);
	char b = 0;
	syscall(SYS_write, sd_sig_wake, &b, 1);
	errno = saved;
}

// sd_sig_catch installs sd_sig_record for sigs, on the alternate signal
// stack that the Go runtime gives each of its threads (a goroutine's own
// stack is too small for a C handler), with every other signal blocked
// while it runs.
static int sd_sig_catch(int wake, const int *sigs, int n) {
	sd_sig_wake = wake;
	sd_sig_pid = syscall(SYS_getpid);
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = sd_sig_record;
	sa.sa_flags = SA_ONSTACK | SA_RESTART;
	sigfillset(&sa.sa_mask);
	for (int i = 0; i < n; i++)
		if (sigaction(sigs[i], &sa, NULL) < 0)
			return -errno;
	return 0;
}

static unsigned long sd_sig_take(void) {
	return __atomic_exchange_n(&sd_sig_pending, 0, __ATOMIC_SEQ_CST);
}
*/
import "C"

import (
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// catchSignals starts catching the forwarded signals, as Run and Enter
// start: one that comes while the sandbox is set up is kept and dealt with,
// as any other, once the command runs (wait). It returns the read end of a
// pipe that turns readable when one came; takeSignals says which.
//
// A small C handler records them, not os/signal: the first signal.Notify of
// a process starts a thread of its own for the signal masks and hands each
// signal to it in turn, about 0.3 ms of a 4 ms run on the benchmark machine.
// The handler replaces the Go runtime's for these four signals only, which
// the runtime uses for nothing but os/signal and its default action (to
// end the process), and never runs in the command: execve resets handled
// signals to their default, and the C child resets every handler first.
// Only one sandbox runs per process; no other code of the process may use
// os/signal for these signals.
func catchSignals() (int, error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return -1, fmt.Errorf("signal pipe: %w", err)
	}
	sigs := make([]C.int, len(forwarded))
	for i, s := range forwarded {
		sigs[i] = C.int(s)
	}
	if e := C.sd_sig_catch(C.int(p[1]), &sigs[0], C.int(len(sigs))); e < 0 {
		unix.Close(p[0])
		unix.Close(p[1])
		return -1, fmt.Errorf("catch signals: %w", syscall.Errno(-e))
	}
	return p[0], nil
}

// takeSignals empties the pipe fd and returns the signals that came since
// the last call.
func takeSignals(fd int) []syscall.Signal {
	var b [64]byte
	for {
		if n, _ := unix.Read(fd, b[:]); n < len(b) {
			break
		}
	}
	var out []syscall.Signal
	for m, s := uint64(C.sd_sig_take()), 1; m != 0; m, s = m>>1, s+1 {
		if m&1 != 0 {
			out = append(out, syscall.Signal(s))
		}
	}
	return out
}
