package tests

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// subStart is the subordinate range the tests give sdtest.
const subStart = 300000

// withSubordinateIDs gives sdtest a range in /etc/subuid and /etc/subgid for
// the test's duration.
func withSubordinateIDs(t *testing.T, h *harness) {
	t.Helper()
	for _, f := range []string{"/etc/subuid", "/etc/subgid"} {
		old, err := os.ReadFile(f)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		line := h.user.name + ":" + strconv.Itoa(subStart) + ":65536\n"
		if err := os.WriteFile(f, append(append([]byte(nil), old...), line...), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.WriteFile(f, old, 0o644) })
	}
	if _, err := exec.LookPath("newuidmap"); err != nil {
		skipOrFail(t, "newuidmap is missing (Debian package uidmap)")
	}
}

func TestFakeroot(t *testing.T) {
	h := need(t)
	withSubordinateIDs(t, h)
	host, _ := os.Hostname()
	for _, bin := range []string{h.bin, h.plainCopy(t)} {
		vol := h.dir(t, &h.user, 0o755)
		r := h.exec(t, opts{}, bin, "--fakeroot", "-v", vol, "/mnt", "run", "sh", "-c",
			"id -u; touch /mnt/f && chown 1000:1000 /mnt/f; hostname inside; hostname")
		wantOut(t, r, "0\ninside")
		st, err := os.Stat(vol + "/f")
		if err != nil {
			t.Fatalf("%s: %v\n%v", bin, err, r)
		}
		sys := st.Sys().(*syscall.Stat_t)
		if uid, gid := int(sys.Uid), int(sys.Gid); uid != subStart+999 || gid != subStart+999 {
			t.Errorf("%s: chown 1000 inside gave %d:%d on the host, want %d", bin, uid, gid, subStart+999)
		}
		// Root of its own namespace only: nothing of the host's opens up.
		for _, attack := range []string{"cat /etc/shadow", "touch /etc/selfdock-fakeroot-probe",
			"mknod /tmp/mem c 1 1", "echo 3 > /proc/sys/vm/drop_caches", "cat /proc/1/environ >/dev/null && test -n \"$(ls /proc/1/root/root)\""} {
			if r := h.exec(t, opts{}, bin, "--fakeroot", "run", "sh", "-c", attack); r.code == 0 {
				t.Errorf("%s --fakeroot: %q worked:\n%v", bin, attack, r)
			}
		}
		mustNotExist(t, "/etc/selfdock-fakeroot-probe")
		// Its capabilities are those of a user namespace that is not the host's.
		r = h.exec(t, opts{}, bin, "--fakeroot", "run", "readlink", "/proc/self/ns/user")
		if me, _ := os.Readlink("/proc/self/ns/user"); r.out() == me || r.code != 0 {
			t.Errorf("%s --fakeroot runs in the host's user namespace:\n%v", bin, r)
		}
	}
	if after, _ := os.Hostname(); after != host {
		t.Errorf("the host's name changed to %q", after)
	}
}

func TestFakerootSingleMapping(t *testing.T) {
	h := need(t)
	// No /etc/subuid entry for sdtest: only the caller's own ids, mapped to 0.
	r := h.sd(t, "--fakeroot", "run", "sh", "-c", "id -u; chown 1000 /tmp 2>/dev/null && echo chowned")
	if r.out() != "0" || !strings.Contains(r.stderr, "only your own uid and gid are mapped") {
		t.Errorf("single mapping:\n%v", r)
	}
	// Nested, where no_new_privs keeps newuidmap from working: the same.
	withSubordinateIDs(t, h)
	r = h.sd(t, "run", h.bin, "--fakeroot", "run", "id", "-u")
	if r.out() != "0" || !strings.Contains(r.stderr, "only your own") {
		t.Errorf("nested --fakeroot:\n%v", r)
	}
}

