package tests

// The attack battery: one test per attack class of SECURITY.md, each run as
// sdtest against the installed setuid binary. Each asserts that the attack
// fails and that the host did not change (files, the host's mount table,
// processes). Helpers are in battery_helper_test.go.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// secretDir is a 0700 root directory: a file whose name and content are
// unique markers, and the same file in a 0755 subdirectory "sub".
type secretDir struct{ dir, name, content string }

func (h *harness) rootOnly(t testing.TB) secretDir {
	t.Helper()
	s := secretDir{
		dir:     h.dir(t, nil, 0o700),
		name:    fmt.Sprintf("%s%d", uniq("hidden-name-"), markers.Add(1)),
		content: fmt.Sprintf("%s%d", uniq("hidden-content-"), markers.Add(1)),
	}
	writeFile(t, filepath.Join(s.dir, s.name), s.content+"\n", 0o644, nil)
	sub := mkdir(t, filepath.Join(s.dir, "sub"), 0o755, nil)
	writeFile(t, filepath.Join(sub, s.name), s.content+"\n", 0o644, nil)
	return s
}

// leaksSecret fails if r shows the secret's content anywhere or its name on
// stdout (a listing), or a line of /etc/shadow.
func leaksSecret(t testing.TB, r res, s secretDir, shadow []string) bool {
	t.Helper()
	if strings.Contains(r.stdout, s.name) {
		t.Errorf("a root-only directory was listed (%s):\n%v", s.name, r)
		return true
	}
	return leaks(t, r, "root-only content", s.content) || leaks(t, r, "/etc/shadow", shadow...)
}

// 1. A symlink owned by sdtest as --map, --vol or --rootfs source, pointing
// at root-only files or directories.
func TestAttackSymlinkSource(t *testing.T) {
	h := need(t)
	shadow := shadowLines(t)
	ro := h.rootOnly(t)
	u := h.dir(t, &h.user, 0o755)
	rel, err := filepath.Rel(u, ro.dir)
	if err != nil {
		t.Fatal(err)
	}
	links := map[string]string{
		"root":    "/root",
		"shadow":  "/etc/shadow",
		"dir":     ro.dir,
		"file":    filepath.Join(ro.dir, ro.name),
		"sub":     filepath.Join(ro.dir, "sub"),
		"rel":     rel,
		"reldeep": strings.Repeat("../", 16) + "root",
		"chain":   "file",
		"magic":   "/proc/self/root" + ro.dir,
	}
	var sources []string
	for _, name := range sortedKeys(links) {
		sources = append(sources, symlinkAs(t, links[name], filepath.Join(u, name), &h.user))
	}
	// Symlinks in the middle of the path, too.
	sources = append(sources, filepath.Join(u, "dir", ro.name), filepath.Join(u, "dir/sub"), filepath.Join(u, "rel/sub"),
		filepath.Join(u, "root/.bashrc"))
	before := h.hostNow()
	snaps := map[string]map[string]string{ro.dir: snapshot(t, ro.dir), u: snapshot(t, u)}
	show := "cat /tmp/x; ls -la /tmp/x; cat /tmp/x/* /tmp/x/sub/*"
	for _, src := range sources {
		r := h.sdb(t, "--map", src, "/tmp/x", "run", "sh", "-c", show)
		noCrash(t, r)
		if !leaksSecret(t, r, ro, shadow) && r.code == 0 {
			t.Errorf("--map %s: every read succeeded:\n%v", src, r)
		}
		r = h.sdb(t, "--vol", src, "/tmp/x", "run", "sh", "-c", show+"; echo pwned > /tmp/x/pwned")
		wantRefused(t, r, 124)
		leaksSecret(t, r, ro, shadow)
		for _, sub := range []string{"run", "build"} {
			r = h.sdb(t, "--rootfs", src, sub, "/bin/busybox", "sh", "-c", "cat /"+ro.name+" /sub/"+ro.name+" /shadow; ls /")
			noCrash(t, r)
			if !leaksSecret(t, r, ro, shadow) && r.code == 0 {
				t.Errorf("--rootfs %s %s: succeeded:\n%v", src, sub, r)
			}
		}
	}
	for d, s := range snaps {
		sameSnapshot(t, d, s, snapshot(t, d))
	}
	h.sameHost(t, before)
}

// 2. Mount destinations in a user-owned rootfs that are symlinks pointing
// out of it: every mount lands inside the rootfs, never on the host.
func TestAttackSymlinkDestination(t *testing.T) {
	h := need(t)
	root := h.busyboxRoot(t)
	writeFile(t, filepath.Join(root, "etc/rootfs-etc"), "rootfs etc\n", 0o644, &h.user)
	mkdir(t, filepath.Join(root, "srv"), 0o755, &h.user)
	src := h.dir(t, &h.user, 0o755)
	mapped := uniq("mapped-")
	writeFile(t, filepath.Join(src, "mapped"), mapped+"\n", 0o644, &h.user)
	before := h.hostNow()
	etc, rootEtc := snapshot(t, "/etc"), snapshot(t, filepath.Join(root, "etc"))
	srcSnap := snapshot(t, src)
	// point replaces rootfs dir d by a symlink to target; it returns a func
	// that puts the directory back.
	point := func(d, target string) func() {
		p := filepath.Join(root, d)
		if err := os.RemoveAll(p); err != nil {
			t.Fatal(err)
		}
		symlinkAs(t, target, p, &h.user)
		return func() { _ = os.Remove(p); mkdir(t, p, 0o755, &h.user) }
	}
	targets := []string{"/etc", "../../etc", "../../../../../../../../../etc", "/../etc"}
	// The sandbox's own /tmp, /proc and /dev.
	for _, d := range []string{"tmp", "proc", "dev"} {
		for _, target := range targets {
			restore := point(d, target)
			for _, sub := range []string{"run", "build"} {
				r := h.sdb(t, "-r", root, sub, "/bin/busybox", "sh", "-c", "cat /proc/self/mountinfo")
				noCrash(t, r)
				switch r.code {
				case 124:
					t.Logf("/%s -> %s %s: refused: %s", d, target, sub, strings.TrimSpace(r.stderr))
				case 0:
					if !hasMountAt(r.stdout, "/etc") {
						t.Errorf("/%s -> %s %s: no mount at the in-root /etc inside:\n%v", d, target, sub, r)
					}
				default:
					t.Errorf("/%s -> %s %s: want 0 or 124:\n%v", d, target, sub, r)
				}
			}
			restore()
		}
	}
	// --map, --vol and --tmpfs destinations.
	for _, target := range targets {
		restore := point("srv", target)
		for _, sub := range []string{"run", "build"} {
			r := h.sdb(t, "-r", root, "--map", src, "/srv", sub, "/bin/busybox", "cat", "/etc/mapped")
			if r.code != 124 {
				wantOut(t, r, mapped)
			}
		}
		_ = os.Remove(filepath.Join(src, "written"))
		r := h.sdb(t, "-r", root, "--vol", src, "/srv", "run", "/bin/busybox", "sh", "-c", "echo in > /etc/written")
		if wantCode(t, r, 0) {
			if b, _ := os.ReadFile(filepath.Join(src, "written")); string(b) != "in\n" {
				t.Errorf("/srv -> %s: the --vol did not land on the in-root /etc (src/written %q)", target, b)
			}
		}
		_ = os.Remove(filepath.Join(src, "written"))
		wantCode(t, h.sdb(t, "-r", root, "--tmpfs", "size=1m", "/srv", "run", "/bin/busybox", "sh", "-c", "echo t > /etc/t"), 0)
		r = h.sdb(t, "-r", root, "--map", src, "/srv/deeper", "run", "/bin/busybox", "true")
		noCrash(t, r)
		restore()
	}
	if m := mountsUnder(root); len(m) > 0 {
		t.Errorf("mounts on the host inside the rootfs: %v", m)
	}
	sameSnapshot(t, "/etc", etc, snapshot(t, "/etc"))
	sameSnapshot(t, "rootfs /etc", rootEtc, snapshot(t, filepath.Join(root, "etc")))
	sameSnapshot(t, "--vol source", srcSnap, snapshot(t, src))
	h.sameHost(t, before)
}

