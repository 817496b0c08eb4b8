package sandbox

import (
	"testing"

	"github.com/selfdock/selfdock/policy"
	"golang.org/x/sys/unix"
)

// TestMergeLimits: the command gets the lower of the caller's limit and the
// policy's, for the limits the setuid start raised (caller) and for every
// other one (current), soft and hard alike: a policy never raises one.
func TestMergeLimits(t *testing.T) {
	caller := []policy.Rlimit{{Resource: unix.RLIMIT_NOFILE, Cur: 1024, Max: 4096}}
	pol := []policy.Rlimit{
		{Resource: unix.RLIMIT_NOFILE, Cur: 2048, Max: 2048},
		{Resource: unix.RLIMIT_NPROC, Cur: 500, Max: 500},
		{Resource: unix.RLIMIT_FSIZE, Cur: 1 << 30, Max: 1 << 30},
	}
	current := func(r int) (unix.Rlimit, bool) {
		switch r {
		case unix.RLIMIT_NPROC:
			return unix.Rlimit{Cur: 300, Max: 300}, true
		case unix.RLIMIT_FSIZE:
			return unix.Rlimit{Cur: 1000, Max: unix.RLIM_INFINITY}, true
		}
		return unix.Rlimit{}, false
	}
	want := map[int][2]uint64{
		unix.RLIMIT_NOFILE: {1024, 2048},
		unix.RLIMIT_NPROC:  {300, 300},
		unix.RLIMIT_FSIZE:  {1000, 1 << 30},
	}
	got := mergeLimits(caller, pol, current)
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for _, l := range got {
		if w := want[l.Resource]; l.Cur != w[0] || l.Max != w[1] {
			t.Errorf("resource %d: %d/%d, want %d/%d", l.Resource, l.Cur, l.Max, w[0], w[1])
		}
	}
}
