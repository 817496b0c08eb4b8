package tests

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestOverlay: with --overlay the root and the maps appear writable, the
// writes vanish with the instance, and nothing of the host changes; the
// caller's own permissions still apply.
func TestOverlay(t *testing.T) {
	h := need(t)
	home := h.dir(t, &h.user, 0o755)
	before := snapshot(t, home)
	wantOut(t, h.sd(t, "--overlay", "run", "sh", "-c", "echo x > "+home+"/f && cat "+home+"/f"), "x")
	mustNotExist(t, home+"/f")
	if r := h.sd(t, "run", "sh", "-c", "echo x > "+home+"/f"); !strings.Contains(r.stderr, "Read-only") {
		t.Errorf("without --overlay the root must stay read-only:\n%v", r)
	}
	// Permissions still apply: root's files stay closed.
	if r := h.sd(t, "--overlay", "run", "sh", "-c", "touch /etc/selfdock-overlay-probe"); r.code == 0 {
		t.Errorf("--overlay let the caller write /etc:\n%v", r)
	}
	if r := h.sd(t, "--overlay", "run", "cat", "/etc/shadow"); r.code == 0 {
		t.Errorf("--overlay made /etc/shadow readable:\n%v", r)
	}
	mustNotExist(t, "/etc/selfdock-overlay-probe")

	// A map becomes writable too, and a missing destination is created in
	// the discarded upper layer.
	src := h.dir(t, &h.user, 0o755)
	writeFile(t, src+"/keep", "k", 0o644, &h.user)
	wantOut(t, h.sd(t, "--overlay", "-m", src, "/new/dir", "run", "sh", "-c", "echo y > /new/dir/added && cat /new/dir/keep /new/dir/added"), "ky")
	mustNotExist(t, src+"/added")
	mustNotExist(t, "/new")

	// The size limit holds.
	r := h.sd(t, "--overlay", "--overlay-size", "1m", "run", "sh", "-c", "head -c 3000000 /dev/zero > "+home+"/big")
	if r.code == 0 {
		t.Errorf("--overlay-size 1m allowed 3 MB:\n%v", r)
	}
	wantCode(t, h.sd(t, "--overlay-size", "1m", "run", "true"), 124)
	sameSnapshot(t, home, before, snapshot(t, home))
}

// TestOverlayRootfs: an image-like rootfs owned by the caller, in setuid and
// in user namespace mode.
func TestOverlayRootfs(t *testing.T) {
	h := need(t)
	root := h.busyboxRoot(t)
	mkdir(t, filepath.Join(root, "locked"), 0o755, nil) // root-owned inside the rootfs
	before := snapshot(t, root)
	plain := h.plainCopy(t)
	for _, bin := range []string{h.bin, plain} {
		r := h.exec(t, opts{}, bin, "--overlay", "-r", root, "run", "/bin/sh", "-c",
			"echo new > /bin/new && /bin/busybox cat /bin/new && /bin/busybox rm /bin/busybox.missing 2>/dev/null; echo z > /locked/z")
		if r.out() != "new" || r.code == 0 {
			t.Errorf("%s: want the write in /bin to work and the one in /locked to fail:\n%v", bin, r)
		}
	}
	sameSnapshot(t, root, before, snapshot(t, root))
	// In user namespace mode the host's / has submounts the kernel will not
	// put under an overlay: a clear error.
	r := h.exec(t, opts{}, plain, "--overlay", "run", "true")
	wantRefused(t, r, 124)
}
