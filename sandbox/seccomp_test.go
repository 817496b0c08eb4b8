package sandbox

import (
	"bufio"
	"bytes"
	"encoding/binary"
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

	seccomp "github.com/seccomp/libseccomp-golang"
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

// TestSeccompProgram checks that both filters build, fit the kernel's
// limit, start with the architecture check, and reports the build time,
// which is paid once per sandbox start.
func TestSeccompProgram(t *testing.T) {
	for _, o := range []SeccompOptions{{AllowNesting: false}, {AllowNesting: true}} {
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
		t.Logf("%+v: %d instructions, built in %v", o, len(prog), elapsed)
	}
}

// TestSeccompProgramAsync checks that the background build gives the same
// program as the direct one.
func TestSeccompProgramAsync(t *testing.T) {
	wait := startSeccompProgram(SeccompOptions{})
	want, err := seccompProgram(SeccompOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		got, err := wait()
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("startSeccompProgram: program differs from seccompProgram")
		}
	}
}

// BenchmarkSeccompProgram measures the cost of building a filter.
func BenchmarkSeccompProgram(b *testing.B) {
	for b.Loop() {
		if _, err := seccompProgram(SeccompOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestSeccompParseSockFilters checks the decoding of libseccomp's output and
// the refusal of what the kernel would refuse.
func TestSeccompParseSockFilters(t *testing.T) {
	raw := make([]byte, 16)
	binary.NativeEndian.PutUint16(raw[0:], 0x20)
	raw[2], raw[3] = 1, 2
	binary.NativeEndian.PutUint32(raw[4:], 4)
	binary.NativeEndian.PutUint16(raw[8:], 0x06)
	binary.NativeEndian.PutUint32(raw[12:], unix.SECCOMP_RET_ALLOW)
	prog, err := parseSockFilters(raw)
	if err != nil {
		t.Fatal(err)
	}
	want := []unix.SockFilter{{Code: 0x20, Jt: 1, Jf: 2, K: 4}, {Code: 0x06, K: unix.SECCOMP_RET_ALLOW}}
	if fmt.Sprint(prog) != fmt.Sprint(want) {
		t.Errorf("parseSockFilters = %v, want %v", prog, want)
	}
	for _, n := range []int{0, 7, 9, 8 * (unix.BPF_MAXINSNS + 1)} {
		if _, err := parseSockFilters(make([]byte, n)); err == nil {
			t.Errorf("parseSockFilters(%d bytes): no error", n)
		}
	}
	if err := loadSeccompThread(nil); err == nil {
		t.Errorf("loadSeccompThread(nil): no error")
	}
}

// seccompArch is one system call entry point as seccomp sees it.
type seccompArch struct {
	name  string
	audit uint32 // seccomp_data.arch
	arch  seccomp.ScmpArch
}

// seccompArches are the entry points of an amd64 process: x32 shares
// x86-64's audit arch and is told apart by the 0x40000000 bit in the number.
var seccompArches = []seccompArch{
	{"x86_64", unix.AUDIT_ARCH_X86_64, seccomp.ArchAMD64},
	{"x86", unix.AUDIT_ARCH_I386, seccomp.ArchX86},
	{"x32", unix.AUDIT_ARCH_X86_64, seccomp.ArchX32},
}

// seccompCase is one system call and the filter's expected verdicts.
type seccompCase struct {
	call         string
	args         [6]uint64
	deny, permit uint32 // verdict with AllowNesting false, true
}

// Verdicts as the filter returns them.
const (
	seccompAllow  = unix.SECCOMP_RET_ALLOW
	seccompEPERM  = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
	seccompENOSYS = unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
)

// seccompCases lists the verdicts every entry point must give, beyond the
// unconditional lists, which TestSeccompRules walks name by name.
var seccompCases = []seccompCase{
	{"getpid", [6]uint64{}, seccompAllow, seccompAllow},
	{"read", [6]uint64{}, seccompAllow, seccompAllow},
	{"execve", [6]uint64{}, seccompAllow, seccompAllow},
	{"ioctl", [6]uint64{0, unix.TIOCSTI}, seccompEPERM, seccompEPERM},
	{"ioctl", [6]uint64{0, 1<<32 | unix.TIOCSTI}, seccompEPERM, seccompEPERM},
	{"ioctl", [6]uint64{0, 0xffffffff<<32 | unix.TIOCLINUX}, seccompEPERM, seccompEPERM},
	{"ioctl", [6]uint64{0, unix.TIOCLINUX}, seccompEPERM, seccompEPERM},
	{"ioctl", [6]uint64{0, unix.TIOCGWINSZ}, seccompAllow, seccompAllow},
	{"ioctl", [6]uint64{unix.TIOCSTI, 0}, seccompAllow, seccompAllow},
	{"unshare", [6]uint64{unix.CLONE_NEWUSER}, seccompEPERM, seccompAllow},
	{"unshare", [6]uint64{unix.CLONE_NEWUSER | unix.CLONE_NEWNS | unix.CLONE_NEWPID}, seccompEPERM, seccompAllow},
	{"unshare", [6]uint64{1<<32 | unix.CLONE_NEWUSER}, seccompEPERM, seccompAllow},
	{"unshare", [6]uint64{unix.CLONE_NEWNS}, seccompAllow, seccompAllow},
	{"clone", [6]uint64{unix.CLONE_NEWUSER | uint64(unix.SIGCHLD)}, seccompEPERM, seccompAllow},
	{"clone", [6]uint64{unix.CLONE_VM | unix.CLONE_THREAD | unix.CLONE_SIGHAND}, seccompAllow, seccompAllow},
	{"clone", [6]uint64{0, unix.CLONE_NEWUSER}, seccompAllow, seccompAllow},
	{"clone3", [6]uint64{}, seccompENOSYS, seccompAllow},
}

// TestSeccompRules runs the exported program in a small BPF interpreter for
// every listed call on every entry point, so a rule that libseccomp drops on
// one architecture, or a name it cannot resolve, shows without loading
// anything into the kernel.
func TestSeccompRules(t *testing.T) {
	for _, name := range append(append([]string{}, seccompDenied...), seccompNestingDenied...) {
		if _, err := seccomp.GetSyscallFromName(name); err != nil {
			t.Errorf("system call %q unknown to libseccomp: typo?", name)
		}
	}
	for _, allow := range []bool{false, true} {
		prog, err := seccompProgram(SeccompOptions{AllowNesting: allow})
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range seccompArches {
			for _, c := range seccompRuleCases(allow) {
				nr, err := seccomp.GetSyscallFromNameByArch(c.call, a.arch)
				if err != nil || nr < 0 {
					continue // not a system call on this entry point
				}
				want := c.deny
				if allow {
					want = c.permit
				}
				got, err := seccompRunBPF(prog, a.audit, int32(nr), c.args)
				if err != nil {
					t.Fatalf("nesting %v, %s %s: %v", allow, a.name, c.call, err)
				}
				if got != want {
					t.Errorf("nesting %v, %s %s(%#x): verdict %#x, want %#x", allow, a.name, c.call, c.args[:2], got, want)
				}
			}
		}
		got, err := seccompRunBPF(prog, unix.AUDIT_ARCH_AARCH64, 0, [6]uint64{})
		if err != nil || got != unix.SECCOMP_RET_KILL_PROCESS {
			t.Errorf("nesting %v, unknown arch: verdict %#x, %v; want kill process", allow, got, err)
		}
	}
}

// seccompRuleCases adds one case per unconditionally denied name to
// seccompCases.
func seccompRuleCases(allow bool) []seccompCase {
	cases := append([]seccompCase{}, seccompCases...)
	for _, name := range seccompDenied {
		cases = append(cases, seccompCase{call: name, deny: seccompEPERM, permit: seccompEPERM})
	}
	for _, name := range seccompNestingDenied {
		cases = append(cases, seccompCase{call: name, deny: seccompEPERM, permit: seccompAllow})
	}
	return cases
}

// seccompRunBPF interprets prog for one system call as the kernel would
// (struct seccomp_data: nr, arch, ip, args), covering the instructions
// libseccomp emits, and fails on anything else or on a jump out of range.
func seccompRunBPF(prog []unix.SockFilter, arch uint32, nr int32, args [6]uint64) (uint32, error) {
	var data [64]byte
	binary.NativeEndian.PutUint32(data[0:], uint32(nr))
	binary.NativeEndian.PutUint32(data[4:], arch)
	for i, v := range args {
		binary.NativeEndian.PutUint64(data[16+8*i:], v)
	}
	var a, x uint32
	var mem [16]uint32
	for pc := 0; pc < len(prog); pc++ {
		in := prog[pc]
		jump := func(cond bool) {
			if cond {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		}
		switch in.Code {
		case 0x20: // ld [k]
			if in.K > 60 || in.K%4 != 0 {
				return 0, fmt.Errorf("pc %d: load at %d", pc, in.K)
			}
			a = binary.NativeEndian.Uint32(data[in.K:])
		case 0x00: // ld #k
			a = in.K
		case 0x60: // ld M[k]
			a = mem[in.K%16]
		case 0x02: // st M[k]
			mem[in.K%16] = a
		case 0x01: // ldx #k
			x = in.K
		case 0x61: // ldx M[k]
			x = mem[in.K%16]
		case 0x07: // tax
			x = a
		case 0x87: // txa
			a = x
		case 0x54: // and #k
			a &= in.K
		case 0x44: // or #k
			a |= in.K
		case 0x05: // ja k
			pc += int(in.K)
		case 0x15: // jeq #k
			jump(a == in.K)
		case 0x25: // jgt #k
			jump(a > in.K)
		case 0x35: // jge #k
			jump(a >= in.K)
		case 0x45: // jset #k
			jump(a&in.K != 0)
		case 0x06: // ret #k
			return in.K, nil
		case 0x16: // ret a
			return a, nil
		default:
			return 0, fmt.Errorf("pc %d: opcode %#x not interpreted", pc, in.Code)
		}
	}
	return 0, fmt.Errorf("program ran off its end")
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

// seccompChildMain is the re-executed child: "deny" and "allow" load the
// filter on one thread and probe that thread and others; "report" only
// probes its own main thread (it is exec'd from a filtered thread). Results
// go to stdout as "key result" lines.
func seccompChildMain(action string) int {
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	var err error
	switch action {
	case "deny", "allow":
		err = seccompChildFilter(out, SeccompOptions{AllowNesting: action == "allow"})
	case "report":
		seccompReport(out, "")
	default:
		err = fmt.Errorf("unknown child action %q", action)
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
	fmt.Fprintf(out, "build_us %d\n", time.Since(start).Microseconds())
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
// the filter. "!EPERM" accepts any result but EPERM; "" accepts anything
// (the result depends on the machine's sysctls and privileges). Linux's
// EOPNOTSUPP is ENOTSUP, and unix.ErrnoName calls it that.
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
	for _, mode := range []string{"deny", "allow"} {
		t.Run("nesting-"+mode, func(t *testing.T) {
			got := seccompRunChild(t, mode, helpers)
			t.Logf("filter built in %s µs in a fresh process", got["build_us"])
			seccompLogResults(t, got)
			pick := func(w seccompWant, filtered bool) string {
				switch {
				case !filtered:
					return w.unfiltered
				case mode == "deny":
					return w.deny
				}
				return w.allow
			}
			for _, thread := range []string{"filtered", "exec", "before", "after"} {
				filtered := thread == "filtered" || thread == "exec"
				for probe, w := range seccompWants {
					seccompCheck(t, got, thread+"/"+probe, pick(w, filtered))
				}
			}
			if got["filtered/tid"] == got["before/tid"] || got["filtered/tid"] == got["after/tid"] {
				t.Errorf("probes ran on the same thread: %v", got)
			}
			for _, h := range []string{"int80-amd64", "int80-i386"} {
				t.Run(h, func(t *testing.T) {
					if _, ok := helpers[h]; !ok {
						seccompSkip(t, "helper %s could not be built (gcc; gcc-multilib for i386)", h)
					}
					for probe, w := range seccompHelperWants {
						if probe == "x32_ioctl_tiocsti" && h == "int80-i386" {
							continue
						}
						seccompCheck(t, got, h+"/"+probe, pick(w, true))
						seccompCheck(t, got, h+"-unfiltered/"+probe, pick(w, false))
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
// where gcc-multilib is installed. Missing builds are skipped by the caller.
func seccompBuildHelpers(t *testing.T) map[string]string {
	helpers := map[string]string{}
	src, err := filepath.Abs("testdata/seccomp_int80.c")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, flags := range map[string][]string{
		"int80-amd64": {"-no-pie"},
		"int80-i386":  {"-m32", "-static"},
	} {
		out := filepath.Join(dir, name)
		args := append(append([]string{"-O2", "-Wall"}, flags...), "-o", out, src)
		if b, err := exec.Command("gcc", args...).CombinedOutput(); err != nil {
			t.Logf("gcc %s: %v\n%s", strings.Join(args, " "), err, b)
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
