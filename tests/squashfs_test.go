package tests

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
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

	// The caller's own image and bundle: never given to the kernel (no
	// loop device), but unpacked into a tmpfs by a child running as the
	// caller (no FUSE here: /dev/fuse is 0600), read-only for run. So too
	// in a nested selfdock, which has no privilege at all.
	loops := loopsInUse()
	probe := "/bin/busybox cat /marker; echo; /bin/busybox stat -f -c %T /; /bin/busybox touch /x || echo ro"
	wantOut(t, h.exec(t, opts{}, polBin, "--image", out+"/img.sqfs", "run", "/bin/sh", "-c", probe), "from-the-image\ntmpfs\nro")
	wantOut(t, h.exec(t, opts{}, out+"/app", "/bin/sh", "-c", probe), "from-the-image\ntmpfs\nro")
	wantOut(t, h.exec(t, opts{}, polBin, "run", out+"/app", "/bin/sh", "-c", probe), "from-the-image\ntmpfs\nro")
	wantOut(t, h.exec(t, opts{}, polBin, "build", polBin, "--image", out+"/img.sqfs", "build", "/bin/sh", "-c", "echo w > /x && /bin/busybox cat /x"), "w")
	if n := loopsInUse(); n != loops {
		t.Errorf("loop devices in use: %d before, %d after the caller's own images", loops, n)
	}
	// Damaged or cut short: one clear line, nothing left.
	b := mustRead(t, out+"/img.sqfs")
	cut := filepath.Join(out, "cut.sqfs")
	writeFile(t, cut, string(b[:len(b)/2]), 0o644, &h.user)
	r := h.exec(t, opts{}, polBin, "--image", cut, "run", "/bin/busybox", "true")
	if r.code != 124 || !strings.Contains(r.stderr, "unpack") || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
		t.Errorf("a truncated image of the caller's: want one line and 124:\n%v", r)
	}
	noCrash(t, r)
	// Where the policy lists the allowed roots, the caller's own image is
	// not one of them, FUSE or not.
	writeFile(t, polFile, "image_dirs = [\""+images+"\"]\nrootfs_dirs = [\""+images+"\"]\n", 0o644, nil)
	if r := h.exec(t, opts{}, polBin, "--image", out+"/img.sqfs", "run", "/bin/busybox", "true"); r.code != 124 || !strings.Contains(r.stderr, "rootfs_dirs") {
		t.Errorf("a user's own image passed rootfs_dirs:\n%v", r)
	}
	writeFile(t, polFile, "image_dirs = [\""+images+"\"]\n", 0o644, nil)

	img := copyFile(t, out+"/img.sqfs", images+"/img.sqfs", 0o644, nil)
	app := copyFile(t, out+"/app", images+"/app", 0o755, nil)
	loops = loopsInUse()
	before := readMountinfo(mustRead(t, "/proc/self/mountinfo"))

	wantOut(t, h.exec(t, opts{}, polBin, "--image", img, "run", "/bin/sh", "-c", "/bin/busybox cat /marker; echo; echo $$"), "from-the-image\n1")
	if r := h.exec(t, opts{}, polBin, "--image", img, "run", "/bin/busybox", "touch", "/x"); !strings.Contains(r.stderr, "Read-only") {
		t.Errorf("the image is not read-only:\n%v", r)
	}
	wantOut(t, h.exec(t, opts{}, app, "/bin/busybox", "cat", "/marker"), "from-the-image")
	// A named instance of a bundle (its command line is `selfdock APP
	// --name NAME CMD`) is found by ps, state and kill like any other.
	marker := sleepArg(30)
	s := h.start(t, opts{}, app, "--name", "sq-app", "/bin/busybox", "sleep", marker)
	h.waitRunning(t, polBin, "sq-app")
	if r := h.exec(t, opts{}, polBin, "ps"); !strings.Contains(r.stdout, "sq-app") || !strings.Contains(r.stdout, app+" (image)") {
		t.Errorf("ps does not show the bundle's instance by name and image:\n%v", r)
	}
	wantCode(t, h.exec(t, opts{}, polBin, "kill", "sq-app", "KILL"), 0)
	if r := s.wait(t); r.code != 137 && r.sig != syscall.SIGKILL {
		t.Errorf("killed bundle instance: %v", r)
	}
	wantNoProcs(t, "sleep", marker)
	wantOut(t, h.exec(t, opts{}, polBin, "--overlay", "--image", img, "run", "/bin/sh", "-c", "echo w > /x && /bin/busybox cat /x"), "w")

	// Root-owned but writable by others, or outside image_dirs: never
	// mounted by the kernel, only unpacked as the caller.
	fsType := []string{"run", "/bin/busybox", "stat", "-f", "-c", "%T", "/"}
	wantOut(t, h.exec(t, opts{}, polBin, append([]string{"--image", img}, fsType...)...), "squashfs")
	bad := copyFile(t, img, images+"/group-writable.sqfs", 0o664, nil)
	wantOut(t, h.exec(t, opts{}, polBin, append([]string{"--image", bad}, fsType...)...), "tmpfs")
	elsewhere := copyFile(t, img, h.dir(t, nil, 0o755)+"/img.sqfs", 0o644, nil)
	wantOut(t, h.exec(t, opts{}, polBin, append([]string{"--image", elsewhere}, fsType...)...), "tmpfs")
	// The same file seen through another mount namespace: a process of
	// the caller's, in user and mount namespaces of its own, binds it into
	// a tmpfs on the images directory and stays there; through its
	// /proc/PID/cwd the kernel names the file as if it were in image_dirs.
	wantOut(t, h.exec(t, opts{dir: foreignCwd(t, h, images, elsewhere)}, polBin, append([]string{"--image", "x.sqfs"}, fsType...)...), "tmpfs")
	// A damaged image: a clear error, nothing left.
	b = mustRead(t, img)
	for i := 96; i < len(b) && i < 8192; i++ {
		b[i] ^= 0xff
	}
	damaged := filepath.Join(images, "damaged.sqfs")
	if err := os.WriteFile(damaged, b, 0o644); err != nil {
		t.Fatal(err)
	}
	r = h.exec(t, opts{}, polBin, "--image", damaged, "run", "/bin/busybox", "true")
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