func hasMountAt(mountinfo, point string) bool {
	for _, m := range readMountinfo([]byte(mountinfo)) {
		if m.point == point {
			return true
		}
	}
	return false
}

// 3. Sources and rootfs destinations swapped between a directory and a
// symlink to root-only places while selfdock runs again and again.
func TestAttackSymlinkRace(t *testing.T) {
	h := need(t)
	helper := h.helper(t)
	shadow := shadowLines(t)
	ro := h.rootOnly(t)
	u := h.dir(t, &h.user, 0o755)
	benign := uniq("benign-")
	src := mkdir(t, filepath.Join(u, "src"), 0o755, &h.user)
	writeFile(t, filepath.Join(src, "benign"), benign+"\n", 0o644, &h.user)
	mkdir(t, filepath.Join(u, "dir2"), 0o755, &h.user)
	rfs := filepath.Join(u, "rfs")
	rfs2 := filepath.Join(u, "rfs2")
	for _, p := range []string{rfs, rfs2} {
		if err := os.Rename(h.busyboxRoot(t), p); err != nil {
			t.Fatal(err)
		}
	}
	mkdir(t, filepath.Join(rfs2, "srv"), 0o755, &h.user)
	pairs := [][2]string{
		{src, symlinkAs(t, filepath.Join(ro.dir, ro.name), filepath.Join(u, "srcalt"), &h.user)},
		{filepath.Join(u, "dir2"), symlinkAs(t, "/root", filepath.Join(u, "dir2alt"), &h.user)},
		{rfs, symlinkAs(t, ro.dir, filepath.Join(u, "rfsalt"), &h.user)},
		{filepath.Join(rfs2, "srv"), symlinkAs(t, "/etc", filepath.Join(rfs2, "srvalt"), &h.user)},
		{filepath.Join(rfs2, "tmp"), symlinkAs(t, "../../../../../../etc", filepath.Join(rfs2, "tmpalt"), &h.user)},
	}
	before := h.hostNow()
	etc, roSnap := snapshot(t, "/etc"), snapshot(t, ro.dir)
	args := []string{"swap", "3s"}
	for _, p := range pairs {
		args = append(args, p[0], p[1])
	}
	swapper := h.start(t, h.helperOpts(opts{timeout: 30 * time.Second}), helper, args...)
	runs := [][]string{
		{"--map", src, "/tmp/x", "run", "sh", "-c", "cat /tmp/x /tmp/x/* 2>&1; ls /tmp/x; exit 0"},
		{"--map", filepath.Join(u, "dir2"), "/tmp/y", "run", "sh", "-c", "ls -la /tmp/y; exit 0"},
		{"-r", rfs, "run", "/bin/busybox", "sh", "-c", "cat /" + ro.name + " /sub/" + ro.name + "; ls /; exit 0"},
		{"-r", rfs2, "--map", src, "/srv", "run", "/bin/busybox", "sh", "-c", "cat /srv/benign /srv; cat /proc/self/mountinfo"},
		{"--vol", src, "/tmp/v", "run", "sh", "-c", "cat /tmp/v/benign /tmp/v; echo w > /tmp/v/w; exit 0"},
		{"-r", rfs2, "--vol", src, "/srv", "build", "/bin/busybox", "sh", "-c", "echo w > /srv/w; ls /etc; exit 0"},
	}
	var mu sync.Mutex
	codes := map[int]int{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				r, err := h.try(opts{timeout: 20 * time.Second}, h.bin, runs[i%len(runs)]...)
				if err != nil {
					t.Error(err)
					return
				}
				noCrash(t, r)
				leaksSecret(t, r, ro, shadow)
				mu.Lock()
				codes[r.code]++
				mu.Unlock()
			}
		}(w)
	}
	r := swapper.wait(t)
	close(stop)
	wg.Wait()
	wantCode(t, r, 0)
	t.Logf("swapper: %s; selfdock exit codes: %v", r.out(), codes)
	if codes[0] == 0 {
		t.Errorf("no run succeeded: the race never had the benign side (codes %v)", codes)
	}
	for _, p := range []string{u, rfs, rfs2} {
		if m := mountsUnder(p); len(m) > 0 {
			t.Errorf("mounts on the host under %s: %v", p, m)
		}
	}
	sameSnapshot(t, "/etc", etc, snapshot(t, "/etc"))
	sameSnapshot(t, "root-only dir", roSnap, snapshot(t, ro.dir))
	// (Under build, a write to /srv while it is the symlink lands in the
	// rootfs's own /etc, which sdtest owns: allowed.)
	h.sameHost(t, before)
}

// 4. CVE-2019-5736 class: write the selfdock binary (or any program of the
// host) through /proc/self/exe, /proc/1/exe, /proc/PID/exe of selfdock
// outside, or of an inner selfdock seen from inside.
func TestAttackProcSelfExe(t *testing.T) {
	h := need(t)
	helper := h.helper(t)
	bb := busybox(t)
	sums := map[string]string{}
	for _, p := range []string{h.bin, helper, bb, "/usr/bin/dash", "/usr/bin/sleep", "/usr/bin/sh"} {
		sums[p] = fileSum(p)
	}
	before := h.hostNow()
	wantClosed := func(what string, r res, minTried int) {
		t.Helper()
		noCrash(t, r)
		if strings.Contains(r.stdout, "OPENED") {
			t.Errorf("%s: a program opened for writing:\n%v", what, r)
		}
		tried := -1
		for _, l := range strings.Split(r.stdout, "\n") {
			if v, ok := strings.CutPrefix(l, "tried "); ok {
				tried, _ = strconv.Atoi(v)
			}
		}
		if tried < minTried {
			t.Errorf("%s: tried %d paths, want at least %d:\n%v", what, tried, minTried, r)
		}
	}
	// From inside, with the shell: $$ of the wrapper is selfdock's pid outside.
	script := `n=0; for f in /proc/self/exe /proc/1/exe /proc/$OUTPID/exe /proc/[0-9]*/exe "$SDBIN"; do
		n=$((n+1)); (exec 3>>"$f") 2>/dev/null && echo "OPENED-APPEND $f"; (exec 3<>"$f") 2>/dev/null && echo "OPENED-RDWR $f"
	done; echo "tried $n"`
	for _, sub := range []string{"run", "build"} {
		r := h.exec(t, h.mark(opts{}), "/bin/sh", "-c", `exec "$0" -e OUTPID "$$" -e SDBIN "$0" `+sub+` sh -c "$1"`, h.bin, script)
		wantClosed("shell inside, "+sub, r, 4)
	}
	// From inside, with the helper: direct opens and reopening an O_PATH
	// descriptor through /proc/self/fd.
	r := h.exec(t, h.helperOpts(opts{}), "/bin/sh", "-c",
		`exec "$0" run "$1" openw --all --append /proc/self/exe /proc/1/exe "/proc/$$/exe" "$0"`, h.bin, helper)
	wantClosed("helper inside", r, 4)
	t.Logf("inside:\n%s", r.stdout)
	// Nested: an inner selfdock is a process of the outer sandbox.
	r = h.exec(t, h.helperOpts(opts{}), h.bin, "run", "sh", "-c",
		`"$0" run sleep 1.5 & sleep 0.5; "$1" openw --all --append; wait`, h.bin, helper)
	wantClosed("helper beside a nested selfdock", r, 2)
	if !strings.Contains(r.stdout, "-> "+h.bin) {
		t.Logf("the inner selfdock's exe link was not readable (fine, but the write attempt was weaker):\n%s", r.stdout)
	}
	// From outside, as sdtest: the running monitor and its command.
	arg := sleepArg(20)
	s := h.start(t, h.mark(opts{}), h.bin, "run", "sleep", arg)
	sleeps := waitProcs(10*time.Second, "sleep", arg)
	if len(sleeps) == 0 {
		t.Fatalf("sleep %s never started:\n%v", arg, s.wait(t))
	}
	targets := []string{"--append", fmt.Sprintf("/proc/%d/exe", s.cmd.Process.Pid), fmt.Sprintf("/proc/%d/exe", sleeps[0])}
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/exe", s.cmd.Process.Pid))
	r = h.exec(t, h.helperOpts(opts{}), helper, append([]string{"openw"}, append(targets, tasks...)...)...)
	wantClosed("helper outside", r, 2+len(tasks))
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	s.wait(t)
	for p, sum := range sums {
		if now := fileSum(p); now != sum {
			t.Errorf("%s changed: sha256 %s, was %s", p, now, sum)
		}
	}
	h.sameHost(t, before)
}

