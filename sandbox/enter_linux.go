package sandbox

import (
	"fmt"
	"os"
	"runtime"
	"strconv"

	"github.com/selfdock/selfdock/policy"
	"golang.org/x/sys/unix"
)

// Enter runs the plan's command inside the running instance whose PID 1 is
// target: in its mount, PID, IPC, UTS and network namespaces, as the caller,
// with the same restrictions as run (no capabilities, no_new_privs,
// seccomp). Only the instance's owner may enter it, and only instances of
// the setuid selfdock: their namespaces belong to the initial user namespace
// and no user can have changed their mounts.
func Enter(target int, p *policy.Plan) (int, error) {
	runtime.LockOSThread()
	priv := Detect()
	if priv == Unprivileged {
		return 0, &Error{CodeFailed, fmt.Errorf("enter needs the setuid selfdock (this one runs without privilege)")}
	}
	pidfd, err := openInstance(target, int(p.User.Uid))
	if err != nil {
		return 0, &Error{CodeFailed, err}
	}
	defer unix.Close(pidfd)
	p.Rlimits = mergeLimits(raisedLimits(), p.Rlimits, currentLimit) // the caller's own limits, as for run
	sigfd, err := catchSignals()
	if err != nil {
		return 0, &Error{CodeFailed, err}
	}
	s := &sandbox{umask: -1, plan: p, priv: priv, enter: true, sigfd: sigfd, fallback: !pidnsProc(), t: &tree{plan: p, procDir: -1}}
	if s.t.procDir, err = unix.Open("/proc", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
		return 0, &Error{CodeFailed, errorf("open", "/proc", err)}
	}
	// setns into a mount namespace needs a file system context of our own.
	if err := unix.Unshare(unix.CLONE_FS); err != nil {
		return 0, &Error{CodeFailed, fmt.Errorf("unshare fs: %w", err)}
	}
	if err := actAs(identity{p.User.Uid, p.User.Gid, p.User.Groups}); err != nil {
		return 0, &Error{CodeFailed, err}
	}
	// Safe: the namespaces of an instance the caller owns (checked through
	// a pidfd, so the process cannot be swapped), on this thread only.
	flags := unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWIPC | unix.CLONE_NEWUTS | unix.CLONE_NEWNET
	if err := unix.Setns(pidfd, flags); err != nil {
		return 0, &Error{CodeFailed, fmt.Errorf("enter instance %d: %w", target, err)}
	}
	if err := s.resolveCommand(); err != nil {
		return 0, asError(err)
	}
	s.dir = "/"
	pid, err := s.start()
	if err != nil {
		return 0, asError(err)
	}
	return s.wait(pid), nil
}

// openInstance opens a pidfd of target and checks, while the pidfd pins it,
// that it is the PID 1 of a setuid selfdock instance owned by uid.
func openInstance(target, uid int) (int, error) {
	pidfd, err := unix.PidfdOpen(target, 0)
	if err != nil {
		return -1, fmt.Errorf("instance %d: %w", target, err)
	}
	in, ok := instanceOf(target, uid)
	if !ok {
		unix.Close(pidfd)
		return -1, fmt.Errorf("instance %d: not a running selfdock instance of yours", target)
	}
	if err := sameBinary(in.Monitor); err != nil {
		unix.Close(pidfd)
		return -1, fmt.Errorf("instance %d: %w", target, err)
	}
	// Still alive now, so every number read above was this process's.
	if err := unix.PidfdSendSignal(pidfd, 0, nil, 0); err != nil {
		unix.Close(pidfd)
		return -1, fmt.Errorf("instance %d: %w", target, err)
	}
	return pidfd, nil
}

// sameBinary checks that the monitor runs this very binary with effective
// uid 0, i.e. is the setuid selfdock and not a look-alike.
func sameBinary(monitor int) error {
	st, err := status(monitor)
	if err != nil {
		return err
	}
	if _, e := ids(st["Uid"]); e != 0 {
		return fmt.Errorf("it runs in a user namespace (started without the setuid bit): enter it the same way is not supported")
	}
	var a, b unix.Stat_t
	if unix.Stat("/proc/"+strconv.Itoa(monitor)+"/exe", &a) != nil || unix.Stat("/proc/self/exe", &b) != nil ||
		a.Dev != b.Dev || a.Ino != b.Ino {
		return fmt.Errorf("its monitor is not this selfdock binary (%s)", os.Args[0])
	}
	return nil
}
