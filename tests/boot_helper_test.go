package tests

import (
	"archive/tar"
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/selfdock/selfdock/tests/internal/testimage"
)

// root runs commands as the real root, which boot requires.
var root = account{name: "root"}

// bootImage is a busybox rootfs tarball with a marker file, made once.
func (h *harness) bootImage(t *testing.T) string {
	t.Helper()
	p := filepath.Join(h.fix, "boot-busybox.tar")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	if err := testimage.Busybox(p, map[string]string{"/etc/boot-marker": "IMAGE-ROOT-OK\n"}); err != nil {
		t.Fatal(err)
	}
	return p
}

// fakeInit is a fake init running as PID 1 of its own PID and mount
// namespaces, started by the test (so the test may kill it).
type fakeInit struct {
	pid   int    // its pid here, outside
	child int    // the child it started (sleep 1000), outside
	inner string // that child's pid inside
	out   *os.File
	cmd   *exec.Cmd
}

func (h *harness) startFakeInit(t *testing.T, mode string) *fakeInit {
	t.Helper()
	return h.startFakeInitIn(t, mode, nil)
}

// startFakeInitIn starts a fake init whose standard input is stdin.
func (h *harness) startFakeInitIn(t *testing.T, mode string, stdin io.Reader) *fakeInit {
	t.Helper()
	bin := buildC(filepath.Join(h.fix, "bin"), "fakeinit", fakeinitC)
	if bin == "" {
		t.Fatal("cannot build the fake init (gcc)")
	}
	out, err := os.CreateTemp(t.TempDir(), "fakeinit")
	if err != nil {
		t.Fatal(err)
	}
	// A /run of its own too: a mount namespace has its own mounts, not
	// its own files, and boot writes under /run.
	cmd := exec.Command("unshare", "--pid", "--mount", "--fork", "--mount-proc",
		"sh", "-c", `mount -t tmpfs boot-test-run /run && exec "$0" "$@"`, bin, mode)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f := &fakeInit{out: out, cmd: cmd}
	t.Cleanup(f.stop)
	deadline := time.Now().Add(10 * time.Second)
	for f.pid == 0 || f.child == 0 || !strings.Contains(f.output(), "fakeinit ready") {
		if time.Now().After(deadline) {
			t.Fatalf("fake init did not start: %q", f.output())
		}
		time.Sleep(10 * time.Millisecond)
		f.pid = firstChild(cmd.Process.Pid)
		if f.pid != 0 {
			f.child = firstChild(f.pid)
		}
	}
	f.inner = strings.Fields(strings.SplitN(f.output(), "child=", 2)[1])[0]
	return f
}

// stop kills the namespace (SIGKILL to its PID 1, which we started).
func (f *fakeInit) stop() {
	if f.pid != 0 {
		_ = syscall.Kill(f.pid, syscall.SIGKILL)
	}
	_ = f.cmd.Wait()
}

// want waits for the fake init to print marker; it fails with msg if it
// does not.
func (f *fakeInit) want(t *testing.T, marker, msg string) {
	t.Helper()
	if !waitFor(5*time.Second, func() bool { return strings.Contains(f.output(), marker) }) {
		t.Fatalf("%s: %q", msg, f.output())
	}
}

// stillReaps ends the fake init's child and waits for the fake init to
// report that it reaped it.
func (f *fakeInit) stillReaps(t *testing.T) {
	t.Helper()
	_ = syscall.Kill(f.child, syscall.SIGTERM)
	f.want(t, "fakeinit reaped "+f.inner, "the fake init no longer reaps")
}

func (f *fakeInit) output() string {
	b, _ := os.ReadFile(f.out.Name())
	return string(b)
}

// boot runs selfdock boot args inside the fake init's namespaces, as root.
func (h *harness) boot(t *testing.T, f *fakeInit, args ...string) res {
	t.Helper()
	a := append([]string{"-t", strconv.Itoa(f.pid), "-p", "-m", h.bin, "boot"}, args...)
	return h.exec(t, opts{as: &root, dir: "/"}, "nsenter", a...)
}

