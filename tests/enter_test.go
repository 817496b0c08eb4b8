package tests

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// instancePID waits for `selfdock ps` to list an instance whose command
// contains marker and returns its PID.
func (h *harness) instancePID(t *testing.T, marker string) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		r := h.sd(t, "ps")
		for _, line := range strings.Split(r.stdout, "\n") {
			if strings.Contains(line, marker) {
				pid, err := strconv.Atoi(strings.Fields(line)[0])
				if err == nil {
					return pid
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("selfdock ps never listed the instance %q", marker)
	return 0
}

func TestEnterAndPs(t *testing.T) {
	h := need(t)
	marker := sleepArg(30)
	inst := h.start(t, opts{}, h.bin, "run", "sh", "-c", "echo "+marker+" > /tmp/m; exec sleep "+marker)
	pid := h.instancePID(t, marker)

	r := h.sd(t, "ps")
	if !strings.HasPrefix(r.stdout, "PID") || !strings.Contains(r.stdout, "sleep "+marker) {
		t.Errorf("ps output:\n%v", r)
	}
	// The instance's /tmp, its PID namespace (sleep is PID 1) and its restrictions.
	r = h.sd(t, "enter", fmt.Sprint(pid), "sh", "-c",
		`cat /tmp/m; cat /proc/1/cmdline | tr '\0' ' '; echo; id -u; grep -E '^(CapEff|CapBnd|NoNewPrivs):' /proc/self/status | tr -s '\t' ' '; pwd`)
	wantCode(t, r, 0)
	want := fmt.Sprintf("%s\nsleep %s \n%d\nCapEff: 0000000000000000\nCapBnd: 0000000000000000\nNoNewPrivs: 1\n/", marker, marker, h.user.uid)
	if r.out() != want {
		t.Errorf("inside the instance:\n%s\nwant:\n%s", r.out(), want)
	}
	// Writes stay read-only there too.
	r = h.sd(t, "enter", fmt.Sprint(pid), "sh", "-c", "echo x > /etc/selfdock-enter-probe")
	if r.code == 0 || !strings.Contains(r.stderr, "Read-only") {
		t.Errorf("enter could write the root:\n%v", r)
	}
	// Exit status passes through.
	wantCode(t, h.sd(t, "enter", fmt.Sprint(pid), "sh", "-c", "exit 5"), 5)

	// Another user may not enter, nor see it in ps.
	other := opts{as: &h.other, dir: "/"}
	wantRefused(t, h.sdo(t, other, "enter", fmt.Sprint(pid), "true"), 124)
	if r := h.sdo(t, other, "ps"); strings.Contains(r.stdout, marker) {
		t.Errorf("sdother's ps lists sdtest's instance:\n%v", r)
	}
	inst.cmd.Process.Kill()
}

func TestEnterRefusesNonInstances(t *testing.T) {
	h := need(t)
	for _, target := range []string{"1", "0", "-3", "abc", "999999999"} {
		wantRefused(t, h.sd(t, "enter", target, "true"), 124)
	}
	// A look-alike: a process of sdtest's own named selfdock, whose child is
	// PID 1 of a PID namespace the user made (unprivileged user namespace).
	fake := copyFile(t, "/usr/bin/unshare", h.dir(t, nil, 0o755)+"/selfdock", 0o755, nil)
	marker := sleepArg(30)
	s := h.start(t, opts{}, fake, "--user", "--pid", "--fork", "--map-current-user", "sleep", marker)
	var pid int
	for i := 0; i < 100 && pid == 0; i++ {
		for _, p := range procsWithArgv("sleep", marker) {
			pid = p
		}
		time.Sleep(20 * time.Millisecond)
	}
	if pid == 0 {
		t.Fatal("the look-alike instance did not start")
	}
	r := h.sd(t, "enter", fmt.Sprint(pid), "true")
	wantRefused(t, r, 124)
	s.cmd.Process.Kill()
}
