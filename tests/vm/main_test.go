package vm

import (
	"context"
	"debug/elf"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/selfdock/selfdock/tests/internal/testenv"
	"github.com/selfdock/selfdock/tests/internal/testimage"
)

// scratch holds what the tests build (selfdock, initramfs images); TestMain
// removes it.
var scratch string

func TestMain(m *testing.M) {
	flag.Parse()
	var err error
	if scratch, err = os.MkdirTemp("", "selfdock-vm-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(scratch)
	os.Exit(code)
}

// skipOrFail skips, or fails under SELFDOCK_MUST_WORK=1.
var skipOrFail = testenv.SkipOrFail

// fixture is what every VM test of one architecture needs, made once for
// all of them.
type fixture struct {
	arch     *arch
	kernel   string   // Debian's vmlinuz
	brd      string   // its RAM disk module, for a swap area boot must turn off
	selfdock string   // a statically linked selfdock
	busybox  string   // a static busybox for the guest
	applets  []string // busybox's applets, each linked in the initramfs's /bin
}

// need returns a's fixture, skipping when not root and failing when it
// cannot be made (a missing package or kernel is a failure, not a skip:
// root can install them).
func need(t *testing.T, a *arch) fixture {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOrFail(t, "needs root: installs "+strings.Join(a.hostPackages(), " ")+
			" and downloads the kernel with apt-get")
	}
	a.once.Do(func() { a.fix, a.err = setup(a) })
	if a.err != nil {
		t.Fatal(a.err)
	}
	return a.fix
}

// setup: the host's busybox lists the applets of the guest's too, which
// may not run here; both come from the same Debian release, and a link to
// an applet the guest's lacks would only fail if used. A foreign a's
// private package lists are refreshed once, here, for the busybox and the
// kernel: offline, each attempt costs seconds.
func setup(a *arch) (f fixture, err error) {
	f.arch = a
	if err = aptEnsure(a.hostPackages()...); err != nil {
		return f, err
	}
	if f.applets, err = testimage.Applets(); err != nil {
		return f, err
	}
	aptFor(a).refresh()
	if f.busybox, err = debianBusybox(a); err != nil {
		return f, err
	}
	if f.kernel, err = debianKernel(a); err != nil {
		return f, err
	}
	if f.brd = brdModule(f.kernel); !exists(f.brd) {
		return f, fmt.Errorf("no cached %s: remove %s and run again", f.brd, f.kernel)
	}
	f.selfdock, err = selfdockBinary(a)
	return f, err
}

// selfdockBinary is $SELFDOCK_BIN (for arm64 $SELFDOCK_BIN_ARM64), else a
// build like make's. It must be static, the initramfs and the image have
// no libc, and for a's machine.
func selfdockBinary(a *arch) (string, error) {
	bin := os.Getenv(a.binEnv)
	if bin == "" {
		bin = filepath.Join(scratch, "selfdock-"+a.name)
		if err := buildSelfdock(a, bin); err != nil {
			return "", err
		}
	}
	ef, err := elf.Open(bin)
	if err != nil {
		return "", fmt.Errorf("selfdock binary: %w", err)
	}
	defer ef.Close()
	if ef.Machine != a.machineE {
		return "", fmt.Errorf("selfdock binary %s: built for %v, the %s VM needs %v", bin, ef.Machine, a.name, a.machineE)
	}
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP {
			return "", fmt.Errorf("selfdock binary %s: dynamically linked; the VM has no libc (build it as make does)", bin)
		}
	}
	return bin, nil
}

// buildSelfdock builds the binary as make and tests/harness_test.go do
// (scripts/gobuild); for a foreign a with its cross compiler and glibc
// (gcc-aarch64-linux-gnu and libc6-dev-arm64-cross have the libc.a the
// static link needs).
func buildSelfdock(a *arch, out string) error {
	gomod, err := exec.Command(goTool(), "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	if root == "." || root == "" {
		root = "../.."
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(root, "scripts", "gobuild"), out)
	env := []string{"GO=" + goTool(), "GOARCH=" + a.name}
	if a.foreign() {
		env = append(env, "CC="+a.cc)
	}
	cmd.Env = append(os.Environ(), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s scripts/gobuild in %s: %v\n%s", strings.Join(env, " "), root, err, b)
	}
	return nil
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "/usr/local/go/bin/go"
}
