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
	"sync"
	"testing"
	"time"

	"github.com/selfdock/selfdock/tests/internal/testimage"
)

// mustWork turns every skip into a failure (set in CI).
var mustWork = os.Getenv("SELFDOCK_MUST_WORK") == "1"

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

// skipOrFail skips the test, unless SELFDOCK_MUST_WORK=1 asks that
// everything runs, in which case the skip is a failure.
func skipOrFail(t testing.TB, reason string) {
	t.Helper()
	if mustWork {
		t.Fatalf("SELFDOCK_MUST_WORK=1, cannot skip: %s", reason)
	}
	t.Skip(reason)
}

// fixture is what every VM test needs, made once for all of them.
type fixture struct {
	kernel   string   // Debian's vmlinuz
	brd      string   // its RAM disk module, for a swap area boot must turn off
	selfdock string   // a statically linked selfdock
	applets  []string // busybox's applets, each linked in the initramfs's /bin
}

var (
	fixOnce sync.Once
	fix     fixture
	fixErr  error
)

// need returns the fixture, skipping when not root and failing when it
// cannot be made (a missing package or kernel is a failure, not a skip:
// root can install them).
func need(t *testing.T) fixture {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOrFail(t, "needs root: installs qemu-system-x86 and busybox-static and downloads the kernel with apt-get")
	}
	fixOnce.Do(func() { fix, fixErr = setup() })
	if fixErr != nil {
		t.Fatal(fixErr)
	}
	return fix
}

func setup() (f fixture, err error) {
	if err = aptEnsure("qemu-system-x86", "busybox-static"); err != nil {
		return f, err
	}
	if f.applets, err = testimage.Applets(); err != nil {
		return f, err
	}
	if f.kernel, err = debianKernel(cacheDir); err != nil {
		return f, err
	}
	if f.brd = brdModule(f.kernel); !exists(f.brd) {
		return f, fmt.Errorf("no cached %s: remove %s and run again", f.brd, f.kernel)
	}
	f.selfdock, err = selfdockBinary()
	return f, err
}

// selfdockBinary is $SELFDOCK_BIN, else a build like make's. It must be
// static: the initramfs and the image have no libc.
func selfdockBinary() (string, error) {
	bin := os.Getenv("SELFDOCK_BIN")
	if bin == "" {
		bin = filepath.Join(scratch, "selfdock")
		if err := buildSelfdock(bin); err != nil {
			return "", err
		}
	}
	ef, err := elf.Open(bin)
	if err != nil {
		return "", fmt.Errorf("selfdock binary: %w", err)
	}
	defer ef.Close()
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP {
			return "", fmt.Errorf("selfdock binary %s: dynamically linked; the VM has no libc (build it as make does)", bin)
		}
	}
	return bin, nil
}

// buildSelfdock builds the binary as make and tests/harness_test.go do:
// static, cgo (libseccomp), without glibc's NSS.
func buildSelfdock(out string) error {
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
	cmd := exec.CommandContext(ctx, goTool(), "build", "-trimpath", "-tags", "osusergo,netgo",
		"-ldflags", "-s -w -linkmode external -extldflags -static", "-o", out, "./cmd/selfdock")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/selfdock in %s: %v\n%s", root, err, b)
	}
	return nil
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "/usr/local/go/bin/go"
}