// 5. CVE-2024-21626 class: descriptors the caller passes to selfdock (a
// directory of the host's root, a root-only directory and files) never
// reach the command, and closed standard descriptors are not filled with
// one of selfdock's own.
func TestAttackLeakedFds(t *testing.T) {
	h := need(t)
	shadow := shadowLines(t)
	ro := h.rootOnly(t)
	var files []*os.File
	for _, p := range []string{"/", ro.dir, filepath.Join(ro.dir, ro.name), "/etc/shadow"} {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		files = append(files, f)
	}
	script := `ls -l /proc/self/fd; for n in 3 4 5 6 7 8 9; do
		if cd /proc/self/fd/$n 2>/dev/null; then echo "CD-OK $n"; ls; cd /; fi
		cat /proc/self/fd/$n 2>/dev/null; done; true`
	// Control: outside, the descriptors do reach what sdtest starts.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	cmd := h.command(ctx, h.mark(opts{}), "/bin/sh", "-c", script)
	cmd.ExtraFiles = files
	if r, err := runCmd(ctx, cmd); err != nil || !strings.Contains(r.stdout, "CD-OK 3") {
		t.Fatalf("control: the passed descriptors do not work outside (%v):\n%v", err, r)
	}
	cancel()
	before := h.hostNow()
	for _, args := range [][]string{
		{"run", "sh", "-c", script},
		{"build", "sh", "-c", script},
		{"-r", h.busyboxRoot(t), "run", "/bin/busybox", "sh", "-c", script},
		{"run", h.bin, "run", "sh", "-c", script},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		cmd := h.command(ctx, h.mark(opts{}), h.bin, args...)
		cmd.ExtraFiles = files
		r, err := runCmd(ctx, cmd)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if !wantCode(t, r, 0) {
			continue
		}
		leaksSecret(t, r, ro, shadow)
		if strings.Contains(r.stdout, "CD-OK") {
			t.Errorf("%v: a passed directory descriptor was usable inside:\n%v", args, r)
		}
		for n, target := range fdList(r.stdout) {
			if n > 2 && !(n == 3 && strings.HasPrefix(target, "/proc/") && filepath.Base(target) == "fd") {
				t.Errorf("%v: fd %d -> %s inside", args, n, target)
			}
		}
	}
	// Standard descriptors closed: the C library's start-up of the setuid
	// binary fills them (musl with /dev/null, glibc with /dev/full or
	// /dev/null); none may become a descriptor of selfdock's own (such as
	// its O_PATH of the host's /proc).
	fds := buildCFlags(t, filepath.Join(h.fix, "bin"), "battery-fds", fdsC, "-static")
	if fds == "" {
		skipOrFail(t, "gcc could not build the descriptor lister")
	}
	out := h.dir(t, &h.user, 0o755)
	for _, redir := range []string{"<&-", ">&-", "2>&-", "<&- >&- 2>&-"} {
		_ = os.Remove(filepath.Join(out, "fds"))
		r := h.exec(t, h.mark(opts{}), "/bin/sh", "-c", `exec "$0" --vol "$1" /srv run "$2" /srv/fds `+redir, h.bin, out, fds)
		b, err := os.ReadFile(filepath.Join(out, "fds"))
		if err != nil {
			t.Errorf("closed %s: the probe did not run (%v):\n%v", redir, err, r)
			continue
		}
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			f := strings.Fields(l)
			switch {
			case len(f) < 3 || (f[0] != "0" && f[0] != "1" && f[0] != "2"):
				t.Errorf("closed %s: inside, an extra descriptor: %q\n%s", redir, l, b)
			case f[1] == "dir" || f[1] == "other":
				t.Errorf("closed %s: inside, fd %s is %q\n%s", redir, f[0], l, b)
			case strings.Contains(redir, "<&-") && f[0] == "0" && f[1]+" "+f[2] != "chr 1:7" && f[1]+" "+f[2] != "chr 1:3":
				t.Errorf("closed %s: inside, fd 0 is %q, want /dev/full or /dev/null\n%s", redir, l, b)
			}
		}
	}
	h.sameHost(t, before)
}

// fdList parses `ls -l /proc/self/fd`: fd number to link target.
func fdList(ls string) map[int]string {
	fds := map[int]string{}
	for _, l := range strings.Split(ls, "\n") {
		f := strings.Fields(l)
		if len(f) < 3 || f[len(f)-2] != "->" {
			continue
		}
		if n, err := strconv.Atoi(f[len(f)-3]); err == nil {
			fds[n] = f[len(f)-1]
		}
	}
	return fds
}