// TestFakerootDpkg is the flow of a user building a root file system with
// the distribution's own tools: mmdebstrap, import, dpkg -i as fake root,
// then run the installed program. The minbase tarball is built once and
// cached under /var/tmp.
func TestFakerootDpkg(t *testing.T) {
	h := need(t)
	withSubordinateIDs(t, h)
	cache := "/var/tmp/selfdock-test-cache"
	tarball, deb := filepath.Join(cache, "bookworm-minbase.tar"), filepath.Join(cache, "pkg")
	if err := prepareDebian(h, cache, tarball, deb); err != nil {
		skipOrFail(t, "cannot build a Debian root file system here: "+err.Error())
	}
	root := filepath.Join(h.dir(t, &h.user, 0o755), "debian")
	wantCode(t, h.exec(t, opts{timeout: 5 * time.Minute}, h.bin, "import", "--quiet", tarball, root), 0)
	r := h.exec(t, opts{timeout: 2 * time.Minute}, h.bin, "--rootfs", root, "--fakeroot", "-m", deb, "/mnt",
		"build", "sh", "-c", "dpkg -i /mnt/*.deb")
	wantCode(t, r, 0)
	wantOut(t, h.sd(t, "--rootfs", root, "run", "hello"), "Hello, world!")
}

// prepareDebian makes (once) a minbase bookworm tarball with mmdebstrap, as
// the test user, and downloads hello's .deb, as root.
func prepareDebian(h *harness, cache, tarball, deb string) error {
	if err := os.MkdirAll(deb, 0o755); err != nil {
		return err
	}
	os.Chmod(cache, 0o755)
	if m, _ := filepath.Glob(deb + "/hello_*.deb"); len(m) == 0 {
		cmd := exec.Command("apt-get", "download", "hello")
		cmd.Dir = deb
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("apt-get download hello: %v: %s", err, out)
		}
	}
	if _, err := os.Stat(tarball); err == nil {
		return nil
	}
	if _, err := exec.LookPath("mmdebstrap"); err != nil {
		if out, err := exec.Command("apt-get", "install", "-y", "-qq", "mmdebstrap").CombinedOutput(); err != nil {
			return fmt.Errorf("apt-get install mmdebstrap: %v: %s", err, out)
		}
	}
	work, err := os.MkdirTemp("/var/tmp", "selfdock-mmdebstrap")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	os.Chown(work, h.user.uid, h.user.gid)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := h.command(ctx, opts{dir: work, env: []string{"HOME=" + work}}, "/usr/bin/mmdebstrap",
		"--variant=minbase", "--quiet", "bookworm", work+"/rootfs.tar")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("mmdebstrap: %v: %s", err, out)
	}
	return os.Rename(work+"/rootfs.tar", tarball)
}

// TestAttackFakerootOuterDropsRoot: the outer --fakeroot process, setuid
// root, waits for its unprivileged copy and passes signals on. Once the ids
// are mapped it must hold no root: a caller who stops it until the copy's
// pid is reused would otherwise have root send their signals to whatever
// process got that pid.
func TestAttackFakerootOuterDropsRoot(t *testing.T) {
	h := need(t)
	withSubordinateIDs(t, h)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := h.command(ctx, opts{}, h.bin, "--fakeroot", "--name", "fakeroot-held", "run", "sh", "-c", "echo ready; exec sleep 30")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	if line, err := bufio.NewReader(out).ReadString('\n'); line != "ready\n" {
		t.Fatalf("the command did not start: %q, %v", line, err)
	}
	// The drop follows the mapping by microseconds; allow it a moment.
	want := fmt.Sprintf("Uid:\t%d\t%d\t%d\t%d", h.user.uid, h.user.uid, h.user.uid, h.user.uid)
	var got string
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
		if err != nil {
			t.Fatal(err)
		}
		got = ""
		for _, line := range strings.Split(string(st), "\n") {
			if strings.HasPrefix(line, "Uid:") || strings.HasPrefix(line, "CapEff:") {
				got += line + "\n"
			}
		}
		if got == want+"\nCapEff:\t0000000000000000\n" {
			break
		}
	}
	if got != want+"\nCapEff:\t0000000000000000\n" {
		t.Errorf("the outer --fakeroot process keeps root:\n%swant %s and no capability", got, want)
	}
	// The launcher holds the instance's name while its copy runs.
	for _, args := range [][]string{{"--name", "fakeroot-held", "run", "true"}, {"--fakeroot", "--name", "fakeroot-held", "run", "true"}} {
		if r := h.sd(t, args...); r.code != 124 || !strings.Contains(r.stderr, "running instance of that name") {
			t.Errorf("a second instance took a --fakeroot instance's name:\n%v", r)
		}
	}
}
