//go:build linux && amd64 && cgo

package sandbox

// The tests that need libseccomp: system call numbers of every entry point
// for the BPF interpreter, and the generator. They link libseccomp into the
// test binary only; the sandbox package itself never imports it.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"reflect"
	"slices"
	"testing"
	"unsafe"

	seccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"

	"github.com/selfdock/selfdock/sandbox/seccompbuild"
)

// Verdicts as the filter returns them.
const (
	seccompAllow  = unix.SECCOMP_RET_ALLOW
	seccompEPERM  = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
	seccompENOSYS = unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
)

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
	{"socket", [6]uint64{unix.AF_VSOCK, unix.SOCK_STREAM}, seccompEPERM, seccompEPERM},
	{"socket", [6]uint64{1<<32 | unix.AF_VSOCK}, seccompEPERM, seccompEPERM},
	{"socket", [6]uint64{unix.AF_INET, unix.SOCK_STREAM}, seccompAllow, seccompAllow},
	{"socket", [6]uint64{unix.AF_UNIX, unix.SOCK_STREAM}, seccompAllow, seccompAllow},
}

// seccompCaseWant is c's expected verdict under o: the mount family is
// allowed by the ParentMounts filter too.
func seccompCaseWant(c seccompCase, o SeccompOptions) uint32 {
	if o.AllowNesting || o.ParentMounts && slices.Contains(seccompbuild.MountCalls, c.call) {
		return c.permit
	}
	return c.deny
}

// TestSeccompRules runs each embedded program in a small BPF interpreter for
// every listed call on every entry point, so a rule that libseccomp drops on
// one architecture, a name it cannot resolve, or a rule list edited without
// `go generate ./sandbox` shows without loading anything into the kernel.
func TestSeccompRules(t *testing.T) {
	for _, o := range seccompVariants {
		prog, err := seccompProgram(o)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range seccompArches {
			for _, c := range seccompRuleCases() {
				nr, err := seccomp.GetSyscallFromNameByArch(c.call, a.arch)
				if err != nil || nr < 0 {
					continue // not a system call on this entry point
				}
				want := seccompCaseWant(c, o)
				got, err := seccompRunBPF(prog, a.audit, int32(nr), c.args)
				if err != nil {
					t.Fatalf("%+v, %s %s: %v", o, a.name, c.call, err)
				}
				if got != want {
					t.Errorf("%+v, %s %s(%#x): verdict %#x, want %#x", o, a.name, c.call, c.args[:2], got, want)
				}
			}
		}
		seccompCheckNumbers(t, o, prog)
		got, err := seccompRunBPF(prog, unix.AUDIT_ARCH_AARCH64, 0, [6]uint64{})
		if err != nil || got != unix.SECCOMP_RET_KILL_PROCESS {
			t.Errorf("%+v, unknown arch: verdict %#x, %v; want kill process", o, got, err)
		}
	}
}

// seccompCheckNumbers checks the verdicts by number, for calls libseccomp
// may not know by name: seccompbuild.NewMountCalls as the mount family, and
// every number above seccompbuild.LastReviewed fails with ENOSYS on every
// entry point (x32's own calls, 512-547, excepted), while the reviewed ones
// just below it reach the rules.
func seccompCheckNumbers(t *testing.T, o SeccompOptions, prog []unix.SockFilter) {
	t.Helper()
	mount := uint32(seccompEPERM)
	if o.AllowNesting || o.ParentMounts {
		mount = seccompAllow
	}
	type num struct {
		nr   uint32
		want uint32
	}
	nums := []num{{seccompbuild.LastReviewed, seccompAllow}, {seccompbuild.LastReviewed - 1, seccompAllow},
		{seccompbuild.LastReviewed + 1, seccompENOSYS}, {500, seccompENOSYS}, {1 << 20, seccompENOSYS}}
	for _, nr := range seccompbuild.NewMountCalls {
		nums = append(nums, num{nr, mount})
	}
	for _, a := range seccompArches {
		bit, cases := uint32(0), nums
		if a.name == "x32" {
			bit = 0x40000000
			cases = append(append([]num{}, nums...), num{512, seccompAllow}, num{547, seccompAllow}, num{548, seccompENOSYS})
		}
		for _, c := range cases {
			got, err := seccompRunBPF(prog, a.audit, int32(c.nr|bit), [6]uint64{})
			if err != nil {
				t.Fatalf("%+v, %s number %d: %v", o, a.name, c.nr, err)
			}
			if got != c.want {
				t.Errorf("%+v, %s number %d: verdict %#x, want %#x", o, a.name, c.nr, got, c.want)
			}
		}
	}
}

// seccompRuleCases adds one case per name of seccompbuild's lists to
// seccompCases.
func seccompRuleCases() []seccompCase {
	cases := append([]seccompCase{}, seccompCases...)
	for _, name := range seccompbuild.Denied {
		cases = append(cases, seccompCase{call: name, deny: seccompEPERM, permit: seccompEPERM})
	}
	for _, name := range append(append([]string{}, seccompbuild.NamespaceCalls...), seccompbuild.MountCalls...) {
		cases = append(cases, seccompCase{call: name, deny: seccompEPERM, permit: seccompAllow})
	}
	return cases
}

// TestSeccompGenerated rebuilds every program with libseccomp and compares
// it with the embedded one, and the whole generated file with what
// `go generate ./sandbox` would write now: rules, generator and file cannot
// drift apart. A different libseccomp version may emit other (equivalent)
// code; then the byte comparison is skipped and TestSeccompRules still
// checks the embedded programs against the rules.
func TestSeccompGenerated(t *testing.T) {
	if n := reflect.TypeFor[seccompPrograms]().NumField(); n != len(seccompbuild.Variants) {
		t.Errorf("seccompPrograms has %d fields, seccompbuild.Variants %d", n, len(seccompbuild.Variants))
	}
	version := seccompbuild.LibraryVersion()
	same := version == seccompBPFLibseccomp
	for _, v := range seccompbuild.Variants {
		// A conversion, so SeccompOptions and seccompbuild.Options must keep
		// the same fields.
		o := SeccompOptions(v.Options)
		embedded, err := seccompProgram(o)
		if err != nil {
			t.Fatal(err)
		}
		field := reflect.ValueOf(seccompBPF).FieldByName(v.Field)
		if !field.IsValid() || field.Len() == 0 || field.Index(0).Addr().UnsafePointer() != unsafe.Pointer(&embedded[0]) {
			t.Errorf("seccompProgram(%+v) is not seccompBPF.%s", o, v.Field)
		}
		fresh, err := seccompbuild.Program(v.Options)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(fresh, embedded) {
			if !same {
				t.Skipf("%+v: libseccomp %s builds another program than the embedded one from libseccomp %s; not comparing", o, version, seccompBPFLibseccomp)
			}
			t.Errorf("%+v: the embedded program (%d instructions) differs from what libseccomp %s builds now (%d): run `go generate ./sandbox`",
				o, len(embedded), version, len(fresh))
		}
	}
	want, err := seccompbuild.GenerateGo("sandbox")
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("seccomp_bpf_linux_amd64.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		if !same {
			t.Skipf("seccomp_bpf_linux_amd64.go comes from libseccomp %s, this is %s; not comparing", seccompBPFLibseccomp, version)
		}
		t.Errorf("seccomp_bpf_linux_amd64.go is not what seccompgen writes now: run `go generate ./sandbox`")
	}
}