// 6. CVE-2017-5226: with a real pty as its controlling terminal, the
// command cannot push input into it with TIOCSTI (64-bit, with a widened
// request, through int 0x80 or x32), nor use TIOCLINUX.
func TestAttackTIOCSTI(t *testing.T) {
	h := need(t)
	bin := filepath.Join(h.fix, "bin")
	sti := buildCFlags(t, bin, "battery-tiocsti", tiocstiC, "-static")
	int80src, err := os.ReadFile("../sandbox/testdata/seccomp_int80.c")
	if err != nil {
		t.Fatal(err)
	}
	int80 := buildCFlags(t, bin, "battery-int80", string(int80src), "-static", "-no-pie")
	if sti == "" || int80 == "" {
		skipOrFail(t, "gcc could not build the TIOCSTI helpers")
	}
	before := h.hostNow()
	// Control: outside the sandbox, on the same kind of terminal, TIOCSTI
	// works (unless the kernel's legacy_tiocsti switch is off).
	r, inq, echoed := h.onPty(t, sti)
	legacy, _ := os.ReadFile("/proc/sys/dev/tty/legacy_tiocsti")
	t.Logf("outside: %q (input queue %d, echoed %q, legacy_tiocsti %s)", r.out(), inq, echoed, strings.TrimSpace(string(legacy)))
	if kv := keyValues(r.stdout); kv["ctty"] != "0" || (strings.TrimSpace(string(legacy)) == "1" && kv["tiocsti"] != "0") {
		t.Errorf("control: TIOCSTI outside the sandbox did not work, so the test proves nothing:\n%v", r)
	}
	want := map[string]map[string]string{
		sti:   {"ctty": "0", "tiocsti": "-1", "tiocsti_high": "-1", "tioclinux": "-1"},
		int80: {"ioctl_tiocsti": "-1", "x32_ioctl_tiocsti": "-1"},
	}
	for _, prog := range []string{sti, int80} {
		for _, args := range [][]string{
			{h.bin, "run", prog},
			{h.bin, "build", prog},
			{h.bin, "run", h.bin, "run", prog},
		} {
			r, inq, echoed := h.onPty(t, args[0], args[1:]...)
			if !wantCode(t, r, 0) {
				continue
			}
			kv := keyValues(r.stdout)
			for k, v := range want[prog] {
				if kv[k] != v {
					t.Errorf("%s: %s = %q, want %s (-1 is EPERM):\n%v", describe(args[0], args[1:]), k, kv[k], v, r)
				}
			}
			if inq != 0 || strings.ContainsAny(echoed, "Q\n") {
				t.Errorf("%s: input reached the terminal: %d bytes queued, master read %q", describe(args[0], args[1:]), inq, echoed)
			}
		}
	}
	h.sameHost(t, before)
}

// onPty runs path args as sdtest in a new session whose controlling terminal
// is a fresh pty on its stdin; stdout and stderr are pipes. It returns the
// result, the bytes left in the terminal's input queue and what the master
// side read (the echo of any injected input).
func (h *harness) onPty(t testing.TB, path string, args ...string) (res, int, string) {
	t.Helper()
	master, slave := openPty(t, &h.user)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Dir = h.home
	cmd.Env = append(h.baseEnv(&h.user, h.home), h.markEnv())
	cmd.Stdin = slave
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: uint32(h.user.uid), Gid: uint32(h.user.gid), Groups: h.user.groups},
		Setsid:     true, Setctty: true, Ctty: 0,
	}
	cmd.WaitDelay = 5 * time.Second
	var echoed strings.Builder
	done := make(chan struct{})
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			echoed.Write(buf[:n])
			if err != nil {
				break
			}
		}
		close(done)
	}()
	r, err := runCmd(ctx, cmd)
	if err != nil {
		t.Fatal(err)
	}
	inq, _ := unix.IoctlGetInt(int(slave.Fd()), unix.TIOCINQ)
	time.Sleep(50 * time.Millisecond) // let an echo reach the master side
	slave.Close()                     // the master then reads EIO
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		master.Close()
		<-done
	}
	return r, inq, echoed.String()
}

// keyValues parses "key value" lines.
func keyValues(s string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(l), " "); ok {
			m[k] = v
		}
	}
	return m
}

// 7. A user-owned rootfs (or --map/--vol source) holding root-owned setuid
// programs and device nodes, and an /etc/ld.so.preload beside a host setuid
// program: no privilege, no device access, in run and build mode.
func TestAttackSetuidAndDevicesInRootfs(t *testing.T) {
	h := need(t)
	uid := strconv.Itoa(h.user.uid)
	root := h.busyboxRoot(t)
	nodes := mkdir(t, filepath.Join(root, "nodes"), 0o755, &h.user)
	for name, dev := range map[string][2]uint32{"null": {1, 3}, "zero": {1, 5}, "mem": {1, 1}} {
		p := filepath.Join(nodes, name)
		if err := unix.Mknod(p, unix.S_IFCHR|0o666, int(unix.Mkdev(dev[0], dev[1]))); err != nil {
			t.Fatalf("mknod %s: %v", p, err)
		}
		if err := chownMode(p, 0o666, nil); err != nil {
			t.Fatal(err)
		}
	}
	suid := mkdir(t, filepath.Join(root, "suid"), 0o755, &h.user)
	copyFile(t, busybox(t), filepath.Join(suid, "busybox"), 0o4755, nil)
	if h.probe == "" {
		skipOrFail(t, "gcc could not build the setuid probe")
	}
	copyFile(t, h.probe, filepath.Join(root, "bin/probe"), 0o4755, nil)
	// Controls: outside, the node opens and the setuid probe is root.
	if r := h.exec(t, h.mark(opts{}), "/bin/sh", "-c", "exec 3<"+filepath.Join(nodes, "null")+" && echo open"); r.out() != "open" {
		t.Logf("the fixture's null node does not open outside either (nodev host fs?):\n%v", r)
	}
	if r := h.exec(t, h.mark(opts{}), filepath.Join(root, "bin/probe")); r.out() != "euid=0 setuid0=0" {
		t.Fatalf("setuid probe does not give root outside:\n%v", r)
	}
	before := h.hostNow()
	nodeSnap := snapshot(t, nodes)
	try := `for n in null zero mem; do if (exec 3<NODES/$n) 2>/dev/null; then echo OPEN-$n; else echo closed-$n; fi; done
		echo x > NODES/null && echo WROTE; head -c 4 NODES/mem | wc -c`
	wantNodes := func(r res) {
		t.Helper()
		noCrash(t, r)
		if strings.Contains(r.stdout, "OPEN-") || strings.Contains(r.stdout, "WROTE") ||
			!strings.Contains(r.stdout, "closed-null\nclosed-zero\nclosed-mem") {
			t.Errorf("device nodes usable inside:\n%v", r)
		}
	}
	for _, sub := range []string{"run", "build"} {
		wantOut(t, h.sdb(t, "-r", root, sub, "/suid/busybox", "id", "-u"), uid)
		wantOut(t, h.sdb(t, "-r", root, sub, "/bin/probe"), "euid="+uid+" setuid0=-1")
		wantNodes(h.sdb(t, "-r", root, sub, "/bin/busybox", "sh", "-c", strings.ReplaceAll(try, "NODES", "/nodes")))
		wantNodes(h.sdb(t, "--map", nodes, "/srv", sub, "sh", "-c", strings.ReplaceAll(try, "NODES", "/srv")))
		wantNodes(h.sdb(t, "--vol", nodes, "/srv", sub, "sh", "-c", strings.ReplaceAll(try, "NODES", "/srv")))
		wantNodes(h.sdb(t, sub, "sh", "-c", strings.ReplaceAll(try, "NODES", nodes)))
	}
	h.preloadAttack(t, uid)
	sameSnapshot(t, "device nodes", nodeSnap, snapshot(t, nodes))
	h.sameHost(t, before)
}

