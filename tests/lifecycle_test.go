package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A signal to selfdock ends CMD (PID 1 ignores signals it has no handler
// for, so selfdock must end the instance) and selfdock exits 128+N.
func TestSignals(t *testing.T) {
	h := need(t)
	for _, tc := range []struct {
		sig  syscall.Signal
		code int
	}{
		{syscall.SIGTERM, 143}, {syscall.SIGINT, 130}, {syscall.SIGHUP, 129}, {syscall.SIGQUIT, 131},
	} {
		t.Run(tc.sig.String(), func(t *testing.T) {
			t.Parallel()
			arg := sleepArg(100)
			s := h.start(t, opts{}, h.bin, "run", "sleep", arg)
			if len(waitProcs(10*time.Second, "sleep", arg)) == 0 {
				t.Fatalf("sleep %s never started:\n%v", arg, s.wait(t))
			}
			sent := time.Now()
			if err := s.cmd.Process.Signal(tc.sig); err != nil {
				t.Fatal(err)
			}
			r := s.wait(t)
			if r.sig != 0 {
				t.Errorf("selfdock died of %v itself instead of exiting %d:\n%v", r.sig, tc.code, r)
			} else {
				wantCode(t, r, tc.code)
			}
			if d := time.Since(sent); d > 5*time.Second {
				t.Errorf("selfdock took %v to end after %v", d, tc.sig)
			}
			noCrash(t, r)
			wantNoProcs(t, "sleep", arg)
		})
	}
}

// A CMD that handles the signal gets it, and its own status passes through.
func TestSignalForwarded(t *testing.T) {
	h := need(t)
	tick := sleepArg(0) // "0.<marker>": a short sleep we can recognise
	script := `trap "exit 3" TERM; while :; do sleep ` + tick + `; done`
	s := h.start(t, opts{}, h.bin, "run", "sh", "-c", script)
	if len(waitProcs(10*time.Second, "sleep", tick)) == 0 {
		t.Fatalf("the loop never started:\n%v", s.wait(t))
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	r := s.wait(t)
	wantCode(t, r, 3)
}

// kill -9 of selfdock leaves nothing running (CMD has a parent-death signal).
func TestKillSelfdock(t *testing.T) {
	h := need(t)
	arg := sleepArg(100)
	s := h.start(t, opts{}, h.bin, "run", "sh", "-c", "sleep "+arg+"; true")
	if len(waitProcs(10*time.Second, "sleep", arg)) == 0 {
		t.Fatalf("sleep never started:\n%v", s.wait(t))
	}
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	s.wait(t)
	deadline := time.Now().Add(3 * time.Second)
	for len(procsWithArgv("sleep", arg)) > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	wantNoProcs(t, "sleep", arg)
}

// When CMD exits, every process of the instance is gone at once.
func TestNoProcessLeft(t *testing.T) {
	h := need(t)
	a1, a2, a3 := sleepArg(1000), sleepArg(1000), sleepArg(1000)
	r := h.sd(t, "run", "sh", "-c", "sleep "+a1+" & exit 0")
	wantCode(t, r, 0)
	if r.dur > 4*time.Second {
		t.Errorf("selfdock returned only after %v: a background child kept it (or stdout) alive", r.dur)
	}
	wantNoProcs(t, "sleep", a1)
	// Double fork into a new session, and a child that ignores SIGHUP/TERM.
	wantCode(t, h.sd(t, "run", "sh", "-c", "(setsid sleep "+a2+" &); trap '' HUP TERM; (sleep "+a3+" &); exit 0"), 0)
	wantNoProcs(t, "sleep", a2)
	wantNoProcs(t, "sleep", a3)
}

// A host process of the same user is out of the sandbox's reach.
func TestHostProcessesUnreachable(t *testing.T) {
	h := need(t)
	arg := sleepArg(100)
	s := h.start(t, opts{}, "/bin/sleep", arg)
	pid := s.cmd.Process.Pid
	if len(waitProcs(5*time.Second, "/bin/sleep", arg)) == 0 {
		t.Fatalf("host sleep %s did not start", arg)
	}
	wantFail(t, h.sd(t, "run", "kill", "-KILL", strconv.Itoa(pid)), "No such process")
	time.Sleep(50 * time.Millisecond)
	if len(procsWithArgv("/bin/sleep", arg)) == 0 {
		t.Errorf("a process inside the sandbox killed host process %d", pid)
	}
}

// Nothing is left behind: mounts, files in /tmp and /var/tmp.
func TestNoLeftovers(t *testing.T) {
	h := need(t)
	mountsBefore := mountLines()
	tmpBefore, varBefore := dirEntries(t, "/tmp"), dirEntries(t, "/var/tmp")
	start := time.Now()
	loop := fmt.Sprintf("for i in $(seq 1000); do %s run true || exit 1; done", h.bin)
	r := h.exec(t, opts{timeout: 150 * time.Second}, "/bin/sh", "-c", loop)
	wantCode(t, r, 0)
	t.Logf("1000 runs of `selfdock run true`: %v (%.2f ms each)", time.Since(start),
		float64(time.Since(start).Microseconds())/1000/1000)
	if after := mountLines(); len(after) != len(mountsBefore) {
		t.Errorf("host mount table changed: %d mounts before, %d after\nnew: %q\ngone: %q",
			len(mountsBefore), len(after), minus(after, mountsBefore), minus(mountsBefore, after))
	}
	for _, d := range []struct {
		dir    string
		before map[string]string
	}{{"/tmp", tmpBefore}, {"/var/tmp", varBefore}} {
		for name, owner := range dirEntries(t, d.dir) {
			if _, ok := d.before[name]; !ok && leftover(name, owner) {
				t.Errorf("left in %s: %s (owner %s)", d.dir, name, owner)
			}
		}
	}
}

func mountLines() []string {
	var out []string
	for _, m := range readMountinfo(nil) {
		f := strings.Fields(m.line)
		out = append(out, strings.Join(f[2:], " ")) // without the mount ids
	}
	sort.Strings(out)
	return out
}

func minus(a, b []string) []string {
	seen := map[string]int{}
	for _, s := range b {
		seen[s]++
	}
	var out []string
	for _, s := range a {
		if seen[s] > 0 {
			seen[s]--
			continue
		}
		out = append(out, s)
	}
	return out
}

// dirEntries maps the names in dir to their owner uid.
func dirEntries(t *testing.T, dir string) map[string]string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, e := range ents {
		owner := "?"
		if fi, err := e.Info(); err == nil {
			owner = strconv.Itoa(fileUID(fi))
		}
		m[e.Name()] = owner
	}
	return m
}

// leftover tells whether a new entry in /tmp or /var/tmp can be the
// sandbox's: other tools (go build, this harness, other test runs) work
// there concurrently on this machine.
func leftover(name, owner string) bool {
	for _, p := range []string{"go-build", "go-link", "gopls", "bash_tool_", "bash_jobs", "selfdock-e2e-", "selfdock-bench", "Test"} {
		if strings.HasPrefix(name, p) {
			return false
		}
	}
	return owner == strconv.Itoa(h.user.uid) || strings.Contains(name, "selfdock") || owner == "0"
}

// A huge argument list runs or fails clearly; never a crash.
func TestHugeArgs(t *testing.T) {
	h := need(t)
	many := make([]string, 100000)
	for i := range many {
		many[i] = "x"
	}
	long := make([]string, 8) // 8 x 128 KiB: 1 MiB, each at the kernel's per-string limit
	for i := range long {
		long[i] = strings.Repeat("y", 128*1024-1)
	}
	envs := []string{}
	for i := 0; i < 5000; i++ {
		envs = append(envs, "-e", fmt.Sprintf("SD_V%d", i), strconv.Itoa(i))
	}
	maps := []string{}
	for i := 0; i < 300; i++ {
		maps = append(maps, "--map", "/etc", "/srv")
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"100k arguments", append([]string{"run", "sh", "-c", `echo $#`, "sh"}, many...), "100000"},
		{"1 MiB in 8 arguments", append([]string{"run", "sh", "-c", `echo $# ${#1}`, "sh"}, long...), "8 131071"},
		{"5000 -e options", append(envs, "run", "sh", "-c", "echo $SD_V4999"), "4999"},
		{"300 --map options", append(maps, "run", "cat", "/srv/hostname"), ""},
		{"128 KiB option value", []string{"-e", "SD_LONG", long[0], "run", "sh", "-c", `echo ${#SD_LONG}`}, "131071"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := h.sd(t, tc.args...)
			noCrash(t, r)
			switch {
			case r.code == 124 && hasLinePrefix(r.stderr, "selfdock: "):
				t.Logf("refused clearly: %s", strings.TrimSpace(r.stderr))
			case r.code == 0:
				if tc.want != "" && r.out() != tc.want {
					t.Errorf("want stdout %q, got:\n%v", tc.want, r)
				}
			default:
				t.Errorf("neither ran nor failed clearly:\n%v", r)
			}
		})
	}
}

