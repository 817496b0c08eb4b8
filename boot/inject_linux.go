//go:build amd64 || arm64

package boot

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const (
	redZone         = 128 // bytes below the stack pointer a leaf function may use (x86-64; arm64 has none)
	stopTimeout     = 5 * time.Second
	ptraceEventStop = 128
)

// saved is what Inject changed in the target, to be put back exactly when
// the execve fails.
type saved struct {
	regs     unix.PtraceRegs
	haveRegs bool
	at       uintptr // the block of path and argv
	mem      []byte  // what was there
	call     uintptr // the syscall instruction the call goes through
	code     []byte  // what was at call, when the instruction was written there
}

// Inject makes the process pid execve(path, argv, {}) and returns once the
// kernel reports the new program running. When the execve fails, the
// process's registers and memory are restored exactly, it is released,
// and it goes on as before: the error says why.
//
// DESTRUCTIVE: on success the process's program is replaced. FindTarget
// must have vetted pid: never call this on the machine's PID 1 unless the
// whole system is meant to be replaced.
func Inject(t *Target, path string, argv []string) error {
	pid := t.Pid
	// ptrace requests must come from the thread that attached.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	opts := unix.PTRACE_O_TRACESYSGOOD | unix.PTRACE_O_TRACEEXEC
	// Safe: pid was vetted by FindTarget, the caller is the real root. No
	// PTRACE_O_EXITKILL: if selfdock dies, the target must live on.
	if _, _, e := unix.RawSyscall6(unix.SYS_PTRACE, unix.PTRACE_SEIZE, uintptr(pid), 0, uintptr(opts), 0, 0); e != 0 {
		return fmt.Errorf("ptrace seize %d: %w", pid, e)
	}
	if err := unix.PtraceInterrupt(pid); err != nil {
		return fmt.Errorf("ptrace interrupt %d: %w", pid, err)
	}
	if err := waitInterrupted(pid); err != nil {
		return err // not stopped: our exit detaches it untouched
	}
	// Stopped, it can no longer change: is it still the process FindTarget
	// vetted (not a pid reused since), alone in its process?
	if err := t.still(); err != nil {
		return errors.Join(err, detach(pid))
	}
	s, err := prepareCall(pid, path, argv)
	if err == nil {
		err = runExecve(pid, s.call)
	}
	if err != nil {
		return errors.Join(err, s.restore(pid, err))
	}
	// The new program runs once released from its exec stop; should the
	// detach fail, selfdock's exit releases it.
	_ = unix.PtraceDetach(pid)
	return nil
}

func detach(pid int) error {
	if err := unix.PtraceDetach(pid); err != nil {
		return fmt.Errorf("ptrace detach %d: %w", pid, err)
	}
	return nil
}

// waitInterrupted waits for the stop that PTRACE_INTERRUPT asked for,
// delivering every signal that arrives first, as if nobody looked. A
// target that execs meanwhile is no longer the one that was vetted.
func waitInterrupted(pid int) error {
	deadline := time.Now().Add(stopTimeout)
	for {
		st, err := waitStop(pid, deadline)
		if err != nil {
			return err
		}
		sig := 0
		switch event(st) {
		case ptraceEventStop:
			return nil // the interrupt, or a group-stop: the process is ours
		case unix.PTRACE_EVENT_EXEC:
			return errors.Join(fmt.Errorf("target %d ran another program meanwhile", pid), detach(pid))
		case 0:
			sig = int(st.StopSignal()) // a signal for the target: deliver it
		}
		if err := unix.PtraceCont(pid, sig); err != nil {
			return fmt.Errorf("ptrace cont %d: %w", pid, err)
		}
	}
}

// event is the PTRACE_EVENT_* of a stop, 0 for a signal-delivery-stop.
func event(st unix.WaitStatus) int { return int(uint32(st)>>16) & 0xff }

// waitStop waits until pid stops, polling so that a process that never
// stops (uninterruptible sleep) ends in an error, not a hang.
func waitStop(pid int, deadline time.Time) (unix.WaitStatus, error) {
	for {
		var st unix.WaitStatus
		got, err := unix.Wait4(pid, &st, unix.WALL|unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return st, fmt.Errorf("wait %d: %w", pid, err)
		}
		if got == pid {
			if !st.Stopped() {
				return st, fmt.Errorf("target %d ended (status %#x)", pid, uint32(st))
			}
			return st, nil
		}
		if time.Now().After(deadline) {
			return st, fmt.Errorf("target %d did not stop within %v (uninterruptible?)", pid, stopTimeout)
		}
		time.Sleep(time.Millisecond)
	}
}

// prepareCall saves the registers and the memory it changes, writes path
// and argv below the red zone of the target's stack, and points the
// registers at execve(path, argv, {}). The system call instruction is the
// one the target is stopped at when it was in a system call (an init
// waiting in waitid or epoll_wait); otherwise one is written where it
// stands, and put back on failure.
//
// Safe, as every ptrace request below: it goes to pid, which FindTarget
// vetted and Inject seized, from the thread that seized it.
func prepareCall(pid int, path string, argv []string) (*saved, error) {
	s := &saved{}
	if err := unix.PtraceGetRegs(pid, &s.regs); err != nil {
		return s, fmt.Errorf("ptrace getregs %d: %w", pid, err)
	}
	s.haveRegs = true
	if err := checkArch(pid, &s.regs); err != nil {
		return s, err
	}
	size := len(block(path, argv, 0))
	s.at = (uintptr(stackPointer(&s.regs)) - redZone - uintptr(size)) &^ 15
	b := block(path, argv, s.at)
	s.mem = make([]byte, len(b))
	if _, err := unix.PtracePeekData(pid, s.at, s.mem); err != nil {
		s.mem = nil
		return s, fmt.Errorf("read the stack of %d: %w", pid, err)
	}
	if _, err := unix.PtracePokeData(pid, s.at, b); err != nil {
		return s, fmt.Errorf("write the stack of %d: %w", pid, err)
	}
	if err := s.syscallAt(pid); err != nil {
		return s, err
	}
	r := s.regs
	argvAt := uint64(s.at) + uint64(pad8(strsLen(path, argv)))
	// The NULL that ends argv doubles as an empty environment.
	setCall(&r, uint64(s.call), uint64(s.at), argvAt, argvAt+uint64(8*len(argv)), uint64(s.at)-256)
	if err := unix.PtraceSetRegs(pid, &r); err != nil {
		return s, fmt.Errorf("ptrace setregs %d: %w", pid, err)
	}
	return s, nil
}