// preloadAttack: an /etc/ld.so.preload of the caller's (over the host's /etc,
// or in their own rootfs) in front of host setuid programs. The library may
// run, as the caller; never as root.
func (h *harness) preloadAttack(t *testing.T, uid string) {
	t.Helper()
	lib := buildCFlags(t, filepath.Join(h.fix, "bin"), "battery-preload.so", preloadC, "-shared", "-fPIC")
	if lib == "" {
		skipOrFail(t, "gcc could not build the preload library")
	}
	fakeEtc := h.dir(t, &h.user, 0o755)
	writeFile(t, filepath.Join(fakeEtc, "ld.so.preload"), lib+"\n", 0o644, &h.user)
	copyFile(t, "/etc/ld.so.cache", filepath.Join(fakeEtc, "ld.so.cache"), 0o644, &h.user)
	sid := copyFile(t, "/usr/bin/id", filepath.Join(h.dir(t, nil, 0o755), "id"), 0o4755, nil)
	root := h.busyboxRoot(t)
	mkdir(t, filepath.Join(root, "usr"), 0o755, &h.user)
	symlinkAs(t, "usr/lib", filepath.Join(root, "lib"), &h.user)
	symlinkAs(t, "usr/lib64", filepath.Join(root, "lib64"), &h.user)
	evil := mkdir(t, filepath.Join(root, "evil"), 0o755, &h.user)
	copyFile(t, lib, filepath.Join(evil, "preload.so"), 0o755, &h.user)
	writeFile(t, filepath.Join(root, "etc/ld.so.preload"), "/evil/preload.so\n", 0o644, &h.user)
	copyFile(t, "/etc/ld.so.cache", filepath.Join(root, "etc/ld.so.cache"), 0o644, &h.user)
	copyFile(t, "/usr/bin/id", filepath.Join(root, "id"), 0o4755, nil)
	want := "PRELOAD euid=" + uid + " setuid0=-1"
	for _, sub := range []string{"run", "build"} {
		for _, args := range [][]string{
			{"--map", fakeEtc, "/etc", sub, "/usr/bin/passwd"},
			{"--map", fakeEtc, "/etc", sub, "/usr/bin/su"},
			{"--map", fakeEtc, "/etc", sub, sid, "-u"},
			{"-r", root, "--map", "/usr", "/usr", sub, "/usr/bin/passwd"},
			{"-r", root, "--map", "/usr", "/usr", sub, "/id", "-u"},
		} {
			r := h.sdb(t, args...)
			if strings.Contains(r.stdout, "euid=0") || !wantCode(t, r, 0) {
				t.Errorf("ld.so.preload with a setuid program:\n%v", r)
			} else if r.out() != want {
				t.Errorf("want %q (the library runs, as the caller), got:\n%v", want, r)
			}
		}
	}
}

// 8. sdtest tries to ptrace selfdock, read its memory and environment,
// from the end of its execve to its exit, many times.
func TestAttackPtraceSetup(t *testing.T) {
	h := need(t)
	helper := h.helper(t)
	before := h.hostNow()
	for _, tc := range []struct {
		n    int
		args []string
	}{
		{150, []string{"run", "true"}},
		{60, []string{"-m", "/etc", "/srv", "-t", "size=1m", "/mnt", "build", "true"}},
		{15, []string{"run", "sleep", "0.1"}}, // the monitor, after it dropped to the caller
	} {
		args := append([]string{"ptrace", strconv.Itoa(tc.n), h.bin}, tc.args...)
		r := h.mustTry(t, h.helperOpts(opts{timeout: 60 * time.Second}), helper, args...)
		if !wantCode(t, r, 0) {
			continue
		}
		var rep ptraceReport
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
			t.Fatalf("helper output: %v\n%v", err, r)
		}
		t.Logf("%v: %d runs, %d attempts, errors %v", tc.args, rep.Runs, rep.Attempts, rep.Errnos)
		if len(rep.Successes) > 0 {
			t.Errorf("%v: sdtest reached the setuid process: %q", tc.args, rep.Successes)
		}
		if rep.Runs != tc.n || rep.Attempts < tc.n {
			t.Errorf("%v: only %d runs and %d attempts", tc.args, rep.Runs, rep.Attempts)
		}
	}
	// From inside: selfdock's pid outside (the wrapper's $$) and every pid
	// of the sandbox's own namespace.
	for _, sub := range []string{"run", "build"} {
		r := h.exec(t, h.helperOpts(opts{}), "/bin/sh", "-c", `exec "$0" `+sub+` "$1" poke "$$" 0 1 2 3 4 5`, h.bin, helper)
		if wantCode(t, r, 0) && strings.Contains(r.stdout, "=OK") {
			t.Errorf("from inside, sdtest reached a process:\n%v", r)
		}
		t.Logf("inside:\n%s", r.stdout)
	}
	h.sameHost(t, before)
}

// 9. sdtest stops, continues, terminates and kills selfdock at random points
// early in its life: nothing is left behind.
func TestAttackSignalsDuringSetup(t *testing.T) {
	h := need(t)
	helper := h.helper(t)
	root := h.busyboxRoot(t)
	before := h.hostNow()
	tmpBefore, varBefore := dirEntries(t, "/tmp"), dirEntries(t, "/var/tmp")
	for _, tc := range []struct {
		n    int
		args []string
	}{
		{120, []string{"run", "sleep", "@"}},
		{80, []string{"-m", "/etc", "/srv", "-t", "size=1m", "/mnt", "-v", h.home, "/media", "run", "sleep", "@"}},
		{80, []string{"-r", root, "build", "/bin/busybox", "sleep", "@"}},
	} {
		args := append([]string{"signals", strconv.Itoa(tc.n), "4", "@", h.bin}, tc.args...)
		r := h.mustTry(t, h.helperOpts(opts{timeout: 120 * time.Second}), helper, args...)
		if !wantCode(t, r, 0) {
			continue
		}
		var rep signalsReport
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
			t.Fatalf("helper output: %v\n%v", err, r)
		}
		t.Logf("%v: %d runs; plans %v; ends %v", tc.args, rep.Runs, rep.Plans, rep.Exits)
		for _, hang := range rep.Hangs {
			t.Errorf("%v: selfdock hung: %s", tc.args, hang)
		}
		for e := range rep.Exits {
			if strings.HasPrefix(e, "start") {
				t.Errorf("%v: %s", tc.args, e)
			}
		}
	}
	h.sameHost(t, before)
	if m := mountsUnder(root); len(m) > 0 {
		t.Errorf("mounts left in the rootfs: %v", m)
	}
	for _, d := range []struct {
		dir    string
		before map[string]string
	}{{"/tmp", tmpBefore}, {"/var/tmp", varBefore}} {
		for name, owner := range dirEntries(t, d.dir) {
			// (Root's new files there are other programs' unless named
			// after selfdock: this machine is shared.)
			if _, ok := d.before[name]; !ok && leftover(name, owner) && (owner != "0" || strings.Contains(name, "selfdock")) {
				t.Errorf("left in %s: %s (owner %s)", d.dir, name, owner)
			}
		}
	}
}

