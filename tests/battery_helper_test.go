package tests

// Helpers of the attack battery (battery_test.go): running things as
// sdtest, installing the helper program (battery_prog_test.go), building C
// helpers, a pseudo-terminal, a policy-hooked second selfdock, and snapshots
// of the host's state.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// ---- running things as sdtest, without failing the test from a goroutine ----

// markEnv is set in the environment of every process the battery starts
// (selfdock passes it on to the command), so that the host checks look at
// this run's processes only: other test runs may use sdtest at the same time.
func (h *harness) markEnv() string { return "SD_BATTERY_FIX=" + h.fix }

// mark adds markEnv to o.
func (h *harness) mark(o opts) opts {
	o.env = append(append([]string{}, o.env...), h.markEnv())
	return o
}

// sdb is h.sd with markEnv.
func (h *harness) sdb(t testing.TB, args ...string) res {
	t.Helper()
	return h.exec(t, h.mark(opts{}), h.bin, args...)
}

// try runs path args as the test user like h.exec, but returns an error for
// a hang or a failed start instead of failing the test, so that it can run
// in goroutines.
func (h *harness) try(o opts, path string, args ...string) (res, error) {
	if o.timeout == 0 {
		o.timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	return runCmd(ctx, h.command(ctx, h.mark(o), path, args...))
}

// runCmd runs a prepared command, collecting its output unless the caller
// set Stdout/Stderr already.
func runCmd(ctx context.Context, cmd *exec.Cmd) (res, error) {
	var stdout, stderr bytes.Buffer
	if cmd.Stdout == nil {
		cmd.Stdout = &stdout
	}
	if cmd.Stderr == nil {
		cmd.Stderr = &stderr
	}
	start := time.Now()
	err := cmd.Run()
	r := res{cmd: describe(cmd.Path, cmd.Args[1:]), stdout: stdout.String(), stderr: stderr.String(), dur: time.Since(start)}
	if ctx.Err() != nil {
		return r, fmt.Errorf("timed out after %v (a hang):\n%v", r.dur.Round(time.Millisecond), r)
	}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		ws := ee.Sys().(syscall.WaitStatus)
		if ws.Signaled() {
			r.code, r.sig = -1, ws.Signal()
		} else {
			r.code = ws.ExitStatus()
		}
	case err != nil:
		return r, err
	}
	return r, nil
}

