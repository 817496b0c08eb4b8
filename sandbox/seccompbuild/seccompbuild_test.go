//go:build linux && cgo

package seccompbuild

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"go/parser"
	"go/token"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	seccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"
)

// TestNamesKnown catches a typo in the rule lists: addRule skips names
// libseccomp cannot resolve, on purpose, for older libseccomp versions.
func TestNamesKnown(t *testing.T) {
	for _, list := range [][]string{Denied, NamespaceCalls, MountCalls} {
		for _, name := range list {
			if _, err := seccomp.GetSyscallFromName(name); err != nil {
				t.Errorf("system call %q unknown to libseccomp %s: typo?", name, LibraryVersion())
			}
		}
	}
}

// TestProgram builds every variant, checks the kernel's limit and the
// architecture check up front, and reports the build time that selfdock no
// longer pays at start-up.
func TestProgram(t *testing.T) {
	if _, ok := CompatArches[runtime.GOARCH]; !ok {
		t.Skipf("no rules for GOARCH %s", runtime.GOARCH)
	}
	for _, v := range Variants {
		start := time.Now()
		prog, err := Program(v.Options)
		elapsed := time.Since(start)
		if err != nil {
			t.Fatalf("%s: %v", v.Field, err)
		}
		if len(prog) == 0 || len(prog) > unix.BPF_MAXINSNS {
			t.Fatalf("%s: %d instructions", v.Field, len(prog))
		}
		if prog[0].Code != unix.BPF_LD|unix.BPF_W|unix.BPF_ABS || prog[0].K != 4 {
			t.Errorf("%s: first instruction %+v does not load the arch", v.Field, prog[0])
		}
		for pc, text := range Disassemble(prog) {
			if strings.HasPrefix(text, "opcode") {
				t.Errorf("%s: %d: unknown %s", v.Field, pc, text)
			}
		}
		t.Logf("%s %+v: %d instructions, built in %v", v.Field, v.Options, len(prog), elapsed)
	}
}

// BenchmarkProgram measures what building one filter with libseccomp costs.
func BenchmarkProgram(b *testing.B) {
	for b.Loop() {
		if _, err := Program(Options{ParentMounts: true}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestGenerateGo checks that the generated source parses, carries the
// generated-code marker Go tools look for, names the libseccomp version and
// is deterministic.
func TestGenerateGo(t *testing.T) {
	if _, ok := CompatArches[runtime.GOARCH]; !ok {
		t.Skipf("no rules for GOARCH %s", runtime.GOARCH)
	}
	src, err := GenerateGo("sandbox")
	if err != nil {
		t.Fatal(err)
	}
	f, err := parser.ParseFile(token.NewFileSet(), "gen.go", src, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	first := f.Comments[0].List[0].Text
	if !strings.HasPrefix(first, "// Code generated ") || !strings.HasSuffix(first, " DO NOT EDIT.") ||
		!strings.Contains(first, "libseccomp "+LibraryVersion()) {
		t.Errorf("first line %q", first)
	}
	again, err := GenerateGo("sandbox")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(src, again) {
		t.Errorf("two runs give different source")
	}
	for _, v := range Variants {
		if !bytes.Contains(src, []byte("\t"+v.Field+": []unix.SockFilter{\n")) {
			t.Errorf("no field %s", v.Field)
		}
	}
}

// TestDisassemble checks the comments of a hand-written program.
func TestDisassemble(t *testing.T) {
	prog := []unix.SockFilter{
		{Code: 0x20, K: 4},
		{Code: 0x15, Jf: 4, K: unix.AUDIT_ARCH_X86_64},
		{Code: 0x20, K: 0},
		{Code: 0x15, Jt: 1, K: uint32(unix.SYS_MOUNT)},
		{Code: 0x06, K: unix.SECCOMP_RET_ALLOW},
		{Code: 0x06, K: unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)},
		{Code: 0x06, K: unix.SECCOMP_RET_KILL_PROCESS},
	}
	want := []string{
		"ld arch",
		"jeq 0xc000003e ? 2 : 6 (amd64)",
		"ld nr",
		fmt.Sprintf("jeq %#x ? 5 : 4", unix.SYS_MOUNT),
		"ret ALLOW",
		"ret ERRNO(EPERM)",
		"ret KILL_PROCESS",
	}
	if runtime.GOARCH == "amd64" {
		want[3] += " (mount)"
	}
	got := Disassemble(prog)
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("%d: %q, want %q", i, got[i], want[i])
		}
	}
}

// TestParseSockFilters checks the decoding of libseccomp's output and the
// refusal of what the kernel would refuse.
func TestParseSockFilters(t *testing.T) {
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
}

// TestPrintFilter logs libseccomp's readable form of the strictest filter,
// for whoever reads -v output.
func TestPrintFilter(t *testing.T) {
	if !testing.Verbose() {
		t.Skip("only with -v")
	}
	f, err := NewFilter(Options{})
	if err != nil {
		t.Skip(err)
	}
	defer f.Release()
	tmp, err := os.CreateTemp(t.TempDir(), "pfc")
	if err != nil {
		t.Fatal(err)
	}
	defer tmp.Close()
	if err := f.ExportPFC(tmp); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(tmp.Name())
	t.Logf("%s", b)
}
