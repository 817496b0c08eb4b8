package tests

import (
	"os"
	"strings"
	"testing"
)

func TestHostnameOption(t *testing.T) {
	h := need(t)
	host, _ := os.Hostname()
	wantOut(t, h.sd(t, "--hostname", "sandbox-x", "run", "cat", "/proc/sys/kernel/hostname"), "sandbox-x")
	wantOut(t, h.sd(t, "run", "--hostname", "inner", "hostname"), "inner")
	wantOut(t, h.sd(t, "run", "cat", "/proc/sys/kernel/hostname"), host)
	if after, _ := os.Hostname(); after != host {
		t.Errorf("the host's name changed: %q -> %q", host, after)
	}
	wantRefused(t, h.sd(t, "--hostname", strings.Repeat("x", 65), "run", "true"), 124)
}