// 10. Huge command lines: selfdock runs them or fails with one clear line
// (124, 126 or 127), never a Go panic or traceback, in bounded time.
func TestAttackHugeArguments(t *testing.T) {
	h := need(t)
	many := make([]string, 100000)
	for i := range many {
		many[i] = "x"
	}
	unsets := []string{}
	for i := 0; i < 50000; i++ {
		unsets = append(unsets, "-E", "SD_U"+strconv.Itoa(i))
	}
	maps := []string{}
	for i := 0; i < 10000; i++ {
		maps = append(maps, "--map", "/etc", "/tmp/m"+strconv.Itoa(i))
	}
	maxArg := strings.Repeat("y", 128*1024-1) // MAX_ARG_STRLEN - 1: the largest one argument
	long := "/" + strings.Repeat("p", 64*1024)
	env := []string{}
	for i := 0; i < 8; i++ {
		env = append(env, fmt.Sprintf("SD_BIG%d=%s", i, maxArg[len("SD_BIGn="):]))
	}
	before := h.hostNow()
	for _, tc := range []struct {
		name string
		args []string
		env  []string
		want string // stdout when it runs; "" = anything
	}{
		{"100k arguments", append([]string{"run", "sh", "-c", `echo $#`, "sh"}, many...), nil, "100000"},
		{"50k -E options", append(unsets, "run", "sh", "-c", "echo ok"), nil, "ok"},
		{"1 MiB single argument", []string{"run", "echo", strings.Repeat("z", 1<<20)}, nil, ""},
		{"128 KiB single argument", []string{"run", "sh", "-c", `echo ${#1}`, "sh", maxArg}, nil, "131071"},
		{"1 MiB environment", []string{"run", "sh", "-c", `echo ${#SD_BIG7}`}, env, strconv.Itoa(len(maxArg) - len("SD_BIGn="))},
		{"10k --map options", append(maps, "run", "sh", "-c", "ls /tmp | wc -l"), nil, "10000"},
		{"128 KiB --map source", []string{"--map", "/" + maxArg[1:], "/srv", "run", "true"}, nil, ""},
		{"64 KiB --map source", []string{"--map", long, "/srv", "run", "true"}, nil, ""},
		{"64 KiB --map destination", []string{"--map", "/etc", long, "run", "true"}, nil, ""},
		{"64 KiB --vol source", []string{"--vol", long, "/srv", "run", "true"}, nil, ""},
		{"64 KiB --tmpfs destination", []string{"--tmpfs", "size=1m", "/tmp" + long, "run", "true"}, nil, ""},
		{"64 KiB --rootfs", []string{"--rootfs", long, "run", "true"}, nil, ""},
		{"64 KiB -C", []string{"-C", long, "run", "true"}, nil, ""},
		{"64 KiB command", []string{"run", long}, nil, ""},
		{"64 KiB -e name", []string{"-e", strings.Repeat("N", 64*1024), "v", "run", "true"}, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := h.try(opts{env: tc.env, timeout: 30 * time.Second}, h.bin, tc.args...)
			if errors.Is(err, syscall.E2BIG) && strings.HasPrefix(tc.name, "1 MiB single") {
				// One argument is at most MAX_ARG_STRLEN (128 KiB): it
				// never reaches selfdock.
				t.Logf("the kernel refuses to start selfdock with it: %v", err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.dur > 20*time.Second {
				t.Errorf("took %v", r.dur)
			}
			switch {
			case crashed(r):
				t.Errorf("selfdock crashed:\n%v", r)
			case r.code == 0:
				if tc.want != "" && r.out() != tc.want {
					t.Errorf("want stdout %q, got:\n%v", tc.want, r)
				}
			case oneLineError(r):
				t.Logf("refused (%v): %s", r.dur.Round(time.Millisecond), clip(strings.TrimSpace(r.stderr)))
			default:
				t.Errorf("neither ran nor failed with one clear line and 124/126/127:\n%v", r)
			}
		})
	}
	h.sameHost(t, before)
}

// 11. Hostile resource limits on the setuid process: it runs, or fails with
// one clear line; it never crashes (a setuid root process must not die of
// a fault or a runtime error the caller provoked).
func TestAttackResourceLimits(t *testing.T) {
	h := need(t)
	before := h.hostNow()
	maps := " --map /etc /srv --map /usr /mnt --map /bin /media --map /sbin /opt"
	for _, tc := range []struct {
		name   string
		ulimit string
		opts   string
		times  int
	}{
		{"open files 4", "ulimit -n 4", "", 1},
		{"open files 5", "ulimit -n 5", "", 1},
		{"open files 5, soft", "ulimit -Sn 5", "", 1},
		{"open files 12 with 4 maps", "ulimit -n 12", maps, 1},
		{"processes 1", "ulimit -u 1", "", 1},
		{"file size 0", "ulimit -f 0", "", 1},
		{"core 0, memlock 0, pending signals 0", "ulimit -c 0 && ulimit -l 0 && ulimit -i 0", "", 1},
		{"cpu 1 s", "ulimit -t 1", "", 1},
		{"stack 16 KiB", "ulimit -s 16", "", 20},
		{"address space 256 MiB", "ulimit -v 262144", "", 1},
		{"data 64 MiB", "ulimit -d 65536", "", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			script := tc.ulimit + ` && exec "$0"` + tc.opts + ` run sh -c "echo inside"`
			for i := 0; i < tc.times; i++ {
				r := h.exec(t, h.mark(opts{}), "/bin/bash", "-c", script, h.bin)
				switch {
				case crashed(r):
					t.Fatalf("selfdock crashed (run %d of %d):\n%v", i+1, tc.times, r)
				case r.code == 0:
					if r.out() != "inside" {
						t.Errorf("want %q:\n%v", "inside", r)
					}
				case !oneLineError(r):
					t.Fatalf("neither ran nor failed with one clear line:\n%v", r)
				}
			}
		})
	}
	// A limit raised for selfdock itself is the caller's again in the command.
	r := h.exec(t, h.mark(opts{}), "/bin/bash", "-c", `ulimit -Sn 7 && exec "$0" run sh -c "ulimit -Sn"`, h.bin)
	wantOut(t, r, "7")
	// A hard limit is never raised, also not for what runs as the caller
	// outside run's command (the --fakeroot copy, newuidmap).
	// And the command gets the caller's own soft limits, --fakeroot too.
	for _, sub := range [][]string{{"run"}, {"run", "--fakeroot"}} {
		script := `ulimit -v 2000000 && exec "$0" ` + strings.Join(sub, " ") + ` sh -c "ulimit -Hv"`
		r = h.exec(t, h.mark(opts{}), "/bin/bash", "-c", script, h.bin)
		wantOut(t, r, "2000000")
		script = `ulimit -Sv 3000000 && ulimit -Sn 50 && exec "$0" ` + strings.Join(sub, " ") + ` sh -c "ulimit -Sv; ulimit -Sn"`
		r = h.exec(t, h.mark(opts{}), "/bin/bash", "-c", script, h.bin)
		wantOut(t, r, "3000000\n50")
	}
	h.sameHost(t, before)
}

// writePolicy installs the hooked binary's policy file (root, 0644).
func writePolicy(t *testing.T, file, text string) {
	t.Helper()
	_ = os.RemoveAll(file)
	writeFile(t, file, text, 0o644, nil)
}

// wantPolicyRefused: exit 124, one line, naming the policy.
func wantPolicyRefused(t *testing.T, r res, word string) {
	t.Helper()
	wantRefused(t, r, 124)
	if !strings.Contains(r.stderr, word) {
		t.Errorf("want the message to say %q:\n%v", word, r)
	}
}

