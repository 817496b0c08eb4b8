package sandbox

import (
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

//go:generate go run ./internal/seccompgen -goarch amd64 -o seccomp_bpf_linux_amd64.go

// SeccompOptions selects one of the filters that `go generate` embedded from
// sandbox/seccompbuild, where the rules and their reasons are listed. Every
// filter allows by default, kills the process on a system call entry point
// it does not list, and fails with EPERM the calls that reach kernel state no
// namespace isolates (keyrings, BPF, perf, modules, kexec, the clock, ...)
// and the terminal-injecting ioctls TIOCSTI and TIOCLINUX, on the native
// entry point and on the 32-bit ones (int 0x80, x32).
type SeccompOptions struct {
	// AllowNesting keeps the mount family, setns and new user namespaces
	// available, because an inner selfdock needs them inside its own user
	// namespace, where they cannot touch the host. When false: setns,
	// unshare(CLONE_NEWUSER) and clone with CLONE_NEWUSER fail with EPERM,
	// clone3 fails with ENOSYS so that libc falls back to clone, whose flags
	// seccomp can see (clone3 passes them in memory, which a seccomp filter
	// cannot read), and so does the mount family (mount, umount, umount2,
	// pivot_root, move_mount, open_tree, fsopen, fsconfig, fsmount, fspick,
	// mount_setattr) with EPERM, unless ParentMounts is set.
	AllowNesting bool
	// ParentMounts leaves the mount family out of a filter that denies
	// nesting. restrictThread sets it: the filter is loaded on the
	// privileged locked thread before the fork, and a thread-only filter
	// binds the loading thread as much as the command it forks, yet that
	// thread still mounts the command's /proc after the fork (fsopen,
	// fsconfig, fsmount, move_mount). Nothing is lost: the command can
	// never hold the right to mount anything. It runs as the caller with no
	// capability in the initial user namespace, where every mount call needs
	// CAP_SYS_ADMIN, and it can neither create a user namespace of its own
	// (unshare and clone with CLONE_NEWUSER fail with EPERM, clone3 with
	// ENOSYS) nor enter one (setns fails with EPERM), which is the only way
	// to gain that capability over some mount namespace. Without effect when
	// AllowNesting is set.
	ParentMounts bool
}

// seccompPrograms are the generated filters, one per meaningful
// SeccompOptions.
type seccompPrograms struct {
	allowNesting            []unix.SockFilter // {AllowNesting: true}
	denyNesting             []unix.SockFilter // {AllowNesting: false}
	denyNestingParentMounts []unix.SockFilter // {AllowNesting: false, ParentMounts: true}
}

// seccompProgram returns the filter selected by o as classic BPF, ready for
// loadSeccompThread. The programs were built with libseccomp at build time
// (go generate; see seccomp_bpf_linux_amd64.go), so no libseccomp code is
// linked into selfdock and choosing one costs nothing at start-up. The
// result is shared and read-only. Architectures without a generated program
// get an error.
func seccompProgram(o SeccompOptions) ([]unix.SockFilter, error) {
	var prog []unix.SockFilter
	switch {
	case o.AllowNesting:
		prog = seccompBPF.allowNesting
	case o.ParentMounts:
		prog = seccompBPF.denyNestingParentMounts
	default:
		prog = seccompBPF.denyNesting
	}
	if len(prog) == 0 {
		return nil, fmt.Errorf("no program generated for GOARCH %s", runtime.GOARCH)
	}
	return prog, nil
}

// loadSeccompThread loads prog on the CALLING THREAD ONLY, with no TSYNC:
// other threads of the process, including the privileged ones that may still
// mount after the fork, stay unfiltered, while everything this thread forks
// or execs inherits the filter for good. The caller must hold
// runtime.LockOSThread for the rest of the thread's life (never unlock: the
// filtered thread must not run other goroutines) and must have set
// no_new_privs on this thread, or hold CAP_SYS_ADMIN; the kernel refuses
// with EACCES otherwise.
func loadSeccompThread(prog []unix.SockFilter) error {
	if len(prog) == 0 || len(prog) > unix.BPF_MAXINSNS {
		return fmt.Errorf("load: program of %d instructions", len(prog))
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	// seccomp(2), not prctl(PR_SET_SECCOMP): the same effect, and flags 0
	// means exactly this thread.
	_, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(&fprog)))
	runtime.KeepAlive(prog)
	if errno != 0 {
		if errors.Is(errno, unix.EACCES) {
			return fmt.Errorf("load: %w (no_new_privs not set on this thread)", errno)
		}
		return fmt.Errorf("load: %w", errno)
	}
	return nil
}
