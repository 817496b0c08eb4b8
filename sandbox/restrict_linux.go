package sandbox

import (
	"fmt"

	"github.com/syndtr/gocapability/capability"
	"golang.org/x/sys/unix"
)

// restrictThread sets on the locked thread what the forked command inherits
// and can never undo: an empty capability bounding set, no_new_privs and the
// seccomp filter. The thread keeps its effective capabilities for the /proc
// mount after the fork; the command loses them when it becomes the caller.
func (s *sandbox) restrictThread() error {
	caps, err := capability.NewPid2(0)
	if err != nil {
		return fmt.Errorf("capabilities: %w", err)
	}
	caps.Clear(capability.BOUNDS)
	// Safe: only ever removes capabilities, from this thread's bounding set.
	if err := caps.Apply(capability.BOUNDS); err != nil {
		return fmt.Errorf("drop capability bounding set: %w", err)
	}
	Trace("bounding")
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("set no_new_privs: %w", err)
	}
	if !s.plan.Seccomp {
		return nil
	}
	prog, err := seccompProgram(SeccompOptions{AllowNesting: s.plan.AllowNesting, ParentMounts: true})
	if err != nil {
		return fmt.Errorf("seccomp: %w", err)
	}
	// Safe: a filter only takes rights away; loaded on this thread alone so
	// the runtime's other threads are unaffected.
	if err := loadSeccompThread(prog); err != nil {
		return fmt.Errorf("seccomp: %w", err)
	}
	return nil
}
