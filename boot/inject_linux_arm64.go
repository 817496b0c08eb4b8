package boot

import (
	"encoding/binary"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// On arm64 the kernel prepares the restart of an interrupted system call
// before it stops for the tracer ("so that a debugger will see the already
// changed PC", arch/arm64/kernel/signal.c): the registers saved at the
// interrupt already stand at the svc instruction with the call's first
// argument back in x0. Put back verbatim, they run the call again.
const (
	psrMode32 = 0x10 // PSTATE.nRW: an AArch32 task
	noSyscall = -1
)

// syscallInsn is "svc #0".
var syscallInsn = []byte{0x01, 0x00, 0x00, 0xd4}

func checkArch(pid int, r *unix.PtraceRegs) error {
	if r.Pstate&psrMode32 != 0 {
		return fmt.Errorf("target %d: not a 64-bit arm process", pid)
	}
	return nil
}

func stackPointer(r *unix.PtraceRegs) uint64 { return r.Sp }

// callSite is where the target stands: at the svc of the system call it
// was interrupted in (ok), or elsewhere (an svc must be written there).
func callSite(pid int, r *unix.PtraceRegs) (uintptr, bool) {
	pc := uintptr(r.Pc)
	four := make([]byte, 4)
	_, err := unix.PtracePeekText(pid, pc, four)
	return pc, err == nil && binary.LittleEndian.Uint32(four) == binary.LittleEndian.Uint32(syscallInsn)
}

func setCall(r *unix.PtraceRegs, call, path, argv, envp, sp uint64) {
	r.Regs[8] = unix.SYS_EXECVE
	r.Regs[0], r.Regs[1], r.Regs[2] = path, argv, envp
	r.Pc, r.Sp = call, sp
}

// atCall tells a syscall-entry stop of the prepared call from one of a
// signal handler's own system calls.
func atCall(r *unix.PtraceRegs, call uintptr) bool { return uintptr(r.Pc) == call+4 }

// forceExecve makes the prepared call execve at its entry. When the target
// was interrupted in a call the kernel restarts through restart_syscall
// (nanosleep, a futex or poll with a timeout), the svc the call goes
// through is the kernel's restart address, and on the way out of the stop
// it changes x8 to restart_syscall: the number is set back here.
func forceExecve(pid int, r *unix.PtraceRegs) error {
	if r.Regs[8] == unix.SYS_EXECVE {
		return nil
	}
	r.Regs[8] = unix.SYS_EXECVE
	if err := unix.PtraceSetRegs(pid, r); err != nil {
		return fmt.Errorf("ptrace setregs %d: %w", pid, err)
	}
	return setSyscall(pid, unix.SYS_EXECVE)
}

// setSyscall sets the number of the system call the target is in
// (NT_ARM_SYSTEM_CALL; -1: none).
func setSyscall(pid int, nr int32) error {
	iov := unix.Iovec{Base: (*byte)(unsafe.Pointer(&nr)), Len: 4}
	// Safe: the seized, vetted target's own system call number.
	if _, _, e := unix.RawSyscall6(unix.SYS_PTRACE, unix.PTRACE_SETREGSET, uintptr(pid), unix.NT_ARM_SYSTEM_CALL, uintptr(unsafe.Pointer(&iov)), 0, 0); e != 0 {
		return fmt.Errorf("ptrace set system call %d: %w", pid, e)
	}
	return nil
}

func returned(r *unix.PtraceRegs) int64 { return int64(r.Regs[0]) }

// afterCall gives back the registers as saved (they restart the call), and
// tells the kernel that the target is no longer in a system call: else, on
// the way out, it would take x0 for the execve's return value and might
// "restart" it a second time.
func afterCall(pid int, r unix.PtraceRegs) unix.PtraceRegs {
	_ = setSyscall(pid, noSyscall)
	return r
}
