package tests

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// ---- fixtures ----

func mkdirOwned(path string, mode os.FileMode, owner *account) error {
	if err := os.Mkdir(path, mode); err != nil {
		return err
	}
	return chownMode(path, mode, owner)
}

// chownMode sets owner (nil: root) and then mode, taken as a raw Unix mode
// (0o4755 is setuid): chown first, since it clears setuid bits.
func chownMode(path string, mode os.FileMode, owner *account) error {
	uid, gid := 0, 0
	if owner != nil {
		uid, gid = owner.uid, owner.gid
	}
	if err := os.Lchown(path, uid, gid); err != nil {
		return err
	}
	if err := syscall.Chmod(path, uint32(mode)); err != nil {
		return &os.PathError{Op: "chmod", Path: path, Err: err}
	}
	return nil
}

// dir makes a fresh directory for this test under the fixture root, owned
// by owner (nil: root) with mode.
func (h *harness) dir(t testing.TB, owner *account, mode os.FileMode) string {
	t.Helper()
	name := regexp.MustCompile(`[^A-Za-z0-9_.-]+`).ReplaceAllString(t.Name(), "_")
	d, err := os.MkdirTemp(filepath.Join(h.fix, "t"), name+"-")
	if err != nil {
		t.Fatal(err)
	}
	if err := chownMode(d, mode, owner); err != nil {
		t.Fatal(err)
	}
	return d
}

func mkdir(t testing.TB, path string, mode os.FileMode, owner *account) string {
	t.Helper()
	if err := mkdirOwned(path, mode, owner); err != nil {
		t.Fatal(err)
	}
	return path
}

func writeFile(t testing.TB, path, content string, mode os.FileMode, owner *account) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := chownMode(path, mode, owner); err != nil {
		t.Fatal(err)
	}
	return path
}

func copyFile(t testing.TB, src, dst string, mode os.FileMode, owner *account) string {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o700)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	if err := chownMode(dst, mode, owner); err != nil {
		t.Fatal(err)
	}
	return dst
}

// busybox returns the path of a static busybox, or skips.
func busybox(t testing.TB) string {
	t.Helper()
	const bb = "/bin/busybox"
	if _, err := os.Stat(bb); err != nil {
		skipOrFail(t, "no /bin/busybox (apt-get install busybox-static failed)")
	}
	return bb
}

// busyboxRoot builds a tiny root filesystem owned by sdtest: /bin/busybox,
// /bin/sh and the directories a sandbox mounts on.
func (h *harness) busyboxRoot(t testing.TB) string {
	t.Helper()
	bb := busybox(t)
	root := h.dir(t, &h.user, 0o755)
	for _, d := range []string{"bin", "proc", "dev", "tmp", "etc"} {
		mkdir(t, filepath.Join(root, d), 0o755, &h.user)
	}
	copyFile(t, bb, filepath.Join(root, "bin/busybox"), 0o755, &h.user)
	if err := os.Symlink("busybox", filepath.Join(root, "bin/sh")); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(filepath.Join(root, "bin/sh"), h.user.uid, h.user.gid); err != nil {
		t.Fatal(err)
	}
	return root
}

// snapshot records a directory tree (names, modes, sizes, owners, link
// targets) so that a test can show that the host did not change.
func snapshot(t testing.TB, root string) map[string]string {
	t.Helper()
	m := map[string]string{}
	_ = filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			m[p] = "error: " + err.Error()
			return nil
		}
		st := fi.Sys().(*syscall.Stat_t)
		v := fmt.Sprintf("%v %d %d:%d", fi.Mode(), fi.Size(), st.Uid, st.Gid)
		if fi.Mode()&os.ModeSymlink != 0 {
			l, _ := os.Readlink(p)
			v += " -> " + l
		}
		if fi.Mode().IsRegular() && fi.Size() < 4096 {
			b, _ := os.ReadFile(p)
			v += fmt.Sprintf(" %q", b)
		}
		m[p] = v
		return nil
	})
	return m
}

func sameSnapshot(t testing.TB, what string, before, after map[string]string) {
	t.Helper()
	for k, v := range after {
		if b, ok := before[k]; !ok {
			t.Errorf("host changed: %s: new %s (%s)", what, k, v)
		} else if b != v {
			t.Errorf("host changed: %s: %s was %s, now %s", what, k, b, v)
		}
	}
	for k := range before {
		if _, ok := after[k]; !ok {
			t.Errorf("host changed: %s: %s disappeared", what, k)
		}
	}
}

func mustNotExist(t testing.TB, path string) {
	t.Helper()
	if _, err := os.Lstat(path); err == nil {
		t.Errorf("host changed: %s exists", path)
		_ = os.RemoveAll(path)
	}
}

// uniq returns a name no other run uses.
func uniq(prefix string) string {
	return fmt.Sprintf("%s%d-%d", prefix, os.Getpid(), time.Now().UnixNano()%1e9)
}

// ---- processes ----

// procsWithArgv lists the host processes whose argv is exactly argv. Tests
// make argv unique (a marker), so these are processes the test started.
func procsWithArgv(argv ...string) []int {
	want := strings.Join(argv, "\x00") + "\x00"
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || string(b) != want {
			continue
		}
		if st, _ := os.ReadFile("/proc/" + e.Name() + "/stat"); isZombie(st) {
			continue
		}
		pids = append(pids, pid)
	}
	return pids
}

func isZombie(stat []byte) bool {
	i := bytes.LastIndexByte(stat, ')')
	return i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z'
}

// waitProcs polls until a process with argv exists, or timeout.
func waitProcs(timeout time.Duration, argv ...string) []int {
	deadline := time.Now().Add(timeout)
	for {
		if p := procsWithArgv(argv...); len(p) > 0 || time.Now().After(deadline) {
			return p
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// wantNoProcs fails if a process with the (unique) argv is still alive, and
// kills it: it is one the test started.
func wantNoProcs(t testing.TB, argv ...string) {
	t.Helper()
	if pids := procsWithArgv(argv...); len(pids) > 0 {
		t.Errorf("left running after selfdock exited: %q pids %v", argv, pids)
		for _, p := range pids {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
	}
}

var markers atomic.Int64

// sleepArg is a unique `sleep` argument: seconds with a fractional marker.
func sleepArg(secs int) string {
	return fmt.Sprintf("%d.%d%04d", secs, os.Getpid(), markers.Add(1))
}