// 12. A root-owned policy file (fixed at build time) denies paths and
// rootfs locations, build and users: no way around it.
func TestAttackPolicyForbiddenPath(t *testing.T) {
	h := need(t)
	bin, file := h.policyBinary(t)
	t.Cleanup(func() { _ = os.Remove(file) })
	secretText := uniq("deny-secret-")
	secret := h.dir(t, nil, 0o755)
	writeFile(t, filepath.Join(secret, "f"), secretText+"\n", 0o644, nil)
	writeFile(t, filepath.Join(mkdir(t, filepath.Join(secret, "sub"), 0o755, nil), "f"), secretText+"\n", 0o644, nil)
	userSecret := h.dir(t, &h.user, 0o755) // denied too, and writable by sdtest
	writeFile(t, filepath.Join(userSecret, "f"), secretText+"\n", 0o644, &h.user)
	roots := h.dir(t, nil, 0o755)
	bb := filepath.Join(roots, "bb")
	if err := os.Rename(h.busyboxRoot(t), bb); err != nil {
		t.Fatal(err)
	}
	outside := h.busyboxRoot(t)
	allowed := h.dir(t, &h.user, 0o755)
	writeFile(t, filepath.Join(allowed, "f"), "allowed\n", 0o644, &h.user)
	u := h.dir(t, &h.user, 0o755)
	link := symlinkAs(t, secret, filepath.Join(u, "secret"), &h.user)
	linkSub := symlinkAs(t, filepath.Join(secret, "sub"), filepath.Join(u, "secretsub"), &h.user)
	rootLink := symlinkAs(t, outside, filepath.Join(u, "root"), &h.user)
	writePolicy(t, file, fmt.Sprintf("deny_map = [%q, %q]\nrootfs_dirs = [%q]\n", secret, userSecret, roots))
	sd := func(args ...string) res { return h.exec(t, h.mark(opts{}), bin, args...) }
	before := h.hostNow()
	if r := sd("policy", "check"); !wantCode(t, r, 0) || !strings.Contains(r.stdout, secret) {
		t.Fatalf("the hooked binary does not read %s:\n%v", file, r)
	}
	wantOut(t, sd("-r", bb, "--map", allowed, "/tmp/x", "run", "/bin/busybox", "cat", "/tmp/x/f"), "allowed")
	for _, src := range []string{
		secret, filepath.Join(secret, "sub"), filepath.Join(secret, "f"), link, linkSub, link + "/f",
		secret + "/sub/..", "/" + secret, filepath.Join(secret, "..", filepath.Base(secret), ".", "sub"), userSecret,
	} {
		for _, opt := range []string{"--map", "--vol"} {
			r := sd("-r", bb, opt, src, "/tmp/x", "run", "/bin/busybox", "cat", "/tmp/x/f")
			wantPolicyRefused(t, r, "policy")
			leaks(t, r, "a denied path", secretText)
		}
	}
	// A path inside a denied directory whose full name is longer than
	// PATH_MAX, reached through two symlinks: the kernel cannot name it,
	// so the deny list cannot be checked by name, and the map is refused.
	deep := deepPath(t, userSecret, u, secretText, &h.user)
	for _, opt := range []string{"--map", "--vol"} {
		r := sd("-r", bb, opt, deep, "/tmp/x", "run", "/bin/busybox", "cat", "/tmp/x/f")
		wantPolicyRefused(t, r, "policy")
		leaks(t, r, "a denied path too long to name", secretText)
	}
	for _, rootfs := range []string{secret, outside, rootLink, filepath.Join(roots, "..", filepath.Base(outside)), "/"} {
		r := sd("-r", rootfs, "run", "/bin/busybox", "true")
		wantPolicyRefused(t, r, "policy")
	}
	wantPolicyRefused(t, sd("run", "true"), "policy") // the default root, /, is not in rootfs_dirs
	// allow_build = false. (Controls: run, and a nested run, which the
	// policy allows, still work, so that a refusal below is the policy's.)
	writePolicy(t, file, "allow_build = false\n")
	wantCode(t, sd("run", "true"), 0)
	wantCode(t, sd("run", bin, "run", "true"), 0)
	wantPolicyRefused(t, sd("build", "true"), "policy")
	wantPolicyRefused(t, sd("-r", outside, "build", "/bin/busybox", "true"), "policy")
	wantPolicyRefused(t, sd("run", bin, "build", "true"), "policy")
	// users and groups.
	for _, text := range []string{`users = ["root"]`, `groups = ["root"]`, `users = ["sdother"]`, `users = ["0"]`} {
		writePolicy(t, file, text+"\n")
		wantPolicyRefused(t, sd("run", "true"), "policy")
		wantPolicyRefused(t, sd("build", "true"), "policy")
	}
	writePolicy(t, file, `users = ["sdtest"]`+"\n")
	wantCode(t, sd("run", "true"), 0)
	writePolicy(t, file, `groups = ["sdextra"]`+"\n")
	wantCode(t, sd("run", "true"), 0)
	// deny_map written with a trailing slash denies --rootfs as well.
	writePolicy(t, file, fmt.Sprintf("deny_map = [%q]\n", secret+"/"))
	wantPolicyRefused(t, sd("-r", secret, "run", "/bin/busybox", "true"), "policy")
	// seccomp off would lift the ban on nesting, which only the filter
	// enforces: refused where nesting is.
	writePolicy(t, file, "allow_nesting = false\nallow_seccomp_off = true\n")
	wantPolicyRefused(t, sd("--seccomp", "off", "run", "true"), "nesting")
	// open_tree_attr, a mount call younger than the libseccomp that made
	// the filters: under --fakeroot (every capability in a user namespace
	// of its own) it cloned a read-only path writable where nesting is
	// forbidden. The control, with nesting allowed, shows the call works.
	helper, own := h.helper(t), h.dir(t, &h.user, 0o755)
	ota := func() res {
		return h.exec(t, h.helperOpts(opts{}), bin, "--fakeroot", "run", helper, "ota", own, "pwned")
	}
	wantOut(t, ota(), "open_tree_attr: operation not permitted")
	if _, err := os.Lstat(filepath.Join(own, "pwned")); err == nil {
		t.Errorf("open_tree_attr wrote through a read-only path where nesting is forbidden")
	}
	writePolicy(t, file, "")
	wantOut(t, ota(), "open_tree_attr: ok\ncreate: ok")
	// A policy limit never raises the caller's own (hard or soft).
	writePolicy(t, file, "[rlimits]\nnproc = \"5000\"\n")
	wantOut(t, h.exec(t, h.mark(opts{}), "/bin/bash", "-c", `ulimit -u 300 && exec "$0" run bash -c 'ulimit -Hu; ulimit -Su'`, bin), "300\n300")
	// A policy only root may read is not shown to a user.
	writePolicy(t, file, fmt.Sprintf("deny_map = [%q]\n", secret))
	if err := os.Chmod(file, 0o600); err != nil {
		t.Fatal(err)
	}
	if r := sd("policy", "check"); r.code != 124 || strings.Contains(r.stdout+r.stderr, secret) {
		t.Errorf("policy check showed a root-only policy file:\n%v", r)
	}
	h.sameHost(t, before)
}