func firstChild(pid int) int {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/task/" + strconv.Itoa(pid) + "/children")
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	n, _ := strconv.Atoi(f[0])
	return n
}

func procFile(pid int, name string) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/" + name)
	return string(b)
}

func alive(pid int) bool {
	return syscall.Kill(pid, 0) == nil && !isZombie([]byte(procFile(pid, "stat")))
}

// waitFor polls cond for up to d.
func waitFor(d time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

func lines(s string) []string {
	var l []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		l = append(l, sc.Text())
	}
	return l
}

// checkBooted checks what CMD printed as the new PID 1 of f's namespace:
// the image's root, PID 1, no other process, nothing of the old /run, no
// signal blocked or ignored; and that the old system's process is gone.
func checkBooted(t *testing.T, f *fakeInit) {
	t.Helper()
	out := f.output()
	for _, want := range []string{"PID 1 is selfdock boot-init now", "IMAGE-ROOT-OK", "pid=1",
		"no console switch, no swapoff", "SigBlk:\t0000000000000000", "SigIgn:\t0000000000000000"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	var procs []string
	for _, l := range lines(out) {
		if p, ok := strings.CutPrefix(l, "proc="); ok {
			procs = append(procs, p)
		}
	}
	if strings.Join(procs, ",") != "1" {
		t.Errorf("processes left in the namespace %q, want only 1; output:\n%s", procs, out)
	}
	if slices.Contains(lines(out), "OLD-RUN-VISIBLE") {
		t.Errorf("the old /run is visible in the new root:\n%s", out)
	}
	if alive(f.child) {
		t.Errorf("the old system's process %d is still alive", f.child)
	}
}

// noBootLeft checks that no prepared root stays mounted in the mount
// namespace of pid, and, unless dirsStay, nothing under /run/selfdock. (After
// a successful boot of a namespace's init, the empty directories stay: see
// boot.Release.)
func (h *harness) noBootLeft(t *testing.T, pid int, dirsStay bool) {
	t.Helper()
	if mi := procFile(pid, "mountinfo"); mi == "" || strings.Contains(mi, "selfdock-boot") {
		t.Errorf("a prepared root stays mounted in the namespace of %d:\n%s", pid, mi)
	}
	var left []string
	base := "/proc/" + strconv.Itoa(pid) + "/root"
	_ = filepath.WalkDir(base+"/run/selfdock", func(p string, _ fs.DirEntry, err error) error {
		if err == nil {
			left = append(left, strings.TrimPrefix(p, base))
		}
		return nil
	})
	want := ""
	if dirsStay {
		want = "/run/selfdock /run/selfdock/boot /run/selfdock/boot/root"
	}
	if got := strings.Join(left, " "); got != want && got != "" {
		t.Errorf("boot left files behind: %s", got)
	}
}

// readAll reads a pty master until the slave side is gone (EIO).
func readAll(master *os.File) string {
	var b strings.Builder
	buf := make([]byte, 4096)
	_ = master.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		n, err := master.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String()
		}
	}
}

// dockerSave writes at out a docker save archive (the format of docker
// before 25) of one layer, the tarball layer, with an entrypoint and cmd.
func dockerSave(t *testing.T, layer, out string, entrypoint, cmd []string) string {
	t.Helper()
	data, err := os.ReadFile(layer)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	config, _ := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux",
		"config": map[string]any{"Entrypoint": entrypoint, "Cmd": cmd, "Env": []string{"PATH=/bin"}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{"sha256:" + hex.EncodeToString(sum[:])}},
	})
	manifest, _ := json.Marshal([]map[string]any{{"Config": "config.json", "RepoTags": []string{"bb:latest"}, "Layers": []string{"layer/layer.tar"}}})
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	for _, e := range []struct {
		name string
		b    []byte
	}{{"manifest.json", manifest}, {"config.json", config}, {"layer/layer.tar", data}} {
		if err := tw.WriteHeader(&tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.b)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.b); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return out
}
