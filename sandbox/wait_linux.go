package sandbox

import (
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
var forwarded = []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT}

// wait forwards signals to the command until it exits and returns its exit
// status as a shell reports it (128+N for a death by signal N).
//
// The kernel drops signals that the PID 1 of a namespace does not handle,
// so a signal the command leaves at its default action is carried out here
// as the default would be: the instance is killed. A handled signal is
// passed on; SIGTERM and SIGHUP end the instance after a grace period.
//
// The locked thread polls the command's pidfd and the signal pipe
// (catchSignals) itself: no other thread is woken while nothing happens.
// Signals are dealt with, in the order they came, on one goroutine started
// by the first, on a thread whose /proc is the host's (this one's is the
// sandbox's).
func (s *sandbox) wait(pid int) int {
	fg := foreground()
	var killedFor atomic.Int32
	kill := func(sig syscall.Signal) {
		killedFor.CompareAndSwap(0, int32(sig))
		unix.PidfdSendSignal(s.pidfd, unix.SIGKILL, nil, 0)
	}
	var batches chan []syscall.Signal // to the one forwarding goroutine, in order
	fds := []unix.PollFd{{Fd: int32(s.pidfd), Events: unix.POLLIN}, {Fd: int32(s.sigfd), Events: unix.POLLIN}}
	for fds[0].Revents == 0 {
		if _, err := unix.Ppoll(fds, nil, nil); err != nil && err != unix.EINTR {
			break // cannot happen with valid descriptors; wait4 below still reaps
		}
		if fds[1].Revents == 0 {
			continue
		}
		if sigs := takeSignals(s.sigfd); len(sigs) > 0 {
			if batches == nil {
				batches = make(chan []syscall.Signal, 16)
				go func() {
					for b := range batches {
						s.forward(pid, fg, b, kill)
					}
				}()
			}
			batches <- sigs
		}
	}
	if batches != nil {
		close(batches)
	}
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

// forward passes sigs on to the command pid as wait describes.
func (s *sandbox) forward(pid, fg int, sigs []syscall.Signal, kill func(syscall.Signal)) {
	for _, sig := range sigs {
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
