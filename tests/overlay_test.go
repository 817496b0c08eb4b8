package tests

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
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

// TestAttackOverlayMapSubmount: overlayfs does not cross mount points, so an
// overlay over a map with submounts must bind them again on top: otherwise
// the caller would see what lies hidden under a mount point in the source's
// file system, which no user namespace shows (the kernel refuses a
// non-recursive bind of a tree with locked submounts), and not what the
// submount shows.
func TestAttackOverlayMapSubmount(t *testing.T) {
	h := need(t)
	src := h.dir(t, nil, 0o755)
	if err := os.Mkdir(src+"/mp", 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, src+"/mp/hidden", "under the mount point", 0o644, nil)
	for _, mp := range []string{src + "/mp", src + "/mp/inner"} {
		if mp != src+"/mp" {
			if err := os.Mkdir(mp, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := unix.Mount("tmpfs", mp, "tmpfs", 0, "mode=755"); err != nil {
			t.Fatalf("mount tmpfs on %s: %v", mp, err)
		}
		t.Cleanup(func() { unix.Unmount(mp, unix.MNT_DETACH) })
	}
	writeFile(t, src+"/mp/shown", "shown", 0o644, nil)
	writeFile(t, src+"/mp/inner/deep", "deep", 0o644, nil)
	for _, args := range [][]string{
		{"--overlay", "--map", src, "/mnt", "run"},
		{"--map", src, "/mnt", "run"},
	} {
		sd := func(cmd ...string) res { return h.sd(t, append(append([]string{}, args...), cmd...)...) }
		if r := sd("cat", "/mnt/mp/hidden"); r.code == 0 || strings.Contains(r.stdout, "under") {
			t.Errorf("%v: the file under the mount point is visible:\n%v", args, r)
		}
		wantOut(t, sd("cat", "/mnt/mp/shown", "/mnt/mp/inner/deep"), "showndeep")
		if r := sd("sh", "-c", "echo x > /mnt/mp/inner/new"); !strings.Contains(r.stderr, "Read-only") {
			t.Errorf("%v: the submount is not read-only:\n%v", args, r)
		}
	}
	// The root overlay does the same for the host's mounts.
	if r := h.sd(t, "--overlay", "run", "cat", src+"/mp/hidden"); r.code == 0 {
		t.Errorf("--overlay: the file under the mount point is visible:\n%v", r)
	}
	wantOut(t, h.sd(t, "--overlay", "run", "cat", src+"/mp/inner/deep"), "deep")

	// With the caller's own --rootfs, "/proc" after the pivot is the
	// caller's directory: a fake thread-self/mountinfo (listing no
	// submount) and fake thread-self/fd links (where an older kernel's
	// overlay would look its layers up) must steer nothing. The second
	// binary takes the older kernels' path to the layers on this one.
	root := h.busyboxRoot(t)
	fake := mkdir(t, filepath.Join(root, "proc", "thread-self"), 0o755, &h.user)
	writeFile(t, filepath.Join(fake, "mountinfo"), "1 0 0:1 / / rw - none none rw\n", 0o644, &h.user)
	mkdir(t, filepath.Join(fake, "fd"), 0o755, &h.user)
	for i := 0; i < 64; i++ {
		symlinkAs(t, "/etc", filepath.Join(fake, "fd", strconv.Itoa(i)), &h.user)
	}
	byPath := filepath.Join(h.dir(t, nil, 0o755), "selfdock")
	if err := buildSetuid(byPath, "-X github.com/selfdock/selfdock/sandbox.overlayLayersByPath=1"); err != nil {
		t.Fatal(err)
	}
	for _, bin := range []string{h.bin, byPath} {
		sd := func(cmd ...string) res {
			return h.exec(t, opts{}, bin, append([]string{"-r", root, "--overlay", "--map", src, "/mnt", "run", "/bin/busybox"}, cmd...)...)
		}
		if r := sd("cat", "/mnt/mp/hidden"); r.code == 0 || strings.Contains(r.stdout, "under") {
			t.Errorf("%s -r: the file under the mount point is visible:\n%v", bin, r)
		}
		wantOut(t, sd("cat", "/mnt/mp/shown", "/mnt/mp/inner/deep"), "showndeep")
		wantOut(t, sd("sh", "-c", "echo w > /bin/w && /bin/busybox cat /bin/w"), "w")
	}
}
