package sandbox

import (
	"github.com/selfdock/selfdock/policy"
	"os"

	"golang.org/x/sys/unix"
)

// Harden runs first thing in main when the process has privilege: no core
// dumps, no inherited descriptor reaches the command, no runtime variable
// stays in the environment.
func Harden() {
	// Descriptors inherited from the caller beyond stdio are closed at exec
	// (CVE-2024-21626 class: no stray directory fd inside the sandbox).
	unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	if Detect() == Unprivileged {
		return
	}
	// Safe: only lowers what the process may do (no core dump of a setuid
	// process holding root-opened descriptors).
	unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	for _, k := range policy.RuntimeEnv {
		os.Unsetenv(k)
	}
}
