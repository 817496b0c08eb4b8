package tests

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ---- running commands as the test user ----

type opts struct {
	as      *account      // default sdtest
	dir     string        // working directory; default h.home
	stdin   string        // default: empty (/dev/null)
	env     []string      // added to (and overriding) the base environment
	timeout time.Duration // default 30s
}

type res struct {
	cmd    string
	stdout string
	stderr string
	code   int            // exit status; -1 when killed by a signal
	sig    syscall.Signal // the signal that killed the process, if any
	dur    time.Duration
}

func (r res) String() string {
	s := fmt.Sprintf("command: %s\nexit: %d", r.cmd, r.code)
	if r.sig != 0 {
		s += fmt.Sprintf(" (killed by %v)", r.sig)
	}
	return s + fmt.Sprintf("\nstdout: %q\nstderr: %q", clip(r.stdout), clip(r.stderr))
}

func clip(s string) string {
	if len(s) > 2000 {
		return s[:2000] + "...(clipped)"
	}
	return s
}

// out is trimmed stdout.
func (r res) out() string { return strings.TrimSpace(r.stdout) }

func (h *harness) baseEnv(a *account, dir string) []string {
	return []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:" + filepath.Dir(h.bin),
		"HOME=" + dir, "USER=" + a.name, "LOGNAME=" + a.name, "LC_ALL=C", "LANG=C",
	}
}

func mergeEnv(base, extra []string) []string {
	out := append([]string{}, base...)
	for _, kv := range extra {
		k, _, _ := strings.Cut(kv, "=")
		for i := range out {
			if strings.HasPrefix(out[i], k+"=") {
				out = append(out[:i], out[i+1:]...)
				break
			}
		}
		out = append(out, kv)
	}
	return out
}

// command prepares path args as the test user, in its own process group so
// that a time-out can kill everything it started and nothing else.
func (h *harness) command(ctx context.Context, o opts, path string, args ...string) *exec.Cmd {
	a := o.as
	if a == nil {
		a = &h.user
	}
	if o.dir == "" {
		o.dir = h.home
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Dir = o.dir
	cmd.Env = mergeEnv(h.baseEnv(a, o.dir), o.env)
	cmd.Stdin = strings.NewReader(o.stdin)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: uint32(a.uid), Gid: uint32(a.gid), Groups: a.groups},
		Setpgid:    true,
	}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// exec runs path args as the test user and returns what it printed and its status.
func (h *harness) exec(t testing.TB, o opts, path string, args ...string) res {
	t.Helper()
	if o.timeout == 0 {
		o.timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	cmd := h.command(ctx, o, path, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	r := res{cmd: describe(path, args), stdout: stdout.String(), stderr: stderr.String(), dur: time.Since(start)}
	if ctx.Err() != nil {
		t.Fatalf("timed out after %v (a hang):\n%v", o.timeout, r)
	}
	r.code, r.sig = status(t, err, r)
	return r
}

func status(t testing.TB, err error, r res) (int, syscall.Signal) {
	t.Helper()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		ws := ee.Sys().(syscall.WaitStatus)
		if ws.Signaled() {
			return -1, ws.Signal()
		}
		return ws.ExitStatus(), 0
	}
	if err != nil {
		t.Fatalf("cannot run: %v\n%v", err, r)
	}
	return 0, 0
}

func describe(path string, args []string) string {
	if path == h.bin {
		path = "selfdock"
	}
	s := strings.Join(append([]string{path}, args...), " ")
	if len(s) > 400 {
		s = s[:400] + fmt.Sprintf("...(%d bytes)", len(s))
	}
	return s
}

// sd runs selfdock args as sdtest in h.home.
func (h *harness) sd(t testing.TB, args ...string) res {
	t.Helper()
	return h.exec(t, opts{}, h.bin, args...)
}

// sdo runs selfdock args with options.
func (h *harness) sdo(t testing.TB, o opts, args ...string) res {
	t.Helper()
	return h.exec(t, o, h.bin, args...)
}

// ---- assertions ----

func wantCode(t testing.TB, r res, code int) bool {
	t.Helper()
	if r.code != code || r.sig != 0 {
		t.Errorf("want exit %d, got:\n%v", code, r)
		return false
	}
	return true
}

func wantOut(t testing.TB, r res, want string) {
	t.Helper()
	if wantCode(t, r, 0) && r.out() != want {
		t.Errorf("want stdout %q, got:\n%v", want, r)
	}
}

// wantRefused: selfdock's own failure with a one-line "selfdock: " message.
func wantRefused(t testing.TB, r res, code int) {
	t.Helper()
	if !wantCode(t, r, code) {
		return
	}
	msg := strings.TrimRight(r.stderr, "\n")
	if !strings.HasPrefix(msg, "selfdock: ") || strings.Contains(msg, "\n") {
		t.Errorf("want one stderr line starting %q, got:\n%v", "selfdock: ", r)
	}
	noCrash(t, r)
}

// wantUsage: bad usage exits 124 and says so on a line starting "selfdock: "
// (a usage summary may follow).
func wantUsage(t testing.TB, r res) {
	t.Helper()
	if !wantCode(t, r, 124) {
		return
	}
	if !hasLinePrefix(r.stderr, "selfdock: ") {
		t.Errorf("want a stderr line starting %q, got:\n%v", "selfdock: ", r)
	}
	noCrash(t, r)
}

func hasLinePrefix(s, prefix string) bool {
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			return true
		}
	}
	return false
}

func noCrash(t testing.TB, r res) {
	t.Helper()
	if r.sig != 0 || r.code == 2 || strings.Contains(r.stderr, "panic") ||
		strings.Contains(r.stderr, "goroutine ") || strings.Contains(r.stderr, "SIGSEGV") {
		t.Errorf("selfdock crashed:\n%v", r)
	}
}

// wantFail: the command inside failed (any non-zero status) and said errText.
func wantFail(t testing.TB, r res, errText string) {
	t.Helper()
	if r.code == 0 || r.sig != 0 {
		t.Errorf("want failure with %q, got:\n%v", errText, r)
		return
	}
	if errText != "" && !strings.Contains(r.stderr, errText) {
		t.Errorf("want stderr containing %q, got:\n%v", errText, r)
	}
}

// started is a selfdock (or other) process running in the background.
type started struct {
	cmd            *exec.Cmd
	stdout, stderr *bytes.Buffer
	cancel         context.CancelFunc
	ctx            context.Context
	begin          time.Time
}

// start runs path args as the test user without waiting; the test's clean-up
// kills its process group if it is still running.
func (h *harness) start(t testing.TB, o opts, path string, args ...string) *started {
	t.Helper()
	if o.timeout == 0 {
		o.timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	s := &started{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}, cancel: cancel, ctx: ctx}
	s.cmd = h.command(ctx, o, path, args...)
	s.cmd.Stdout, s.cmd.Stderr = s.stdout, s.stderr
	s.begin = time.Now()
	if err := s.cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start %s: %v", describe(path, args), err)
	}
	t.Cleanup(func() {
		if s.cmd.ProcessState == nil {
			_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
			_ = s.cmd.Wait()
		}
		cancel()
	})
	return s
}

// wait waits for the started process and returns its result.
func (s *started) wait(t testing.TB) res {
	t.Helper()
	err := s.cmd.Wait()
	r := res{cmd: describe(s.cmd.Path, s.cmd.Args[1:]), stdout: s.stdout.String(), stderr: s.stderr.String(),
		dur: time.Since(s.begin)}
	if s.ctx.Err() != nil {
		t.Fatalf("timed out (a hang):\n%v", r)
	}
	r.code, r.sig = status(t, err, r)
	return r
}
