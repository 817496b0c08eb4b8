package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// loopsInUse counts the attached loop devices.
func loopsInUse() int {
	m, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	return len(m)
}

// TestSquashfsImages: pack as a plain user; the kernel mounts an image only
// when root owns it in a directory of the policy's image_dirs; bundles run
// as programs; nothing is left behind.
func TestSquashfsImages(t *testing.T) {
	h := need(t)
	polBin, polFile := h.policyBinary(t)
	root := h.busyboxRoot(t)
	writeFile(t, root+"/marker", "from-the-image", 0o644, &h.user)
	out := h.dir(t, &h.user, 0o755)

	wantCode(t, h.exec(t, opts{}, polBin, "pack", root, out+"/img.sqfs"), 0)
	if b, _ := os.ReadFile(out + "/img.sqfs"); !strings.HasPrefix(string(b), "hsqs") {
		t.Fatalf("pack did not write a squashfs image")
	}
	wantCode(t, h.exec(t, opts{}, polBin, "pack", "--bundle", root, out+"/app"), 0)

	images := h.dir(t, nil, 0o755)
	writeFile(t, polFile, "image_dirs = [\""+images+"\"]\n", 0o644, nil)
	defer os.Remove(polFile)

	// The caller's own image and bundle: never given to the kernel.
	wantRefused(t, h.exec(t, opts{}, polBin, "--image", out+"/img.sqfs", "run", "/bin/busybox", "true"), 124)
	wantRefused(t, h.exec(t, opts{}, out+"/app", "/bin/busybox", "true"), 124)

	img := copyFile(t, out+"/img.sqfs", images+"/img.sqfs", 0o644, nil)
	app := copyFile(t, out+"/app", images+"/app", 0o755, nil)
	loops := loopsInUse()
	before := readMountinfo(mustRead(t, "/proc/self/mountinfo"))

	wantOut(t, h.exec(t, opts{}, polBin, "--image", img, "run", "/bin/sh", "-c", "/bin/busybox cat /marker; echo; echo $$"), "from-the-image\n1")
	if r := h.exec(t, opts{}, polBin, "--image", img, "run", "/bin/busybox", "touch", "/x"); !strings.Contains(r.stderr, "Read-only") {
		t.Errorf("the image is not read-only:\n%v", r)
	}
	wantOut(t, h.exec(t, opts{}, app, "/bin/busybox", "cat", "/marker"), "from-the-image")
	wantOut(t, h.exec(t, opts{}, polBin, "--overlay", "--image", img, "run", "/bin/sh", "-c", "echo w > /x && /bin/busybox cat /x"), "w")

	// Root-owned but writable by others, or outside image_dirs: refused.
	bad := copyFile(t, img, images+"/group-writable.sqfs", 0o664, nil)
	wantRefused(t, h.exec(t, opts{}, polBin, "--image", bad, "run", "/bin/busybox", "true"), 124)
	elsewhere := copyFile(t, img, h.dir(t, nil, 0o755)+"/img.sqfs", 0o644, nil)
	wantRefused(t, h.exec(t, opts{}, polBin, "--image", elsewhere, "run", "/bin/busybox", "true"), 124)
	// A damaged image: a clear error, nothing left.
	b := mustRead(t, img)
	for i := 96; i < len(b) && i < 8192; i++ {
		b[i] ^= 0xff
	}
	damaged := filepath.Join(images, "damaged.sqfs")
	if err := os.WriteFile(damaged, b, 0o644); err != nil {
		t.Fatal(err)
	}
	r := h.exec(t, opts{}, polBin, "--image", damaged, "run", "/bin/busybox", "true")
	if r.code == 0 {
		t.Errorf("a damaged image ran:\n%v", r)
	}
	noCrash(t, r)

	if n := loopsInUse(); n != loops {
		t.Errorf("loop devices in use: %d before, %d after", loops, n)
	}
	if after := readMountinfo(mustRead(t, "/proc/self/mountinfo")); len(after) != len(before) {
		t.Errorf("host mounts: %d before, %d after", len(before), len(after))
	}
}

func mustRead(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
