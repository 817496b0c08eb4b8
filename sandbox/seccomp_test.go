package sandbox

import (
	"bufio"
	"bytes"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Loading a seccomp filter cannot be undone, so the tests that load one
// re-execute the test binary (go-landlock's way): seccompChildEnv names the
// child's action, and init runs it before the testing package starts.
const (
	seccompChildEnv   = "SELFDOCK_SECCOMP_TEST_CHILD"
	seccompHelpersEnv = "SELFDOCK_SECCOMP_TEST_HELPERS" // name=path,name=path
)

// init turns the test binary into a probe child when the parent asked for
// one; it never returns then.
func init() {
	if action := os.Getenv(seccompChildEnv); action != "" {
		os.Exit(seccompChildMain(action))
	}
}

// seccompSkip skips, or fails when SELFDOCK_MUST_WORK=1 (CI), where a skip
// would hide a broken machine.
func seccompSkip(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("SELFDOCK_MUST_WORK") == "1" {
		t.Fatalf("SELFDOCK_MUST_WORK=1, cannot skip: "+format, args...)
	}
	t.Skipf(format, args...)
}

// seccompVariants are the three filters restrictThread can load.
var seccompVariants = []SeccompOptions{
	{AllowNesting: true},
	{AllowNesting: false},
	{AllowNesting: false, ParentMounts: true},
}

// TestSeccompProgram checks that every embedded filter exists, fits the
// kernel's limit and starts with the architecture check, that the three are
// different programs, and reports what choosing one costs at start-up.
func TestSeccompProgram(t *testing.T) {
	seen := map[string]SeccompOptions{}
	for _, o := range seccompVariants {
		start := time.Now()
		prog, err := seccompProgram(o)
		elapsed := time.Since(start)
		if err != nil {
			t.Fatalf("seccompProgram(%+v): %v", o, err)
		}
		if len(prog) == 0 || len(prog) > unix.BPF_MAXINSNS {
			t.Fatalf("seccompProgram(%+v): %d instructions", o, len(prog))
		}
		// BPF_LD|BPF_W|BPF_ABS of seccomp_data.arch (offset 4).
		if prog[0].Code != 0x20 || prog[0].K != 4 {
			t.Errorf("seccompProgram(%+v): first instruction %+v does not load the arch", o, prog[0])
		}
		if other, ok := seen[fmt.Sprint(prog)]; ok {
			t.Errorf("seccompProgram(%+v) is the same program as %+v", o, other)
		}
		seen[fmt.Sprint(prog)] = o
		t.Logf("%+v: %d instructions, chosen in %v", o, len(prog), elapsed)
	}
	// ParentMounts only matters when nesting is denied.
	a, _ := seccompProgram(SeccompOptions{AllowNesting: true})
	b, _ := seccompProgram(SeccompOptions{AllowNesting: true, ParentMounts: true})
	if &a[0] != &b[0] {
		t.Errorf("AllowNesting with ParentMounts is not the AllowNesting program")
	}
	if err := loadSeccompThread(nil); err == nil {
		t.Errorf("loadSeccompThread(nil): no error")
	}
}

// BenchmarkSeccompProgram measures what choosing a filter costs at start-up
// (libseccomp took ~0.5 ms when it built the filter at run time).
func BenchmarkSeccompProgram(b *testing.B) {
	for b.Loop() {
		if _, err := seccompProgram(SeccompOptions{ParentMounts: true}); err != nil {
			b.Fatal(err)
		}
	}
}

// seccompThread is a goroutine locked to its own OS thread, running the
// functions sent to it: the kernel filters threads, not goroutines, so each
// probe must know which thread it is on.
type seccompThread chan func()

// newSeccompThread starts one; it never unlocks, so a filtered thread is
// never handed to another goroutine.
func newSeccompThread() seccompThread {
	c := make(seccompThread)
	go func() {
		runtime.LockOSThread()
		for f := range c {
			f()
		}
	}()
	return c
}

// do runs f on the thread and waits for it.
func (c seccompThread) do(f func()) {
	done := make(chan struct{})
	c <- func() { f(); close(done) }
	<-done
}

// seccompProbe is one system call tried on a thread. Each is chosen to fail
// harmlessly with an error other than EPERM when the filter lets it through,
// so that EPERM can only come from the filter; fd is the controlling
// terminal.
type seccompProbe struct {
	name string
	call func(fd uintptr) unix.Errno
}

// seccompCall issues a raw system call on the current thread.
func seccompCall(nr uintptr, args ...uintptr) unix.Errno {
	var a [6]uintptr
	copy(a[:], args)
	_, _, e := unix.RawSyscall6(nr, a[0], a[1], a[2], a[3], a[4], a[5])
	return e
}

// seccompCStr gives a system call a NUL-terminated string.
func seccompCStr(s string) uintptr {
	p, err := unix.BytePtrFromString(s)
	if err != nil {
		panic(err)
	}
	return uintptr(unsafe.Pointer(p))
}

// seccompChar is what an unfiltered TIOCSTI pushes into the test's pty,
// where nobody reads it.
var seccompChar = []byte{'\n'}

// seccompProbes are run on every thread; seccompWants says what each gives.
var seccompProbes = []seccompProbe{
	{"getpid", func(uintptr) unix.Errno { return seccompCall(unix.SYS_GETPID) }},
	// An unknown keyctl operation: EOPNOTSUPP when allowed.
	{"keyctl", func(uintptr) unix.Errno { return seccompCall(unix.SYS_KEYCTL, 9999) }},
	{"add_key", func(uintptr) unix.Errno { return seccompCall(unix.SYS_ADD_KEY) }},
	{"bpf", func(uintptr) unix.Errno { return seccompCall(unix.SYS_BPF, 9999) }},
	{"perf_event_open", func(uintptr) unix.Errno {
		return seccompCall(unix.SYS_PERF_EVENT_OPEN, 0, 0, ^uintptr(0), ^uintptr(0))
	}},
	{"ioctl_tiocsti", func(fd uintptr) unix.Errno {
		return seccompCall(unix.SYS_IOCTL, fd, unix.TIOCSTI, uintptr(unsafe.Pointer(&seccompChar[0])))
	}},
	// The kernel truncates the request to 32 bits: still TIOCSTI.
	{"ioctl_tiocsti_hi", func(fd uintptr) unix.Errno {
		return seccompCall(unix.SYS_IOCTL, fd, 1<<32|unix.TIOCSTI, uintptr(unsafe.Pointer(&seccompChar[0])))
	}},
	// On a pty (not a virtual console) TIOCLINUX fails when allowed.
	{"ioctl_tioclinux", func(fd uintptr) unix.Errno {
		sub := []byte{12} // TIOCL_GETFGCONSOLE, read-only
		return seccompCall(unix.SYS_IOCTL, fd, unix.TIOCLINUX, uintptr(unsafe.Pointer(&sub[0])))
	}},
	{"ioctl_tiocgwinsz", func(fd uintptr) unix.Errno {
		var ws unix.Winsize
		return seccompCall(unix.SYS_IOCTL, fd, unix.TIOCGWINSZ, uintptr(unsafe.Pointer(&ws)))
	}},
	// EINVAL when allowed: the process has several threads.
	{"unshare_newuser", func(uintptr) unix.Errno { return seccompCall(unix.SYS_UNSHARE, unix.CLONE_NEWUSER) }},
	// CLONE_FS with CLONE_NEWUSER or CLONE_NEWNS is always EINVAL, so no
	// process is created even if the filter were broken.
	{"clone_newuser", func(uintptr) unix.Errno { return seccompCall(unix.SYS_CLONE, unix.CLONE_NEWUSER|unix.CLONE_FS) }},
	{"clone_newns", func(uintptr) unix.Errno { return seccompCall(unix.SYS_CLONE, unix.CLONE_NEWNS|unix.CLONE_FS) }},
	// A size of 0 is EINVAL when allowed.
	{"clone3", func(uintptr) unix.Errno { return seccompCall(unix.SYS_CLONE3, 0, 0) }},
	// The target is looked up before privilege is checked: ENOENT when
	// allowed, for root and for a plain user.
	{"mount", func(uintptr) unix.Errno {
		return seccompCall(unix.SYS_MOUNT, seccompCStr("none"), seccompCStr("/nonexistent/selfdock-seccomp"), seccompCStr("tmpfs"))
	}},
	// Invalid flags are refused first: EINVAL when allowed.
	{"umount2", func(uintptr) unix.Errno { return seccompCall(unix.SYS_UMOUNT2, seccompCStr("/"), 1<<31) }},
	{"open_tree", func(uintptr) unix.Errno {
		atFDCWD := unix.AT_FDCWD
		return seccompCall(unix.SYS_OPEN_TREE, uintptr(atFDCWD), seccompCStr("/"), 1<<30)
	}},
	{"setns", func(uintptr) unix.Errno { return seccompCall(unix.SYS_SETNS, ^uintptr(0), 0) }},
}

// seccompModes are the child actions that load a filter, by the
// filter's options.
var seccompModes = map[string]SeccompOptions{
	"deny":               {AllowNesting: false},
	"deny-parent-mounts": {AllowNesting: false, ParentMounts: true},
	"allow":              {AllowNesting: true},
}

// seccompChildMain is the re-executed child: the seccompModes load their
// filter on one thread and probe that thread and others; "report" only
// probes its own main thread (it is exec'd from a filtered thread). Results
// go to stdout as "key result" lines.
func seccompChildMain(action string) int {
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	var err error
	switch action {
	case "report":
		seccompReport(out, "")
	default:
		o, ok := seccompModes[action]
		if !ok {
			err = fmt.Errorf("unknown child action %q", action)
			break
		}
		err = seccompChildFilter(out, o)
	}
	if err != nil {
		fmt.Fprintf(out, "error %v\n", err)
		return 1
	}
	return 0
}

// seccompReport runs every probe on the calling thread.
func seccompReport(out *bufio.Writer, prefix string) {
	fmt.Fprintf(out, "%stid %d\n", prefix, unix.Gettid())
	for _, p := range seccompProbes {
		fmt.Fprintf(out, "%s%s %s\n", prefix, p.name, seccompErrnoName(p.call(0)))
	}
}

// seccompErrnoName prints an errno the way the expectations are written.
func seccompErrnoName(e unix.Errno) string {
	if e == 0 {
		return "ok"
	}
	if n := unix.ErrnoName(e); n != "" {
		return n
	}
	return fmt.Sprintf("errno%d", int(e))
}

// seccompChildFilter loads the filter on one locked thread, as the sandbox
// does, and probes it, a thread started before the load, a thread started
// from the filtered one after it, a Go program and the 32-bit helpers
// exec'd from the filtered thread (both must inherit the filter), and the
// helpers exec'd from an unfiltered thread (both must not).
func seccompChildFilter(out *bufio.Writer, o SeccompOptions) error {
	start := time.Now()
	prog, err := seccompProgram(o)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "build_ns %d\n", time.Since(start).Nanoseconds())
	before, filtered := newSeccompThread(), newSeccompThread()
	var after seccompThread
	filtered.do(func() {
		if err = unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			err = fmt.Errorf("prctl no_new_privs: %w", err)
			return
		}
		err = loadSeccompThread(prog)
		after = newSeccompThread() // created while this thread is filtered
	})
	if err != nil {
		return err
	}
	before.do(func() { seccompReport(out, "before/") })
	after.do(func() { seccompReport(out, "after/") })
	filtered.do(func() { seccompReport(out, "filtered/") })
	filtered.do(func() { err = seccompExec(out, "exec/", "/proc/self/exe", seccompChildEnv+"=report") })
	if err != nil {
		return err
	}
	for _, h := range seccompHelpers() {
		filtered.do(func() { err = seccompExec(out, h.name+"/", h.path) })
		if err == nil {
			before.do(func() { err = seccompExec(out, h.name+"-unfiltered/", h.path) })
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// seccompHelper is one compiled build of testdata/seccomp_int80.c.
type seccompHelper struct{ name, path string }

// seccompHelpers reads the helpers the parent built from seccompHelpersEnv.
func seccompHelpers() []seccompHelper {
	var hs []seccompHelper
	for _, kv := range strings.Split(os.Getenv(seccompHelpersEnv), ",") {
		if name, path, ok := strings.Cut(kv, "="); ok {
			hs = append(hs, seccompHelper{name, path})
		}
	}
	return hs
}

// seccompExec runs a program from the calling thread (Go forks from the
// thread that calls, which is what the sandbox relies on) with the terminal
// as stdin, and copies its "key result" lines with prefix. Results that are
// numbers (the C helper prints raw kernel return values) become errno names.
func seccompExec(out *bufio.Writer, prefix, path string, env ...string) error {
	cmd := exec.Command(path)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = os.Stdin
	cmd.Stderr = os.Stderr
	b, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("run %s: %w", path, err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		key, val, _ := strings.Cut(line, " ")
		if n, err := strconv.ParseInt(val, 10, 64); err == nil && key != "tid" {
			val = "ok"
			if n < 0 {
				val = seccompErrnoName(unix.Errno(-n))
			}
		}
		fmt.Fprintf(out, "%s%s %s\n", prefix, key, val)
	}
	return nil
}

// seccompWant is what one probe must give: on the filtered thread (and in
// programs it execs) with nesting denied and allowed, and on threads without
// the filter; the ParentMounts filter gives "allow" for seccompMountProbes
// and "deny" for the rest. "!EPERM" accepts any result but EPERM; "" accepts
// anything (the result depends on the machine's sysctls and privileges).
// Linux's EOPNOTSUPP is ENOTSUP, and unix.ErrnoName calls it that.
type seccompWant struct{ deny, allow, unfiltered string }

// seccompWants is what each of seccompProbes must give.
var seccompWants = map[string]seccompWant{
	"getpid":           {"ok", "ok", "ok"},
	"keyctl":           {"EPERM", "EPERM", "ENOTSUP"},
	"add_key":          {"EPERM", "EPERM", "!EPERM"},
	"bpf":              {"EPERM", "EPERM", ""},
	"perf_event_open":  {"EPERM", "EPERM", "!EPERM"},
	"ioctl_tiocsti":    {"EPERM", "EPERM", "!EPERM"},
	"ioctl_tiocsti_hi": {"EPERM", "EPERM", "!EPERM"},
	"ioctl_tioclinux":  {"EPERM", "EPERM", "!EPERM"},
	"ioctl_tiocgwinsz": {"ok", "ok", "ok"},
	"unshare_newuser":  {"EPERM", "EINVAL", "EINVAL"},
	"clone_newuser":    {"EPERM", "EINVAL", "EINVAL"},
	"clone_newns":      {"EINVAL", "EINVAL", "EINVAL"},
	"clone3":           {"ENOSYS", "EINVAL", "EINVAL"},
	"mount":            {"EPERM", "ENOENT", "ENOENT"},
	"umount2":          {"EPERM", "EINVAL", "EINVAL"},
	"open_tree":        {"EPERM", "EINVAL", "EINVAL"},
	"setns":            {"EPERM", "EBADF", "EBADF"},
}

// seccompMountProbes are the probes of the mount family, which the
// ParentMounts filter leaves to the kernel's own checks.
var seccompMountProbes = map[string]bool{"mount": true, "umount2": true, "open_tree": true}

// seccompHelperWants is the same for the 32-bit helper's probes.
var seccompHelperWants = map[string]seccompWant{
	"getpid":            {"ok", "ok", "ok"},
	"keyctl":            {"EPERM", "EPERM", "ENOTSUP"},
	"ioctl_tiocsti":     {"EPERM", "EPERM", "!EPERM"},
	"x32_ioctl_tiocsti": {"EPERM", "EPERM", "!EPERM"},
}

// TestSeccompLoadThread loads each filter in a child, on one thread only,
// and checks every probe on every thread; see seccompChildFilter.
func TestSeccompLoadThread(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		seccompSkip(t, "the probes and helpers are written for amd64, not %s", runtime.GOARCH)
	}
	helpers := seccompBuildHelpers(t)
	for _, mode := range []string{"deny", "deny-parent-mounts", "allow"} {
		o := seccompModes[mode]
		t.Run("nesting-"+mode, func(t *testing.T) {
			got := seccompRunChild(t, mode, helpers)
			t.Logf("filter chosen in %s ns in a fresh process", got["build_ns"])
			seccompLogResults(t, got)
			pick := func(probe string, w seccompWant, filtered bool) string {
				switch {
				case !filtered:
					return w.unfiltered
				case o.AllowNesting, o.ParentMounts && seccompMountProbes[probe]:
					return w.allow
				}
				return w.deny
			}
			for _, thread := range []string{"filtered", "exec", "before", "after"} {
				filtered := thread == "filtered" || thread == "exec"
				for probe, w := range seccompWants {
					seccompCheck(t, got, thread+"/"+probe, pick(probe, w, filtered))
				}
			}
			if got["filtered/tid"] == got["before/tid"] || got["filtered/tid"] == got["after/tid"] {
				t.Errorf("probes ran on the same thread: %v", got)
			}
			for _, h := range []string{"int80-amd64", "int80-i386"} {
				t.Run(h, func(t *testing.T) {
					if _, ok := helpers[h]; !ok {
						seccompSkip(t, "helper %s could not be built (gcc; gcc-i686-linux-gnu or gcc-multilib for i386)", h)
					}
					for probe, w := range seccompHelperWants {
						if probe == "x32_ioctl_tiocsti" && h == "int80-i386" {
							continue
						}
						seccompCheck(t, got, h+"/"+probe, pick(probe, w, true))
						seccompCheck(t, got, h+"-unfiltered/"+probe, pick(probe, w, false))
					}
				})
			}
		})
	}
}

// seccompLogResults logs every result, one line per thread or program, for
// whoever reads -v output.
func seccompLogResults(t *testing.T, got map[string]string) {
	lines := map[string][]string{}
	for key, val := range got {
		if where, probe, ok := strings.Cut(key, "/"); ok && probe != "tid" {
			lines[where] = append(lines[where], probe+"="+val)
		}
	}
	for _, where := range slices.Sorted(maps.Keys(lines)) {
		slices.Sort(lines[where])
		t.Logf("%s: %s", where, strings.Join(lines[where], " "))
	}
}

// seccompCheck compares one result with its expectation.
func seccompCheck(t *testing.T, got map[string]string, key, want string) {
	t.Helper()
	v, ok := got[key]
	switch {
	case !ok:
		t.Errorf("%s: no result", key)
	case want == "":
		t.Logf("%s: %s (not checked)", key, v)
	case want == "!EPERM" && v == "EPERM", want != "!EPERM" && v != want:
		t.Errorf("%s: %s, want %s", key, v, want)
	}
}

// seccompBuildHelpers compiles testdata/seccomp_int80.c: as an x86-64
// program issuing int 0x80 itself (plain gcc), and as a static i386 program
// with Debian's i686 cross compiler (gcc-i686-linux-gnu, which make check
// installs: unlike gcc-multilib it does not conflict with the arm64 one),
// else gcc -m32. Missing builds are skipped by the caller.
func seccompBuildHelpers(t *testing.T) map[string]string {
	helpers := map[string]string{}
	src, err := filepath.Abs("testdata/seccomp_int80.c")
	if err != nil {
		t.Fatal(err)
	}
	i386 := []string{"gcc", "-m32", "-static"}
	if _, err := exec.LookPath("i686-linux-gnu-gcc"); err == nil {
		i386 = []string{"i686-linux-gnu-gcc", "-static"}
	}
	dir := t.TempDir()
	for name, cc := range map[string][]string{
		"int80-amd64": {"gcc", "-no-pie"},
		"int80-i386":  i386,
	} {
		out := filepath.Join(dir, name)
		args := append(append([]string{"-O2", "-Wall"}, cc[1:]...), "-o", out, src)
		if b, err := exec.Command(cc[0], args...).CombinedOutput(); err != nil {
			t.Logf("%s %s: %v\n%s", cc[0], strings.Join(args, " "), err, b)
			continue
		}
		helpers[name] = out
	}
	return helpers
}

// seccompRunChild runs the test binary as a probe child in a new session
// whose controlling terminal is a fresh pty on its stdin, so that an
// unfiltered TIOCSTI succeeds (the filter, not a missing terminal, must be
// what refuses it), and returns its "key result" lines.
func seccompRunChild(t *testing.T, action string, helpers map[string]string) map[string]string {
	ptmx, pts := seccompPty(t)
	defer ptmx.Close()
	defer pts.Close()
	var hs []string
	for name, path := range helpers {
		hs = append(hs, name+"="+path)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), seccompChildEnv+"="+action, seccompHelpersEnv+"="+strings.Join(hs, ","))
	cmd.Stdin = pts
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &unix.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	err := cmd.Run()
	if err != nil {
		t.Fatalf("child %s: %v\nstdout:\n%s\nstderr:\n%s", action, err, stdout.String(), stderr.String())
	}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		key, val, _ := strings.Cut(line, " ")
		got[key] = val
	}
	return got
}

// seccompPty opens a new pseudo-terminal pair.
func seccompPty(t *testing.T) (ptmx, pts *os.File) {
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		seccompSkip(t, "no pseudo-terminal: %v", err)
	}
	fd := int(ptmx.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		ptmx.Close()
		t.Fatalf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetUint32(fd, unix.TIOCGPTN)
	if err != nil {
		ptmx.Close()
		t.Fatalf("ptsname: %v", err)
	}
	pts, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		ptmx.Close()
		t.Fatalf("open pty: %v", err)
	}
	return ptmx, pts
}
