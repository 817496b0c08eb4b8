package sandbox

import (
	"golang.org/x/sys/unix"
)

// pidnsProc says whether to use the ptrace path: only in binaries built
// with -tags sdptrace, and only where procfs takes the pidns option (Linux
// 6.13 and later; not Debian 12's 6.1). There the parent mounts the
// command's /proc while the command is stopped by ptrace after its execve.
// The default path is a small C child that mounts /proc from inside the new
// PID namespace: as fast (bench/REPORT.md), on every kernel, and, unlike
// Go's fork, it can tell that selfdock was killed before the child set its
// parent death signal (Go's child cannot: getppid() is 0 for a PID 1), where
// the ptrace path would leave the command stopped, traced by the reaper.
func pidnsProc() bool {
	if !ptracePath {
		return false
	}
	ns, err := unix.Open("/proc/thread-self/ns/pid", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(ns)
	fs, err := unix.Fsopen("proc", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return false
	}
	defer unix.Close(fs)
	return unix.FsconfigSetFd(fs, "pidns", ns) == nil
}

// startC is start for the default path: the C child mounts /proc from
// inside the PID namespace, becomes the caller, checks that root cannot be
// regained and loads the whole seccomp filter right before execve.
func (s *sandbox) startC() (int, error) {
	prog, err := s.restrictThread(true)
	if err != nil {
		return 0, err
	}
	procfd := -1
	if !s.enter {
		if procfd, err = openIn(s.t.root, "/proc"); err != nil {
			return 0, errorf("mount destination", "/proc", err)
		}
		defer unix.Close(procfd)
	}
	pid, err := s.spawnC(procfd, prog)
	Trace("spawned")
	return pid, err
}
