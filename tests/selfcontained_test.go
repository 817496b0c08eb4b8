package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSelfContained: one file carrying selfdock and an image, copied alone
// into an empty directory, runs as a plain user with no selfdock around.
func TestSelfContained(t *testing.T) {
	h := need(t)
	root := h.busyboxRoot(t)
	writeFile(t, root+"/marker", "os-release-like-marker", 0o644, &h.user)
	build := h.dir(t, &h.user, 0o755)
	wantCode(t, h.sd(t, "pack", "--self-contained", "--cmd", "/bin/busybox", "--cmd", "echo", "--cmd", "default-command-ran",
		root, build+"/OUT"), 0)
	if fi, err := os.Stat(build + "/OUT"); err != nil || fi.Mode()&os.ModeSetuid != 0 {
		t.Fatalf("OUT: %v, mode %v (must never be setuid)", err, fi)
	}

	dir := h.dir(t, &h.user, 0o755)
	out := copyFile(t, build+"/OUT", filepath.Join(dir, "OUT"), 0o755, &h.user)
	plain := opts{dir: dir, env: []string{"PATH=/usr/bin:/bin"}}
	if _, err := os.Stat("/usr/bin/selfdock"); err == nil {
		t.Log("note: a selfdock is installed in /usr/bin; OUT does not use it")
	}
	wantOut(t, h.exec(t, plain, out, "sh", "-c", "cat /marker; echo; echo $$"), "os-release-like-marker\n1")
	wantOut(t, h.exec(t, plain, out), "default-command-ran")
	// Many starts: a descriptor once closed twice made about 3% fail.
	loop := "for i in $(seq 40); do " + out + " /bin/busybox true || exit 1; done"
	wantCode(t, h.exec(t, plain, "/bin/sh", "-c", loop), 0)
	// The host's root is not there; the sandbox's own /proc, /tmp and /dev are.
	r := h.exec(t, plain, out, "/bin/sh", "-c", "test -e /usr/bin || test -e /home || echo no-host; test -c /dev/null && echo dev")
	wantOut(t, r, "no-host\ndev")
	// Sandbox options take a prefix that cannot clash with the image's arguments.
	vol := h.dir(t, &h.user, 0o755)
	wantCode(t, h.exec(t, plain, out, "--sd-vol", vol, "/tmp/work", "--", "/bin/sh", "-c", "echo hi > /tmp/work/f"), 0)
	if b, _ := os.ReadFile(vol + "/f"); string(b) != "hi\n" {
		t.Errorf("--sd-vol: the host directory got %q", b)
	}
	if r := h.exec(t, plain, out, "--selfdock-help"); !strings.Contains(r.stdout, "--sd-") {
		t.Errorf("--selfdock-help:\n%v", r)
	}

	// A byte flipped in the image part, or the file cut short: refused.
	b := mustRead(t, out)
	flipped := filepath.Join(dir, "flipped")
	b[len(b)-5000] ^= 0x55
	writeFile(t, flipped, string(b), 0o755, &h.user)
	r = h.exec(t, plain, flipped, "/bin/busybox", "true")
	wantRefused(t, r, 124)
	if !strings.Contains(r.stderr, "checksum") {
		t.Errorf("a flipped byte:\n%v", r)
	}
	short := filepath.Join(dir, "short")
	writeFile(t, short, string(mustRead(t, out)[:len(b)-100]), 0o755, &h.user)
	wantRefused(t, h.exec(t, plain, short, "/bin/busybox", "true"), 124)

	// As root: the embedded image is loop-mounted, and nothing stays.
	loops := loopsInUse()
	before := readMountinfo(mustRead(t, "/proc/self/mountinfo"))
	rootRun := h.exec(t, opts{as: &account{name: "root", uid: 0, gid: 0}, dir: dir}, out, "/bin/busybox", "cat", "/marker")
	wantOut(t, rootRun, "os-release-like-marker")
	if n := loopsInUse(); n != loops {
		t.Errorf("loop devices: %d before, %d after", loops, n)
	}
	if after := readMountinfo(mustRead(t, "/proc/self/mountinfo")); len(after) != len(before) {
		t.Errorf("host mounts: %d before, %d after", len(before), len(after))
	}
}