// TestSquashfuse: an image the kernel may not mount is served by squashfuse
// as the caller, where the caller may open /dev/fuse (the test makes it so
// for its duration: it is 0600 on these machines), and unpacked into a
// tmpfs where not. Nothing is left running.
func TestSquashfuse(t *testing.T) {
	h := need(t)
	if _, err := os.Stat("/usr/bin/squashfuse"); err != nil {
		skipOrFail(t, "squashfuse is not installed")
	}
	st, err := os.Stat("/dev/fuse")
	if err != nil {
		skipOrFail(t, "no /dev/fuse")
	}
	root := h.busyboxRoot(t)
	writeFile(t, root+"/marker", "fuse-image", 0o644, &h.user)
	out := h.dir(t, &h.user, 0o755)
	wantCode(t, h.sd(t, "pack", root, out+"/img.sqfs"), 0)
	wantCode(t, h.sd(t, "pack", "--bundle", root, out+"/app"), 0)

	// Without FUSE the image is unpacked into a tmpfs instead.
	wantOut(t, h.sd(t, "--image", out+"/img.sqfs", "run", "/bin/busybox", "stat", "-f", "-c", "%T", "/"), "tmpfs")

	if err := os.Chmod("/dev/fuse", 0o666); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod("/dev/fuse", st.Mode().Perm())
	wantOut(t, h.sd(t, "--image", out+"/img.sqfs", "run", "/bin/sh", "-c", "/bin/busybox cat /marker; echo; echo $$"), "fuse-image\n1")
	if r := h.sd(t, "--image", out+"/img.sqfs", "run", "/bin/busybox", "touch", "/x"); r.code == 0 {
		t.Errorf("a squashfuse root is writable:\n%v", r)
	}
	wantOut(t, h.exec(t, opts{}, out+"/app", "/bin/busybox", "cat", "/marker"), "fuse-image")
	time.Sleep(100 * time.Millisecond)
	if left := processesNamed("squashfuse", h.user.uid); len(left) > 0 {
		t.Errorf("squashfuse left behind (running or a zombie): %v", left)
	}
}

// processesNamed lists the processes of uid whose name is name, zombies too.
func processesNamed(name string, uid int) []string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile("/proc/" + e.Name() + "/status")
		if err != nil {
			continue
		}
		s := string(b)
		if strings.Contains(s, "Name:\t"+name+"\n") && strings.Contains(s, "\nUid:\t"+strconv.Itoa(uid)+"\t") {
			out = append(out, e.Name())
		}
	}
	return out
}

// foreignCwd starts, as the test user, a process in user and mount
// namespaces of its own whose working directory is a tmpfs over dir holding
// a bind of file as x.sqfs, and returns /proc/PID/cwd of it. The process
// ends with the test.
func foreignCwd(t *testing.T, h *harness, dir, file string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := h.command(ctx, opts{}, "unshare", "-Urm", "sh", "-c",
		`mount -t tmpfs none "$1" && touch "$1/x.sqfs" && mount --bind "$2" "$1/x.sqfs" && cd "$1" && echo ready && exec sleep 60`,
		"sh", dir, file)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if line != "ready\n" {
		t.Fatalf("unshare -Urm: %q, %v", line, err)
	}
	return fmt.Sprintf("/proc/%d/cwd", cmd.Process.Pid)
}
