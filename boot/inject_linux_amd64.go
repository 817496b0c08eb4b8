package boot

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"
)

// Kernel return values of a system call interrupted by a stop, which the
// kernel turns into a restart on the way back to user space (and which
// must be turned into one by hand when the registers are put back after
// the failed execve's return).
const (
	errRestartSys     = -512
	errRestartNoIntr  = -513
	errRestartNoHand  = -514
	errRestartBlock   = -516
	sysRestartSyscall = 219
	userCS            = 0x33 // a 64-bit process; 0x23 is a 32-bit one
)

// syscallInsn is "syscall", 0f 05.
var syscallInsn = []byte{0x0f, 0x05}

func checkArch(pid int, r *unix.PtraceRegs) error {
	if r.Cs != userCS {
		return fmt.Errorf("target %d: not a 64-bit x86 process (cs %#x)", pid, r.Cs)
	}
	return nil
}

func stackPointer(r *unix.PtraceRegs) uint64 { return r.Rsp }

// callSite is the syscall instruction the target stopped after when it was
// in a system call (ok), else where it stands (an instruction must be
// written there).
func callSite(pid int, r *unix.PtraceRegs) (uintptr, bool) {
	rip := uintptr(r.Rip)
	if int64(r.Orig_rax) >= 0 {
		two := make([]byte, 2)
		if _, err := unix.PtracePeekText(pid, rip-2, two); err == nil && binary.LittleEndian.Uint16(two) == binary.LittleEndian.Uint16(syscallInsn) {
			return rip - 2, true
		}
	}
	return rip, false
}

func setCall(r *unix.PtraceRegs, call, path, argv, envp, sp uint64) {
	r.Rax, r.Rdi, r.Rsi, r.Rdx = unix.SYS_EXECVE, path, argv, envp
	r.Rip, r.Rsp = call, sp
	r.Orig_rax = ^uint64(0) // not in a system call: no restart on the way out
}

// atCall tells a syscall-entry stop of the prepared call from one of a
// signal handler's own system calls.
func atCall(r *unix.PtraceRegs, call uintptr) bool { return uintptr(r.Rip) == call+2 }

// forceExecve checks that the prepared call enters the kernel as execve:
// with orig_rax -1 the kernel never turns it into a restart on x86-64.
func forceExecve(pid int, r *unix.PtraceRegs) error {
	if r.Orig_rax != unix.SYS_EXECVE {
		return fmt.Errorf("target %d: the prepared call entered as system call %d, not execve", pid, int64(r.Orig_rax))
	}
	return nil
}

func returned(r *unix.PtraceRegs) int64 { return int64(r.Rax) }

// afterCall is what the kernel makes of registers stopped in an
// interrupted system call when no signal handler runs: the call again.
func afterCall(_ int, r unix.PtraceRegs) unix.PtraceRegs { return restarted(r) }

func restarted(r unix.PtraceRegs) unix.PtraceRegs {
	if int64(r.Orig_rax) < 0 {
		return r
	}
	switch int64(r.Rax) {
	case errRestartSys, errRestartNoIntr, errRestartNoHand:
		r.Rax = r.Orig_rax
		r.Rip -= 2
	case errRestartBlock:
		r.Rax = sysRestartSyscall
		r.Rip -= 2
	}
	r.Orig_rax = ^uint64(0) // done: the kernel must not restart it again
	return r
}