// mustTry is try for the test goroutine.
func (h *harness) mustTry(t testing.TB, o opts, path string, args ...string) res {
	t.Helper()
	r, err := h.try(o, path, args...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// leaks fails the test if any of the secrets shows in r's output.
func leaks(t testing.TB, r res, what string, secrets ...string) bool {
	t.Helper()
	for _, s := range secrets {
		if s != "" && (strings.Contains(r.stdout, s) || strings.Contains(r.stderr, s)) {
			t.Errorf("%s leaked (%q seen):\n%v", what, clip(s), r)
			return true
		}
	}
	return false
}

// oneLineError: selfdock's own failure, exit 124, 126 or 127, with exactly
// one "selfdock: " line and no crash.
func oneLineError(r res) bool {
	if r.sig != 0 || (r.code != 124 && r.code != 126 && r.code != 127) {
		return false
	}
	n := 0
	for _, l := range strings.Split(strings.TrimRight(r.stderr, "\n"), "\n") {
		if strings.HasPrefix(l, "selfdock: ") {
			n++
		}
	}
	return n == 1 && !crashed(r)
}

// crashed tells whether r shows a Go panic, a runtime error or a fault.
func crashed(r res) bool {
	if r.sig != 0 || r.code == 2 {
		return true
	}
	for _, s := range []string{"panic:", "fatal error:", "goroutine ", "runtime: ", "SIGSEGV", "[signal "} {
		if strings.Contains(r.stderr, s) {
			return true
		}
	}
	return false
}

// ---- the helper program ----

var (
	helperOnce sync.Once
	helperPath string
	helperErr  error
)

// helper returns the path of this test binary, copied root-owned 0755 under
// the fixture so that sdtest (and the sandbox, which sees /var/tmp) may run
// it. Run it with helperEnv=1 and a mode as its first argument.
func (h *harness) helper(t testing.TB) string {
	t.Helper()
	helperOnce.Do(func() {
		self, err := os.Executable()
		if err != nil {
			helperErr = err
			return
		}
		dst := filepath.Join(h.fix, "bin", "battery-helper")
		in, err := os.Open(self)
		if err != nil {
			helperErr = err
			return
		}
		defer in.Close()
		out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
		if err != nil {
			helperErr = err
			return
		}
		if _, err = io.Copy(out, in); err == nil {
			err = out.Close()
		}
		if err == nil {
			err = chownMode(dst, 0o755, nil)
		}
		helperPath, helperErr = dst, err
	})
	if helperErr != nil {
		t.Fatalf("install the helper program: %v", helperErr)
	}
	return helperPath
}

// helperOpts adds helperEnv (and markEnv) to o.
func (h *harness) helperOpts(o opts) opts {
	o = h.mark(o)
	o.env = append(o.env, helperEnv+"=1")
	return o
}

// ---- C helpers ----

// buildCFlags compiles a C helper with gcc and extra flags; "" (and a log
// line) if that fails.
func buildCFlags(t testing.TB, dir, name, code string, flags ...string) string {
	t.Helper()
	src := filepath.Join(dir, name+".c")
	out := filepath.Join(dir, name)
	if _, err := os.Stat(out); err == nil {
		return out
	}
	if err := os.WriteFile(src, []byte(code), 0o644); err != nil {
		t.Logf("write %s: %v", src, err)
		return ""
	}
	args := append(append([]string{"-O1", "-Wall"}, flags...), "-o", out, src)
	if b, err := exec.Command("gcc", args...).CombinedOutput(); err != nil {
		t.Logf("gcc %s: %v\n%s", strings.Join(args, " "), err, b)
		return ""
	}
	return out
}

// ---- a pseudo-terminal ----

// openPty returns a fresh pty pair; the slave is owned by owner, as login
// would leave it.
func openPty(t testing.TB, owner *account) (master, slave *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		skipOrFail(t, "no pseudo-terminal: "+err.Error())
	}
	fd := int(master.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetUint32(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("ptsname: %v", err)
	}
	name := fmt.Sprintf("/dev/pts/%d", n)
	slave, err = os.OpenFile(name, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	if owner != nil {
		_ = os.Chown(name, owner.uid, owner.gid)
	}
	t.Cleanup(func() { master.Close(); slave.Close() })
	return master, slave
}

// ---- a second selfdock with its own policy file ----

var (
	polOnce sync.Once
	polBin  string // the hooked setuid binary
	polFile string // its policy file, fixed at build time
	polErr  error
)

// policyBinary builds and installs (setuid root, in its own 0755 directory)
// a selfdock whose policy file is policy/policy.toml under the fixture, set
// with the build-time hook, with the harness's other build flags.
func (h *harness) policyBinary(t testing.TB) (bin, file string) {
	t.Helper()
	polOnce.Do(func() {
		dir := filepath.Join(h.fix, "polbin")
		pdir := filepath.Join(h.fix, "policy")
		for _, d := range []string{dir, pdir} {
			if polErr = mkdirOwned(d, 0o755, nil); polErr != nil {
				return
			}
		}
		polFile = filepath.Join(pdir, "policy.toml")
		polBin = filepath.Join(dir, "selfdock")
		polErr = buildSetuid(polBin, "-X github.com/selfdock/selfdock/policy.Path="+polFile)
	})
	if polErr != nil {
		t.Fatalf("build the policy-hooked selfdock: %v", polErr)
	}
	return polBin, polFile
}

// ---- the host's state ----

// hostState is what an attack must not change: the host's mount table and
// the processes this run started (see markEnv).
type hostState struct {
	mounts []string
	procs  map[int]string
}

func (h *harness) hostNow() hostState {
	var mounts []string
	for _, l := range mountLines() {
		// Other test runs mount in their own fixtures (TestMapRecursive).
		f := strings.Fields(l)
		if len(f) > 2 && strings.HasPrefix(unescapeOctal(f[2]), "/var/tmp/selfdock-e2e-") &&
			!strings.HasPrefix(unescapeOctal(f[2]), h.fix) {
			continue
		}
		mounts = append(mounts, l)
	}
	return hostState{mounts: mounts, procs: markedProcs(h.markEnv())}
}

// sameHost fails the test if a mount appeared or went away, or a process of
// this run is alive that was not before (after a short grace for processes
// that are exiting). It kills nothing: it reports.
func (h *harness) sameHost(t testing.TB, before hostState) {
	t.Helper()
	after := h.hostNow()
	for deadline := time.Now().Add(3 * time.Second); len(newProcs(before.procs, after.procs)) > 0 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		after = h.hostNow()
	}
	if n, g := minus(after.mounts, before.mounts), minus(before.mounts, after.mounts); len(n) > 0 || len(g) > 0 {
		t.Errorf("host mount table changed:\nnew: %q\ngone: %q", n, g)
	}
	for pid, cmdline := range newProcs(before.procs, after.procs) {
		t.Errorf("process left on the host: pid %d %q", pid, cmdline)
	}
}

func newProcs(before, after map[int]string) map[int]string {
	out := map[int]string{}
	for pid, c := range after {
		if before[pid] != c {
			out[pid] = c
		}
	}
	return out
}

// markedProcs maps the live processes whose environment holds mark to
// their command lines.
func markedProcs(mark string) map[int]string {
	out := map[int]string{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		st, err := os.ReadFile("/proc/" + e.Name() + "/status")
		if err != nil || procState(st) == "Z" {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil || !bytes.Contains(env, []byte("\x00"+mark+"\x00")) && !bytes.HasPrefix(env, []byte(mark+"\x00")) {
			continue
		}
		cl, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		out[pid] = strings.ReplaceAll(strings.TrimRight(string(cl), "\x00"), "\x00", " ")
	}
	return out
}

func procState(status []byte) string {
	for _, l := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(l, "State:"); ok {
			return strings.TrimSpace(v)[:1]
		}
	}
	return ""
}

// fileSum is a file's SHA-256, or the error.
func fileSum(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return "error: " + err.Error()
	}
	defer f.Close()
	hs := sha256.New()
	if _, err := io.Copy(hs, f); err != nil {
		return "error: " + err.Error()
	}
	return hex.EncodeToString(hs.Sum(nil))
}

// symlinkAs makes a symbolic link owned by owner.
func symlinkAs(t testing.TB, target, link string, owner *account) string {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(link, owner.uid, owner.gid); err != nil {
		t.Fatal(err)
	}
	return link
}

// sortedKeys lists a map's keys in order, for stable messages.
func sortedKeys[V any](m map[string]V) []string {
	var k []string
	for s := range m {
		k = append(k, s)
	}
	sort.Strings(k)
	return k
}
