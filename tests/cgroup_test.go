package tests

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// delegatedCgroup says whether sdtest has a cgroup v2 subtree of its own
// here; the policy's cgroup limits apply only there.
func delegatedCgroup(h *harness) bool {
	var fs syscall.Statfs_t
	if syscall.Statfs("/sys/fs/cgroup", &fs) != nil || fs.Type != 0x63677270 {
		return false
	}
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return false
	}
	rel, _ := strings.CutPrefix(strings.TrimSpace(string(b)), "0::")
	var st syscall.Stat_t
	return syscall.Stat(filepath.Dir(filepath.Join("/sys/fs/cgroup", rel)), &st) == nil && int(st.Uid) == h.user.uid
}

// TestCgroupLimits: the policy's cgroup limits. Where the caller has no
// delegated cgroup v2 subtree (these machines: cgroup v1), runs still work
// and `policy check` says where they apply; where it has one, pids.max
// stops a fork bomb and the leaf is removed afterwards.
func TestCgroupLimits(t *testing.T) {
	h := need(t)
	polBin, polFile := h.policyBinary(t)
	writeFile(t, polFile, "[cgroup]\npids = \"8\"\nmemory = \"256m\"\n", 0o644, nil)
	defer os.Remove(polFile)
	if r := h.exec(t, opts{}, polBin, "policy", "check"); !strings.Contains(r.stdout, "[cgroup]") || !strings.Contains(r.stdout, "delegated") {
		t.Errorf("policy check:\n%v", r)
	}
	if !delegatedCgroup(h) {
		wantCode(t, h.exec(t, opts{}, polBin, "run", "true"), 0)
		// The one skip that SELFDOCK_MUST_WORK=1 allows (DESIGN.md).
		t.Skip("no cgroup v2 subtree delegated to the test user here: the limits cannot be shown to hold")
	}
	r := h.exec(t, opts{}, polBin, "run", "sh", "-c", "for i in $(seq 20); do sleep 2 & done 2>/dev/null; wait; echo done")
	if !strings.Contains(r.stderr, "fork") && !strings.Contains(r.stderr, "resource") {
		t.Errorf("20 processes under pids.max = 8:\n%v", r)
	}
}
