package boot

import (
	"os"
	"strings"
	"testing"
)

// TestFindTargetRefusesRealInit reads /proc only: it never traces or
// signals anything. The machine's PID 1 is refused without allowReal,
// and a process that is no namespace's init is refused always.
func TestFindTargetRefusesRealInit(t *testing.T) {
	own, err := nsInode("/proc/self/ns/pid")
	if err != nil || own != realInit {
		t.Skip("not in the initial PID namespace: PID 1 here is not the machine's")
	}
	_, err = FindTarget(1, false)
	if err == nil || !strings.Contains(err.Error(), "is this machine's init") {
		t.Errorf("FindTarget(1, false) = %v, want a refusal", err)
	}
	_, err = FindTarget(os.Getpid(), true)
	if err == nil || !strings.Contains(err.Error(), "not the init (PID 1) of a PID namespace") {
		t.Errorf("FindTarget(self) = %v, want a refusal", err)
	}
}