// syscallAt finds or writes the system call instruction the call goes
// through.
func (s *saved) syscallAt(pid int) error {
	at, ok := callSite(pid, &s.regs)
	if ok {
		s.call = at
		return nil
	}
	code := make([]byte, len(syscallInsn))
	if _, err := unix.PtracePeekText(pid, at, code); err != nil {
		return fmt.Errorf("read the code of %d: %w", pid, err)
	}
	if _, err := unix.PtracePokeText(pid, at, syscallInsn); err != nil {
		return fmt.Errorf("write the code of %d: %w", pid, err)
	}
	s.call, s.code = at, code
	return nil
}

// block lays out path, the argv strings and the argv pointer array (ending
// in NULL) as they will sit at address at.
func block(path string, argv []string, at uintptr) []byte {
	n := pad8(strsLen(path, argv))
	b := make([]byte, n+8*(len(argv)+1))
	off := copy(b, path) + 1
	for i, a := range argv {
		binary.LittleEndian.PutUint64(b[n+8*i:], uint64(at)+uint64(off))
		off += copy(b[off:], a) + 1
	}
	return b
}

func strsLen(path string, argv []string) int {
	n := len(path) + 1
	for _, a := range argv {
		n += len(a) + 1
	}
	return n
}

func pad8(n int) int { return (n + 7) &^ 7 }

// runExecve lets the target run the prepared call, watching its system
// calls, until the kernel reports the exec (success) or the execve's
// return (failure: its error). Signals that arrive meanwhile are
// delivered; a handler's own system calls are told apart by where they
// come from. Whatever happens, it returns with the target stopped, so that
// it can be restored.
func runExecve(pid int, call uintptr) error {
	deadline := time.Now().Add(10 * time.Second)
	sig, inSyscall, entered := 0, false, false
	for {
		if time.Now().After(deadline) {
			return fmt.Errorf("target %d: the execve did not complete in time", pid) // stopped: restorable
		}
		if err := unix.PtraceSyscall(pid, sig); err != nil {
			return fmt.Errorf("ptrace syscall %d: %w", pid, err)
		}
		sig = 0
		st, err := waitStop(pid, deadline)
		if err != nil {
			return errors.Join(err, stopAgain(pid)) // running: stop it to restore it
		}
		switch {
		case event(st) == unix.PTRACE_EVENT_EXEC && entered:
			return nil
		case st.StopSignal() == syscall.SIGTRAP|0x80:
			var r unix.PtraceRegs
			if err := unix.PtraceGetRegs(pid, &r); err != nil {
				return fmt.Errorf("ptrace getregs %d: %w", pid, err)
			}
			inSyscall = !inSyscall
			switch {
			case inSyscall && !entered && atCall(&r, call):
				// The prepared call, whatever number the kernel made of
				// it on the way (arm64 may turn it into restart_syscall).
				if err := forceExecve(pid, &r); err != nil {
					return err
				}
				entered = true
			case !inSyscall && entered:
				return &execError{errno: syscall.Errno(-returned(&r))}
			}
		case event(st) == 0:
			sig = int(st.StopSignal()) // a signal for the target: deliver it
		}
	}
}

// stopAgain interrupts a target that did not stop in time, so that it can
// be restored rather than left running with the prepared registers.
func stopAgain(pid int) error {
	if err := unix.PtraceInterrupt(pid); err != nil {
		return fmt.Errorf("ptrace interrupt %d: %w", pid, err)
	}
	_, err := waitStop(pid, time.Now().Add(stopTimeout))
	return err
}

// execError is a failed execve in the target; the stop it was seen at is
// the execve's return.
type execError struct{ errno syscall.Errno }

func (e *execError) Error() string { return fmt.Sprintf("execve in the target failed: %v", e.errno) }

// restore puts back memory and registers and releases the target. After
// a failed execve the target stands at the call's return, past the point
// where the kernel restarts an interrupted system call: afterCall makes
// the restart it would have made, so the target goes back into the call
// it was interrupted in, as if nothing happened.
func (s *saved) restore(pid int, failed error) error {
	var errs []error
	if s.mem != nil {
		if _, err := unix.PtracePokeData(pid, s.at, s.mem); err != nil {
			errs = append(errs, fmt.Errorf("restore the stack of %d: %w", pid, err))
		}
	}
	if s.code != nil {
		if _, err := unix.PtracePokeText(pid, s.call, s.code); err != nil {
			errs = append(errs, fmt.Errorf("restore the code of %d: %w", pid, err))
		}
	}
	if s.haveRegs {
		r := s.regs
		var ee *execError
		if errors.As(failed, &ee) {
			r = afterCall(pid, r)
		}
		if err := unix.PtraceSetRegs(pid, &r); err != nil {
			errs = append(errs, fmt.Errorf("restore the registers of %d: %w", pid, err))
		}
	}
	if err := detach(pid); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
