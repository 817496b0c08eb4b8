package vm

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/selfdock/selfdock/tests/internal/testimage"
)

// restoreInit makes PID 1 the fake init of tests/testdata/fakeinit.c,
// whose seccomp filter forbids execve, blocked in waitid; a background
// shell runs boot, which must fail and put PID 1 back as it was: the same
// system call, arguments, stack and program counter in /proc/1/syscall,
// and a PID 1 that still reaps its children.
const restoreInit = oldSystem + `(
	sleep 2
	before=$(cat /proc/1/syscall)
	/bin/selfdock boot --yes --i-know-this-replaces-the-running-system /image.tar /bin/true
	echo "BOOT-RC $?"
	after=$(cat /proc/1/syscall)
	if [ "$before" = "$after" ]; then echo "SYSCALL-SAME"; else echo "SYSCALL-DIFFERS [$before] [$after]"; fi
	kill $(pidof sleep)
	sleep 2
	echo "RESTORE-DONE"
	poweroff -f
) &
exec /bin/fakeinit deny-exec
`

// TestVMBootRestoresArm64: on arm64, where the PID-namespace tests of the
// restore (tests/boot_test.go) cannot run on this x86-64 host.
func TestVMBootRestoresArm64(t *testing.T) {
	t.Parallel()
	f := need(t, arm64)
	fakeinit := buildFakeInit(t, arm64)
	image := filepath.Join(t.TempDir(), "image.tar")
	if err := testimage.BusyboxFrom(image, f.busybox, f.applets, nil); err != nil {
		t.Fatal(err)
	}
	lines, err := runVM(t, f, f.initramfs(restoreInit, map[string]string{"image.tar": image, "bin/fakeinit": fakeinit}), 240*time.Second)
	if err != nil {
		t.Error(err)
	}
	if rc, _ := find(lines, "BOOT-RC "); rc != "124" {
		t.Errorf("boot exited %q, want 124 (the execve forbidden)", rc)
	}
	if !anyContains(lines, "execve in the target failed: operation not permitted") {
		t.Error("boot did not say that the execve failed")
	}
	if _, ok := find(lines, "SYSCALL-SAME"); !ok {
		d, _ := find(lines, "SYSCALL-DIFFERS")
		t.Errorf("PID 1 not back in the same system call: %s", d)
	}
	if _, ok := find(lines, "fakeinit reaped"); !ok {
		t.Error("PID 1 no longer reaps its children after the restore")
	}
	if _, ok := find(lines, "RESTORE-DONE"); !ok {
		t.Error("the test script did not finish")
	}
	if t.Failed() {
		logTail(t, lines, 60)
	}
}

// anyContains tells whether a line contains s.
func anyContains(lines []string, s string) bool {
	for _, l := range lines {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}

// buildFakeInit compiles tests/testdata/fakeinit.c, static, for a.
func buildFakeInit(t *testing.T, a *arch) string {
	t.Helper()
	cc := "gcc"
	if a.foreign() {
		cc = a.cc
	}
	out := filepath.Join(t.TempDir(), "fakeinit")
	cmd := exec.Command(cc, "-static", "-O1", "-o", out, "../testdata/fakeinit.c")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, b)
	}
	return out
}

// TestVMBootArm64Nanosleep: boot on arm64 with PID 1 asleep in nanosleep,
// a call the kernel restarts through restart_syscall: at the stop the
// kernel has rewound to the svc that the injected execve goes through, and
// on the way out it would make that call restart_syscall.
func TestVMBootArm64Nanosleep(t *testing.T) {
	t.Parallel()
	checkQuotes(t)
	// The background shell is not PID 1: once boot has handed over, it
	// waits to be ended with the rest of the old system.
	init := oldSystem + swapOn + "echo \"BOOT-FLAGS \"\n(\n\tsleep 2\n\t" + bootCommand("") +
		" || { echo \"BOOT-FAILED rc=$?\"; poweroff -f; }\n\tsleep 1000\n) &\nexec /bin/fakeinit sleep\n"
	testBoot(t, arm64, init, map[string]string{"bin/fakeinit": buildFakeInit(t, arm64)})
}
