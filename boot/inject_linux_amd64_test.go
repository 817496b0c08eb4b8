package boot

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Kernel restart codes as register values (two's complement).
const (
	errRestartSysU    = uint64(1<<64 - 512)
	errRestartNoHandU = uint64(1<<64 - 514)
	errRestartBlockU  = uint64(1<<64 - 516)
)

func regs(orig, rax, rip uint64) unix.PtraceRegs {
	return unix.PtraceRegs{Orig_rax: orig, Rax: rax, Rip: rip}
}

func TestRestarted(t *testing.T) {
	const wait4 = 61
	for _, tc := range []struct {
		rax, wantRax uint64
		back         uint64
	}{
		{uint64(errRestartSysU), wait4, 2},
		{uint64(errRestartNoHandU), wait4, 2},
		{uint64(errRestartBlockU), sysRestartSyscall, 2},
		{^uint64(3), ^uint64(3), 0}, // -EINTR: returned as it is
	} {
		r := regs(wait4, tc.rax, 1000)
		got := restarted(r)
		if got.Rax != tc.wantRax || got.Rip != 1000-tc.back || int64(got.Orig_rax) != -1 {
			t.Errorf("restarted(rax %#x) = rax %#x rip %d orig %#x", tc.rax, got.Rax, got.Rip, got.Orig_rax)
		}
	}
}

func TestBlockLayout(t *testing.T) {
	const at = 0x7000
	b := block("/proc/9/exe", []string{"selfdock", "boot-init"}, at)
	if len(b)%8 != 0 || !strings.HasPrefix(string(b), "/proc/9/exe\x00selfdock\x00boot-init\x00") {
		t.Fatalf("block %q", b)
	}
	n := pad8(strsLen("/proc/9/exe", []string{"selfdock", "boot-init"}))
	ptr := func(i int) uint64 {
		var v uint64
		for j := 7; j >= 0; j-- {
			v = v<<8 | uint64(b[n+8*i+j])
		}
		return v
	}
	if ptr(0) != at+12 || ptr(1) != at+21 || ptr(2) != 0 {
		t.Errorf("argv pointers %#x %#x %#x", ptr(0), ptr(1), ptr(2))
	}
}
