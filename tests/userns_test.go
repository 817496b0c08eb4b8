package tests

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// plainCopy installs a copy of selfdock WITHOUT the setuid bit, for the
// setuid-free (user namespace) mode.
func (h *harness) plainCopy(t *testing.T) string {
	t.Helper()
	dir := h.dir(t, nil, 0o755)
	p := filepath.Join(dir, "selfdock")
	copyFile(t, h.bin, p, 0o755, nil)
	if err := syscall.Chmod(p, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestUserNamespaceMode runs the non-setuid binary through the same promises
// and negative tests as the setuid one.
func TestUserNamespaceMode(t *testing.T) {
	h := need(t)
	bin := h.plainCopy(t)
	sd := func(args ...string) res { return h.exec(t, opts{}, bin, args...) }

	if r := sd("--version"); !strings.Contains(r.stdout, "user namespace mode") {
		t.Errorf("--version does not say the mode:\n%v", r)
	}
	wantOut(t, sd("run", "id", "-u"), strconv.Itoa(h.user.uid))
	wantOut(t, sd("run", "sh", "-c", "echo $$"), "1")
	wantOut(t, sd("run", "sh", "-c", `grep -E '^(CapPrm|CapEff|CapBnd|NoNewPrivs):' /proc/self/status | tr -s '\t' ' '`),
		"CapPrm: 0000000000000000\nCapEff: 0000000000000000\nCapBnd: 0000000000000000\nNoNewPrivs: 1")
	if r := sd("run", "cat", "/etc/shadow"); r.code == 0 {
		t.Errorf("/etc/shadow readable:\n%v", r)
	}
	probe := h.dir(t, nil, 0o755) + "/probe" // root-owned: the caller may not write there
	for _, mode := range []string{"run", "build"} {
		r := sd(mode, "sh", "-c", "echo x > "+probe)
		if r.code == 0 {
			t.Errorf("%s could write %s:\n%v", mode, probe, r)
		}
		mustNotExist(t, probe)
	}
	// Writing the root read-only: EROFS, not just permissions.
	home := h.dir(t, &h.user, 0o755)
	if r := sd("run", "sh", "-c", "echo x > "+home+"/f"); !strings.Contains(r.stderr, "Read-only") {
		t.Errorf("root not read-only:\n%v", r)
	}
	if r := sd("build", "sh", "-c", "echo x > "+home+"/f"); r.code != 0 {
		t.Errorf("build could not write where the caller may:\n%v", r)
	}
	if _, err := os.Stat(home + "/f"); err != nil {
		t.Errorf("build's write did not reach the caller's directory: %v", err)
	}
	wantCode(t, sd("run", bin, "run", bin, "run", "true"), 0)
	// The C constructor finds argv through environ (musl passes constructors
	// no arguments): with no environment at all, and with many arguments,
	// it must still see "run".
	wantOut(t, sd("run", "env", "-i", bin, "run", "echo", "empty env"), "empty env")
	many := make([]string, 3000)
	for i := range many {
		many[i] = "a"
	}
	wantOut(t, sd(append([]string{"run", "env", "-i", bin, "run", "sh", "-c", `echo $#`, "x"}, many...)...), "3000")
	wantCode(t, sd("-v", "/usr", "/mnt", "run", "true"), 124)
	wantCode(t, sd("run", "sh", "-c", "exit 9"), 9)
	wantCode(t, sd("run", "/nonexistent"), 127)
}
