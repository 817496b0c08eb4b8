package sandbox

import (
	"fmt"

	"github.com/syndtr/gocapability/capability"
	"golang.org/x/sys/unix"
)

// restrictThread sets on the locked thread what the forked command inherits
// and can never undo: an empty capability bounding set, no_new_privs and,
// unless the child loads it itself (inChild), the seccomp filter. The thread
// keeps its effective capabilities for the /proc mount after the fork; the
// command loses them when it becomes the caller. It returns the program for
// the child to load, if any.
func (s *sandbox) restrictThread(inChild bool) ([]unix.SockFilter, error) {
	// With --fakeroot the command is root of its own user namespace and
	// keeps its capabilities there, which reach nothing outside it.
	if !InFakeroot() {
		caps, err := capability.NewPid2(0)
		if err != nil {
			return nil, fmt.Errorf("capabilities: %w", err)
		}
		caps.Clear(capability.BOUNDS)
		// Safe: only ever removes capabilities, from this thread's bounding set.
		if err := caps.Apply(capability.BOUNDS); err != nil {
			return nil, fmt.Errorf("drop capability bounding set: %w", err)
		}
	}
	Trace("bounding")
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return nil, fmt.Errorf("set no_new_privs: %w", err)
	}
	if !s.plan.Seccomp {
		return nil, nil
	}
	// In the child the whole filter applies; on this thread, which still
	// mounts /proc after the fork, the mount family stays allowed.
	prog, err := seccompProgram(SeccompOptions{AllowNesting: s.plan.AllowNesting, ParentMounts: !inChild})
	if err != nil {
		return nil, fmt.Errorf("seccomp: %w", err)
	}
	if inChild {
		return prog, nil
	}
	// Safe: a filter only takes rights away; loaded on this thread alone so
	// the runtime's other threads are unaffected.
	if err := loadSeccompThread(prog); err != nil {
		return nil, fmt.Errorf("seccomp: %w", err)
	}
	return nil, nil
}
