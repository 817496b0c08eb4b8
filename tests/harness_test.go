package tests

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/selfdock/selfdock/tests/internal/testenv"
)

// h is the harness set up once by TestMain; setupErr says why it is unusable.
var (
	h        *harness
	setupErr error
)

// account is one unprivileged test user, with every group it belongs to.
type account struct {
	name   string
	uid    int
	gid    int
	groups []uint32 // primary and supplementary gids, as os/user reports them
}

type harness struct {
	fix   string  // fixture root: fresh, root-owned, 0755, under /var/tmp
	bin   string  // the setuid-root selfdock binary
	segv  string  // a static program that dies by SIGSEGV; "" when gcc failed
	probe string  // a static program printing "euid=N setuid0=R"; "" when gcc failed
	home  string  // sdtest's working directory: owned by sdtest, 0755
	user  account // sdtest: runs every command; member of sdextra
	other account // sdother: owns directories sdtest cannot enter
}

func TestMain(m *testing.M) {
	flag.Parse()
	if os.Geteuid() == 0 {
		h, setupErr = setup()
	}
	code := m.Run()
	if h != nil {
		h.teardown()
	}
	os.Exit(code)
}

// skipOrFail skips, or fails under SELFDOCK_MUST_WORK=1.
var skipOrFail = testenv.SkipOrFail

// need returns the harness, skipping when not root and failing when the
// set-up (user creation, build, install) failed.
func need(t testing.TB) *harness {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOrFail(t, "needs root: installs a setuid binary and creates users sdtest/sdother")
	}
	if setupErr != nil {
		t.Fatalf("set-up failed: %v", setupErr)
	}
	return h
}

func setup() (*harness, error) {
	var err error
	h := &harness{}
	if h.user, err = ensureUser("sdtest", "sdextra"); err != nil {
		return nil, err
	}
	if h.other, err = ensureUser("sdother", ""); err != nil {
		return nil, err
	}
	if h.fix, err = os.MkdirTemp("/var/tmp", "selfdock-e2e-"); err != nil {
		return nil, err
	}
	if err = os.Chmod(h.fix, 0o755); err != nil {
		return h, err
	}
	binDir := filepath.Join(h.fix, "bin")
	if err = mkdirOwned(binDir, 0o755, nil); err != nil {
		return h, err
	}
	h.home = filepath.Join(h.fix, "home")
	if err = mkdirOwned(h.home, 0o755, &h.user); err != nil {
		return h, err
	}
	if err = mkdirOwned(filepath.Join(h.fix, "t"), 0o755, nil); err != nil {
		return h, err
	}
	h.bin = filepath.Join(binDir, "selfdock")
	if err = buildSelfdock(h.bin); err != nil {
		return h, err
	}
	if err = os.Chown(h.bin, 0, 0); err != nil {
		return h, err
	}
	// chmod after chown: chown clears the setuid bit. (os.Chmod would take
	// 0o4755 as an os.FileMode and drop the setuid bit.)
	if err = syscall.Chmod(h.bin, 0o4755); err != nil {
		return h, err
	}
	ensureBusybox()
	h.segv = buildC(binDir, "segv", "int main(void){ *(volatile int *)0 = 0; return 0; }\n")
	h.probe = buildC(binDir, "probe", probeC)
	return h, nil
}

// ensureUser creates a system user with its own group (and adds it to the
// supplementary group extra) unless that is already done.
func ensureUser(name, extra string) (account, error) {
	if _, err := user.Lookup(name); err != nil {
		if err := runRoot("useradd", "--system", "-M", "-U", "--shell", "/bin/sh", name); err != nil {
			return account{}, err
		}
	}
	if extra != "" {
		if _, err := user.LookupGroup(extra); err != nil {
			if err := runRoot("groupadd", "--system", extra); err != nil {
				return account{}, err
			}
		}
		if err := runRoot("usermod", "-a", "-G", extra, name); err != nil {
			return account{}, err
		}
	}
	u, err := user.Lookup(name)
	if err != nil {
		return account{}, err
	}
	a := account{name: name}
	a.uid, _ = strconv.Atoi(u.Uid)
	a.gid, _ = strconv.Atoi(u.Gid)
	ids, err := u.GroupIds()
	if err != nil {
		return account{}, fmt.Errorf("groups of %s: %w", name, err)
	}
	for _, s := range ids {
		g, err := strconv.Atoi(s)
		if err != nil {
			return account{}, fmt.Errorf("group id %q of %s: %w", s, name, err)
		}
		a.groups = append(a.groups, uint32(g))
	}
	if extra != "" && len(a.groups) < 2 {
		return account{}, fmt.Errorf("%s has no supplementary group after usermod: %v", name, ids)
	}
	return a, nil
}