// No file descriptor of the privileged parent reaches CMD.
func TestNoFdLeak(t *testing.T) {
	h := need(t)
	for _, args := range [][]string{
		{"run", "ls", "-l", "/proc/self/fd"},
		{"build", "ls", "-l", "/proc/self/fd"},
		{"--net", "-m", "/etc", "/srv", "-t", "size=1m", "/media", "run", "ls", "-l", "/proc/self/fd"},
		{"-r", h.busyboxRoot(t), "run", "/bin/busybox", "ls", "-l", "/proc/self/fd"},
	} {
		r := h.sd(t, args...)
		if !wantCode(t, r, 0) {
			continue
		}
		fds := map[int]string{}
		for _, l := range strings.Split(r.stdout, "\n") {
			f := strings.Fields(l)
			if len(f) < 3 || f[len(f)-2] != "->" {
				continue
			}
			n, err := strconv.Atoi(f[len(f)-3])
			if err == nil {
				fds[n] = f[len(f)-1]
			}
		}
		for _, n := range []int{0, 1, 2} {
			if _, ok := fds[n]; !ok {
				t.Errorf("%v: fd %d missing:\n%v", args, n, r)
			}
		}
		for n, target := range fds {
			if n <= 2 {
				continue
			}
			// ls's own fd for the directory it lists.
			if n == 3 && strings.HasPrefix(target, "/proc/") && filepath.Base(target) == "fd" {
				continue
			}
			t.Errorf("%v: leaked fd %d -> %s", args, n, target)
		}
	}
}
