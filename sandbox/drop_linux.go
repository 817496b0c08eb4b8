package sandbox

import (
	"errors"
	"fmt"
	"syscall"
)

// DropPrivileges makes the whole process its real user for good, for every
// subcommand that needs no privilege (import, pack...): real, effective and
// saved ids and the groups become the caller's on all threads, then it
// checks that root cannot be regained. A no-op for the real root and for an
// unprivileged process.
func DropPrivileges() error {
	if Detect() != Setuid {
		return nil
	}
	uid, gid := syscall.Getuid(), syscall.Getgid()
	groups, err := syscall.Getgroups()
	if err != nil {
		return fmt.Errorf("drop privileges: %w", err)
	}
	// Safe: every id becomes the caller's own; libc applies it to all threads.
	if err := syscall.Setgroups(groups); err != nil {
		return fmt.Errorf("drop privileges: setgroups: %w", err)
	}
	if err := syscall.Setresgid(gid, gid, gid); err != nil {
		return fmt.Errorf("drop privileges: setresgid: %w", err)
	}
	if err := syscall.Setresuid(uid, uid, uid); err != nil {
		return fmt.Errorf("drop privileges: setresuid: %w", err)
	}
	if err := syscall.Setuid(0); err == nil || !errors.Is(err, syscall.EPERM) {
		return fmt.Errorf("drop privileges: root could be regained (setuid(0): %v)", err)
	}
	return nil
}
