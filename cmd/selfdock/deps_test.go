package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// allowedDeps are the package boundaries of DESIGN.md: what each package of
// this module may import (stdlib always allowed). A key names a top-level
// directory, which covers its subpackages, or a subpackage with an entry of
// its own. Only the build-time seccomp generator (sandbox/seccompbuild) may
// import libseccomp: selfdock embeds the programs it generated.
var allowedDeps = map[string][]string{
	"policy":               {"github.com/BurntSushi/toml"},
	"oci":                  {},
	"sandbox":              {"golang.org/x/sys/", "github.com/syndtr/gocapability/", "github.com/CalebQ42/squashfs", "policy", "internal/procfs"},
	"sandbox/seccompbuild": {"golang.org/x/sys/", "github.com/seccomp/libseccomp-golang"},
	"image":                {"golang.org/x/sys/", "github.com/google/go-containerregistry/", "github.com/klauspost/compress/", "github.com/ulikunitz/xz", "github.com/CalebQ42/squashfs"},
	"boot":                 {"golang.org/x/sys/", "image", "internal/procfs"},
	"internal":             {},
}

// TestImportBoundaries checks the direct imports of each package.
func TestImportBoundaries(t *testing.T) {
	out, err := exec.Command("go", "list", "-json", "github.com/selfdock/selfdock/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	const mod = "github.com/selfdock/selfdock/"
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p struct {
			ImportPath string
			Imports    []string
			Standard   bool
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		name := strings.TrimPrefix(p.ImportPath, mod)
		top, _, _ := strings.Cut(name, "/")
		allowed, ok := allowedDeps[name]
		if !ok {
			allowed, ok = allowedDeps[top]
		}
		if !ok {
			continue
		}
		for _, imp := range p.Imports {
			if !strings.Contains(strings.Split(imp, "/")[0], ".") && !strings.HasPrefix(imp, mod) {
				continue // standard library
			}
			if strings.HasPrefix(imp, mod+top+"/") || imp == "C" {
				continue
			}
			if !permitted(imp, allowed, mod) {
				t.Errorf("%s imports %s, outside its boundary", p.ImportPath, imp)
			}
		}
	}
}

// TestNoLibseccompLinked checks that selfdock itself does not link
// libseccomp, directly or through another package: its seccomp programs are
// generated at build time (go generate ./sandbox) and embedded.
func TestNoLibseccompLinked(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/selfdock/selfdock/cmd/selfdock").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.Contains(p, "libseccomp") || strings.HasSuffix(p, "/seccompbuild") {
			t.Errorf("selfdock depends on %s", p)
		}
	}
}

func permitted(imp string, allowed []string, mod string) bool {
	for _, a := range allowed {
		if strings.HasPrefix(imp, a) || imp == mod+a || strings.HasPrefix(imp, mod+a+"/") {
			return true
		}
	}
	return false
}

// privilegedCalls may appear only in sandbox/ and boot/.
var privilegedCalls = []string{"Mount(", "Unmount(", "PivotRoot(", "Chroot(", "Unshare(", "Setns(", "Setuid(",
	"Setresuid(", "Setgroups(", "Setfsuid(", "Capset(", "Prctl(", "Mknod(", "Mknodat(", "PtraceAttach(", "Reboot(", "OpenTree(", "MoveMount("}

// TestPrivilegedCallsConfined greps the other packages for privileged calls.
func TestPrivilegedCallsConfined(t *testing.T) {
	out, err := exec.Command("sh", "-c", "cd ../.. && git ls-files '*.go' 2>/dev/null || find . -name '*.go'").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range strings.Fields(string(out)) {
		f = strings.TrimPrefix(f, "./")
		if strings.HasPrefix(f, "sandbox/") || strings.HasPrefix(f, "boot/") || strings.HasPrefix(f, "tests/") ||
			strings.HasPrefix(f, "bench/") || strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile("../../" + f)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range privilegedCalls {
			// image keeps device nodes only when the real root imports
			// (for boot); a plain user's import drops them.
			if c == "Mknodat(" && strings.HasPrefix(f, "image/") {
				continue
			}
			if strings.Contains(string(b), "unix."+c) || strings.Contains(string(b), "syscall."+c) {
				t.Errorf("%s calls %s outside sandbox/ and boot/", f, c)
			}
		}
	}
}