// ensureBusybox installs Debian's busybox-static when /bin/busybox is
// missing; tests that need it skip (or fail) if that does not work.
func ensureBusybox() {
	if _, err := os.Stat("/bin/busybox"); err == nil {
		return
	}
	install := []string{"apt-get", "install", "-y", "-qq", "busybox-static"}
	if runRoot(install[0], install[1:]...) != nil {
		_ = runRoot("apt-get", "update", "-qq")
		_ = runRoot(install[0], install[1:]...)
	}
}

func runRoot(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "/usr/local/go/bin/go"
}

func buildSelfdock(out string) error { return buildSelfdockFlags(out, "") }

// buildSelfdockFlags builds the setuid binary as make does, with extra
// -ldflags (the policy path hook).
func buildSelfdockFlags(out, ldflags string) error {
	gomod, err := exec.Command(goTool(), "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	if root == "." || root == "" {
		root = ".."
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// SELFDOCK_TEST_TAGS adds build tags, e.g. sdptrace to run the suite on
	// the other start-up path (procfs pidns option, ptrace).
	cmd := exec.CommandContext(ctx, filepath.Join(root, "scripts", "gobuild"), out, os.Getenv("SELFDOCK_TEST_TAGS"), ldflags)
	cmd.Env = append(os.Environ(), "GO="+goTool())
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("scripts/gobuild in %s: %v\n%s", root, err, b)
	}
	return nil
}

// buildSetuid builds selfdock with extra -ldflags into out and makes it
// setuid root (syscall.Chmod: os.Chmod would drop the setuid bit).
func buildSetuid(out, ldflags string) error {
	if err := buildSelfdockFlags(out, ldflags); err != nil {
		return err
	}
	if err := os.Chown(out, 0, 0); err != nil {
		return err
	}
	return syscall.Chmod(out, 0o4755)
}

// probeC tells whether it runs with privilege: its effective uid, and
// whether setuid(0) succeeded (0) or not (-1).
const probeC = `#include <stdio.h>
#include <unistd.h>
int main(void) {
	int euid = (int)geteuid();
	printf("euid=%d setuid0=%d\n", euid, setuid(0));
	return 0;
}
`

// buildC compiles a static C helper; "" if that fails. One of them, segv,
// faults at once: the kernel forces a fault's SIGSEGV even on a PID
// namespace's init, the one way for CMD (PID 1) to die by its own signal.
func buildC(dir, name, code string) string {
	src := filepath.Join(dir, name+".c")
	out := filepath.Join(dir, name)
	if os.WriteFile(src, []byte(code), 0o644) != nil {
		return ""
	}
	if runRoot("gcc", "-static", "-O0", "-o", out, src) != nil {
		return ""
	}
	return out
}

func (h *harness) teardown() {
	if h.fix == "" {
		return
	}
	// Unmount whatever a test left mounted under the fixture, deepest first,
	// and remove nothing if that fails: RemoveAll must not walk into a mount.
	mps := mountsUnder(h.fix)
	for i := len(mps) - 1; i >= 0; i-- {
		_ = syscall.Unmount(mps[i], syscall.MNT_DETACH)
	}
	if left := mountsUnder(h.fix); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "tests: leaving %s: still mounted: %v\n", h.fix, left)
		return
	}
	_ = os.RemoveAll(h.fix)
}

// mountsUnder lists the host's mount points at or below dir, in mountinfo order.
func mountsUnder(dir string) []string {
	var out []string
	for _, m := range readMountinfo(nil) {
		if m.point == dir || strings.HasPrefix(m.point, dir+"/") {
			out = append(out, m.point)
		}
	}
	return out
}

type mountEntry struct {
	point string // mount point
	opts  string // per-mount options (ro, nosuid, ...)
	fs    string // filesystem type
	line  string
}

// readMountinfo parses mountinfo text; nil reads the test's own.
func readMountinfo(text []byte) []mountEntry {
	if text == nil {
		text, _ = os.ReadFile("/proc/self/mountinfo")
	}
	var out []mountEntry
	for _, line := range strings.Split(strings.TrimSpace(string(text)), "\n") {
		f := strings.Fields(line)
		sep := -1
		for i, w := range f {
			if w == "-" {
				sep = i
				break
			}
		}
		if len(f) < 6 || sep < 0 || sep+1 >= len(f) {
			continue
		}
		out = append(out, mountEntry{point: unescapeOctal(f[4]), opts: f[5], fs: f[sep+1], line: line})
	}
	return out
}

var octal = regexp.MustCompile(`\\[0-7]{3}`)

func unescapeOctal(s string) string {
	return octal.ReplaceAllStringFunc(s, func(m string) string {
		n, _ := strconv.ParseUint(m[1:], 8, 8)
		return string(rune(n))
	})
}
