//go:build linux && cgo

package seccompbuild

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// LastReviewed is the highest system call number (the same on x86-64, i386
// and, with the x32 bit, x32: numbers from 424 on are shared) whose call
// was reviewed for these filters: 469, file_setattr, the last in Linux
// 6.18. Every higher number fails with ENOSYS, as on a kernel that does not
// have it yet, so a call added by a later kernel stays closed until
// someone reviews it and raises this number.
const LastReviewed = 469

// NewMountCalls are mount calls that the libseccomp the filters are
// generated with may not know by name (2.5.4 does not), by their number:
// open_tree_attr (Linux 6.15) clones a mount tree like open_tree and
// changes its attributes, read-only among them. They get the same verdict
// as MountCalls.
var NewMountCalls = map[string]uint32{"open_tree_attr": 467}

// x32Bit marks an x32 system call number; x32's own calls are 512-547.
const x32Bit = 0x40000000

// guard is the part of the program that runs before libseccomp's: unknown
// numbers fail with ENOSYS, and NewMountCalls with EPERM where o denies the
// mount family. Anything else falls through to libseccomp's program, which
// starts by loading the architecture again. Numbers libseccomp knows never
// reach it from here with another verdict.
func guard(o Options) []unix.SockFilter {
	denyMounts := !o.AllowNesting && !o.ParentMounts
	var b asm
	b.ld(4) // arch
	b.jeq(unix.AUDIT_ARCH_X86_64, "x86_64", "")
	b.jeq(unix.AUDIT_ARCH_I386, "i386", "libseccomp")
	b.label("x86_64")
	b.ld(0) // nr
	b.jset(x32Bit, "x32", "")
	b.numbers(denyMounts)
	b.label("x32")
	b.and(^uint32(x32Bit))
	b.jge(548, "enosys", "")
	b.jge(512, "libseccomp", "")
	b.numbers(denyMounts)
	b.label("i386")
	b.ld(0)
	b.numbers(denyMounts)
	b.label("eperm")
	b.ret(unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM))
	b.label("enosys")
	b.ret(unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS))
	b.label("libseccomp")
	return b.assemble()
}

// numbers judges the number in the accumulator.
func (b *asm) numbers(denyMounts bool) {
	if denyMounts {
		for _, nr := range NewMountCalls {
			b.jeq(nr, "eperm", "")
		}
	}
	b.jge(LastReviewed+1, "enosys", "libseccomp")
}

// asm assembles a straight-line BPF program with forward jumps to labels;
// "" as a jump target means the next instruction.
type asm struct {
	prog   []unix.SockFilter
	labels map[string]int
	fixups []fixup
}

type fixup struct {
	pc     int
	jt, jf string
}

func (b *asm) emit(code uint16, k uint32) { b.prog = append(b.prog, unix.SockFilter{Code: code, K: k}) }

func (b *asm) ld(off uint32) { b.emit(unix.BPF_LD|unix.BPF_W|unix.BPF_ABS, off) }
func (b *asm) and(k uint32)  { b.emit(unix.BPF_ALU|unix.BPF_AND|unix.BPF_K, k) }
func (b *asm) ret(k uint32)  { b.emit(unix.BPF_RET|unix.BPF_K, k) }

func (b *asm) jump(op uint16, k uint32, jt, jf string) {
	b.fixups = append(b.fixups, fixup{pc: len(b.prog), jt: jt, jf: jf})
	b.emit(unix.BPF_JMP|op|unix.BPF_K, k)
}

func (b *asm) jeq(k uint32, jt, jf string)  { b.jump(unix.BPF_JEQ, k, jt, jf) }
func (b *asm) jge(k uint32, jt, jf string)  { b.jump(unix.BPF_JGE, k, jt, jf) }
func (b *asm) jset(k uint32, jt, jf string) { b.jump(unix.BPF_JSET, k, jt, jf) }

func (b *asm) label(name string) {
	if b.labels == nil {
		b.labels = map[string]int{}
	}
	b.labels[name] = len(b.prog)
}

// assemble resolves the jumps; a backward or too long one is a bug here.
func (b *asm) assemble() []unix.SockFilter {
	off := func(pc int, to string) uint8 {
		if to == "" {
			return 0
		}
		t, ok := b.labels[to]
		d := t - pc - 1
		if !ok || d < 0 || d > 255 {
			panic(fmt.Sprintf("seccompbuild: jump from %d to %q (%d) out of range", pc, to, t))
		}
		return uint8(d)
	}
	for _, f := range b.fixups {
		b.prog[f.pc].Jt, b.prog[f.pc].Jf = off(f.pc, f.jt), off(f.pc, f.jf)
	}
	return b.prog
}
