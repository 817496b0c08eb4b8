package sandbox

import (
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// grace is how long a command that handles SIGTERM or SIGHUP may take to
// exit before the instance is ended.
const grace = 3 * time.Second

// forwarded are the signals selfdock passes on to the command.
var forwarded = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT}

// catchSignals starts catching the forwarded signals as Run starts: one
// that comes while the sandbox is set up waits in the channel and is dealt
// with, as any other, once the command runs.
//
// The first signal.Notify of a process waits until the runtime has started
// the thread that keeps its signal masks (a new OS thread: about 0.3 ms on
// the benchmark machine, on the hot path), so it runs on a goroutine of its
// own while the locked thread goes on with the namespaces. The returned
// function waits for it and gives the channel: the sandbox calls it
// (s.catching) before it leaves anything behind or starts any process (the
// cgroup leaf, squashfuse, the command), so a signal can never find a child
// of selfdock running while selfdock itself would still die of it. A signal
// that comes before Notify has returned (the first few hundred µs of Run,
// with nothing started yet) ends selfdock by its default action, as one
// that came a moment earlier, before Run, always did.
func catchSignals() func() chan os.Signal {
	sigs := make(chan os.Signal, 8)
	done := make(chan struct{})
	go func() {
		signal.Notify(sigs, forwarded...)
		close(done)
	}()
	return func() chan os.Signal {
		<-done
		return sigs
	}
}

// catching waits until the forwarded signals are caught (see catchSignals).
// Call it before any process is started.
func (s *sandbox) catching() {
	if s.sigs == nil {
		s.sigs = s.caught()
	}
}

// wait forwards signals to the command until it exits and returns its exit
// status as a shell reports it (128+N for a death by signal N).
//
// The kernel drops signals that the PID 1 of a namespace does not handle,
// so a signal the command leaves at its default action is carried out here
// as the default would be: the instance is killed. A handled signal is
// passed on; SIGTERM and SIGHUP end the instance after a grace period.
func (s *sandbox) wait(pid int) int {
	fg := foreground()
	var killedFor atomic.Int32
	kill := func(sig syscall.Signal) {
		killedFor.CompareAndSwap(0, int32(sig))
		unix.PidfdSendSignal(s.pidfd, unix.SIGKILL, nil, 0)
	}
	s.catching()
	sigs := s.sigs
	go func() {
		for v := range sigs {
			sig := v.(syscall.Signal)
			switch disposition(pid, sig) {
			case "ignored":
			case "caught":
				if fg >= 0 && (sig == syscall.SIGINT || sig == syscall.SIGQUIT) {
					// Typed on the terminal: the command, in our process
					// group, has it already; passing it on would repeat it.
					continue
				}
				unix.PidfdSendSignal(s.pidfd, sig, nil, 0)
				if sig == syscall.SIGTERM || sig == syscall.SIGHUP {
					time.AfterFunc(grace, func() { kill(sig) })
				}
			default:
				kill(sig)
			}
		}
	}()
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(pid, &ws, 0, nil)
		if err != unix.EINTR {
			break
		}
	}
	Trace("exited")
	s.t.stopSquashfuse()
	s.cgroup.leave()
	restoreForeground(fg)
	switch {
	case ws.Exited():
		return ws.ExitStatus()
	case ws.Signaled():
		if k := killedFor.Load(); k != 0 && ws.Signal() == syscall.SIGKILL {
			return 128 + int(k)
		}
		return 128 + int(ws.Signal())
	}
	return CodeFailed
}

// disposition reads whether pid catches, ignores or leaves sig at default.
// It runs on an ordinary thread, whose /proc is the host's.
func disposition(pid int, sig syscall.Signal) string {
	st, err := status(pid)
	if err != nil {
		return "default"
	}
	bit := uint64(1) << (uint(sig) - 1)
	has := func(field string) bool {
		mask, err := strconv.ParseUint(st[field], 16, 64)
		return err == nil && mask&bit != 0
	}
	switch {
	case has("SigCgt"):
		return "caught"
	case has("SigIgn"):
		return "ignored"
	}
	return "default"
}

// foreground returns the terminal's foreground process group when selfdock
// is in it, so that it can be given back if the command took it.
func foreground() int {
	pg, err := unix.IoctlGetInt(0, unix.TIOCGPGRP)
	if err != nil || pg != unix.Getpgrp() {
		return -1
	}
	return pg
}

func restoreForeground(pg int) {
	if pg < 0 {
		return
	}
	if cur, err := unix.IoctlGetInt(0, unix.TIOCGPGRP); err == nil && cur != pg {
		signal.Ignore(syscall.SIGTTOU)
		unix.IoctlSetPointerInt(0, unix.TIOCSPGRP, pg)
	}
}