// deepPath makes 30 directories of 200-character names below dir, the last
// holding f (text), and returns a path to the last one through two symlinks
// in u (each of 15 levels) owned by owner, which stays short while the real
// name is over PATH_MAX.
func deepPath(t *testing.T, dir, u, text string, owner *account) string {
	t.Helper()
	name := strings.Repeat("d", 200)
	half := strings.TrimSuffix(strings.Repeat(name+"/", 15), "/")
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 30; i++ {
		if i == 15 {
			if err := unix.Symlinkat(half, fd, "l2"); err != nil {
				t.Fatal(err)
			}
		}
		if err := unix.Mkdirat(fd, name, 0o755); err != nil {
			t.Fatal(err)
		}
		next, err := unix.Openat(fd, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		if err != nil {
			t.Fatal(err)
		}
		fd = next
	}
	defer unix.Close(fd)
	f, err := unix.Openat(fd, "f", unix.O_WRONLY|unix.O_CREAT|unix.O_CLOEXEC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	_, err = unix.Write(f, []byte(text+"\n"))
	unix.Close(f)
	if err != nil {
		t.Fatal(err)
	}
	l1 := symlinkAs(t, filepath.Join(dir, half), filepath.Join(u, "l1"), owner)
	return l1 + "/l2"
}

// 13. A policy file that someone other than root could have written is not
// trusted: every run is refused (and not run with the defaults instead).
func TestAttackPolicyWritable(t *testing.T) {
	h := need(t)
	bin, file := h.policyBinary(t)
	dir := filepath.Dir(file)
	restore := func() {
		_ = os.RemoveAll(file)
		_ = chownMode(dir, 0o755, nil)
		_ = chownMode(h.fix, 0o755, nil)
	}
	t.Cleanup(restore)
	sdtestGroup := &account{uid: 0, gid: h.user.gid} // root:sdtest
	const text = "allow_build = false\n"
	good := func(t *testing.T) { writeFile(t, file, text, 0o644, nil) }
	before := h.hostNow()
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T)
		word  string
	}{
		{"file group-writable", func(t *testing.T) { writeFile(t, file, text, 0o664, nil) }, "refused"},
		{"file writable by sdtest's group", func(t *testing.T) { writeFile(t, file, text, 0o664, sdtestGroup) }, "refused"},
		{"file world-writable", func(t *testing.T) { writeFile(t, file, text, 0o646, nil) }, "refused"},
		{"file owned by sdtest", func(t *testing.T) { writeFile(t, file, text, 0o644, &h.user) }, "refused"},
		{"file owned by sdtest, 0400", func(t *testing.T) { writeFile(t, file, text, 0o400, &h.user) }, "refused"},
		{"directory world-writable", func(t *testing.T) { good(t); _ = chownMode(dir, 0o777, nil) }, "refused"},
		{"directory sticky and world-writable", func(t *testing.T) { good(t); _ = chownMode(dir, 0o1777, nil) }, "refused"},
		{"directory owned by sdtest", func(t *testing.T) { good(t); _ = chownMode(dir, 0o755, &h.user) }, "refused"},
		{"directory writable by sdtest's group", func(t *testing.T) { good(t); _ = chownMode(dir, 0o775, sdtestGroup) }, "refused"},
		{"ancestor writable by sdtest's group", func(t *testing.T) { good(t); _ = chownMode(h.fix, 0o775, sdtestGroup) }, "refused"},
		{"directory world-writable, no policy file", func(t *testing.T) { _ = chownMode(dir, 0o777, nil) }, "refused"},
		{"a FIFO", func(t *testing.T) { _ = syscall.Mkfifo(file, 0o644) }, "refused"},
		{"a directory", func(t *testing.T) { _ = os.Mkdir(file, 0o755) }, "refused"},
		{"a symlink to a file of sdtest's", func(t *testing.T) {
			f := writeFile(t, filepath.Join(h.dir(t, &h.user, 0o755), "p.toml"), "", 0o644, &h.user)
			_ = os.Symlink(f, file)
		}, "policy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			restore()
			defer restore()
			tc.setup(t)
			for _, args := range [][]string{
				{"run", "sh", "-c", "echo RAN"}, {"build", "sh", "-c", "echo RAN"}, {"policy", "check"},
			} {
				r := h.exec(t, h.mark(opts{timeout: 10 * time.Second}), bin, args...)
				wantPolicyRefused(t, r, tc.word)
				if strings.Contains(r.stdout, "RAN") || strings.Contains(r.stdout, "allow_build") {
					t.Errorf("ran despite the untrusted policy:\n%v", r)
				}
			}
		})
	}
	// Trusted again: the policy applies.
	writeFile(t, file, text, 0o644, nil)
	wantCode(t, h.exec(t, h.mark(opts{}), bin, "run", "true"), 0)
	wantPolicyRefused(t, h.exec(t, h.mark(opts{}), bin, "build", "true"), "policy")
	h.sameHost(t, before)
}

// 14. selfdock started from a working directory the caller can no longer
// reach (0700 root, made so after they entered it), with relative sources:
// nothing is resolved with root's access, and the command starts in /.
func TestAttackInaccessibleCwd(t *testing.T) {
	h := need(t)
	helper := h.helper(t)
	d := h.dir(t, &h.user, 0o755)
	secretText := uniq("cwd-secret-")
	writeFile(t, filepath.Join(d, "secret"), secretText+"\n", 0o644, nil)
	writeFile(t, filepath.Join(mkdir(t, filepath.Join(d, "sub"), 0o777, nil), "f"), secretText+"\n", 0o644, nil)
	if err := os.Rename(h.busyboxRoot(t), filepath.Join(d, "bbroot")); err != nil {
		t.Fatal(err)
	}
	b := h.bin
	runs := [][]string{
		{b, "--map", "secret", "/tmp/x", "run", "cat", "/tmp/x"},
		{b, "--map", "./sub", "/srv", "run", "cat", "/srv/f"},
		{b, "--map", ".", "/srv", "run", "cat", "/srv/secret"},
		{b, "--vol", "sub", "/srv", "run", "cat", "/srv/f"},
		{b, "-r", "bbroot", "run", "/bin/busybox", "true"},
		{b, "--map", "/proc/self/cwd/secret", "/tmp/x", "run", "cat", "/tmp/x"},
		{b, "-C", ".", "run", "true"},
		{b, "-C", d, "run", "true"},
		{b, "run", "pwd"},
		{b, "build", "pwd"},
		{b, "run", "sh", "-c", "cat secret sub/f /proc/1/cwd/secret; ls"},
		{b, "run", b, "--map", "secret", "/tmp/x", "run", "cat", "/tmp/x"},
	}
	refused := []bool{true, true, true, true, true, true, true, true, false, false, false, false}
	js, _ := json.Marshal(runs)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := h.command(ctx, h.helperOpts(opts{}), helper, "runin", d, string(js))
	cmd.Stdin = nil
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	before := h.hostNow()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	out := bufio.NewReader(outPipe)
	if l, err := out.ReadString('\n'); err != nil || l != "ready\n" {
		_ = cmd.Wait()
		t.Fatalf("helper: %q %v %s", l, err, stderr.String())
	}
	// sdtest is in d; now take d away from them.
	if err := chownMode(d, 0o700, nil); err != nil {
		t.Fatal(err)
	}
	if r := h.exec(t, h.mark(opts{}), "/bin/cat", filepath.Join(d, "secret")); r.code == 0 {
		t.Fatalf("control: sdtest can still read %s:\n%v", d, r)
	}
	fmt.Fprintln(in, "go")
	in.Close()
	rest, _ := io.ReadAll(out)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper: %v\n%s\n%s", err, rest, stderr.String())
	}
	var results []runResult
	if err := json.Unmarshal(rest, &results); err != nil || len(results) != len(runs) {
		t.Fatalf("helper output %q: %v", rest, err)
	}
	for i, rr := range results {
		r := res{cmd: describe(runs[i][0], runs[i][1:]), stdout: rr.Stdout, stderr: rr.Stderr, code: rr.Code}
		leaks(t, r, "the inaccessible cwd", secretText)
		switch {
		case refused[i]:
			wantRefused(t, r, 124)
		case runs[i][len(runs[i])-1] == "pwd":
			wantOut(t, r, "/")
		default:
			noCrash(t, r)
		}
	}
	h.sameHost(t, before)
}
