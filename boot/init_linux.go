package boot

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ignored are the signals boot-init ignores, and gives back before exec.
var ignored = []os.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT,
	syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGPIPE, syscall.SIGTSTP, syscall.SIGTTIN, syscall.SIGTTOU}

// execClean execs path with no signal blocked and none ignored: an execve
// keeps both, and the old init's mask (systemd blocks most signals) and
// boot-init's own ignores are no business of the next program. (signal.Reset
// does not undo signal.Ignore for signals the runtime handles, so the
// default action is set directly; a PID 1 ignores a default-action signal
// anyway, so there is no window.)
func execClean(path string, argv, env []string) error {
	var dfl [4]uint64 // a struct sigaction whose sa_handler is SIG_DFL: all zero
	for sig := 1; sig <= 64; sig++ {
		if sig == int(unix.SIGKILL) || sig == int(unix.SIGSTOP) {
			continue
		}
		// Safe: this process's own signal disposition (all of them: the
		// old init may have ignored any, glibc's own real-time ones too).
		unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&dfl)), 0, 8, 0, 0)
	}
	var none unix.Sigset_t
	_ = unix.PthreadSigmask(unix.SIG_SETMASK, &none, nil)
	err := unix.Exec(path, argv, env)
	signal.Ignore(ignored...)
	return err
}

// InitArgs is the argv the target is made to execve: selfdock's
// boot-init subcommand, the metadata, then how the old init was started,
// for Init to start it again if it must give up early.
func InitArgs(t *Target) []string {
	return append([]string{"selfdock", initName, MetaPath, "--", t.Exe}, t.Argv...)
}

// Init is `selfdock boot-init META -- OLDEXE OLDARGV...`, run as PID 1
// after Inject: it replaces the running system with the prepared root.
//
// DESTRUCTIVE: every other process of the PID namespace is killed (of the
// whole machine for the real PID 1). Until the first signal is sent (the
// point of no return) any failure is reported and the old init is started
// again, so that the old system keeps running; after it, a failure drops to
// an emergency shell of the new root.
func Init(meta string, old []string) error {
	if os.Getpid() != 1 || os.Getuid() != 0 {
		return errors.New("boot-init: only selfdock boot runs this, as the new PID 1")
	}
	// For good: a mount namespace of its own (privateMounts) is this
	// thread's only, and all that follows, up to the exec, happens in it.
	runtime.LockOSThread()
	// PID 1 receives only the signals it handles: the Go runtime's default
	// handlers would make it exit on SIGTERM, ending the system.
	signal.Ignore(ignored...)
	lg := newLog(isRealInit())
	lg.printf("PID 1 is selfdock boot-init now")
	m, err := readMeta(meta)
	if err != nil {
		return giveUp(lg, old, err)
	}
	_ = os.Remove(meta) // read once: a later boot-init must not act on it again
	real := m.RealInit && isRealInit()
	if err := check(m); err != nil {
		return giveUp(lg, old, err)
	}
	if real {
		globalSteps(lg, m)
	} else {
		lg.printf("PID 1 of a PID namespace: no console switch, no swapoff (they would touch the whole machine)")
	}
	if err := privateMounts(real); err != nil {
		return giveUp(lg, old, err)
	}
	lg.printf("point of no return: ending every other process")
	killAll(lg, m)
	if err := switchRoot(lg, m.Root, real); err != nil {
		return emergency(lg, m, real, err)
	}
	if real {
		console(lg, m.TTY)
	}
	if err := os.Chdir(m.WorkDir); err != nil {
		lg.printf("chdir %q: %v; staying in /", m.WorkDir, err)
	}
	lg.printf("exec %q", m.Argv)
	err = execClean(m.Path, m.Argv, m.Env)
	return emergency(lg, m, real, fmt.Errorf("exec %q: %w", m.Path, err))
}

// check makes sure, before the point of no return, that the new root and
// its command are there.
func check(m *Meta) error {
	fi, err := os.Stat(m.Root)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("new root %q: not a directory", m.Root)
	}
	return executable(m.Root, m.Path)
}

// giveUp reports err and starts the old init again, in place: the old
// system's processes are all still there. When even that fails, PID 1
// stays, reaping: exiting would panic the kernel.
func giveUp(lg *logger, old []string, err error) error {
	lg.printf("cannot boot: %v; starting the old init again", err)
	if len(old) > 0 {
		argv := old[1:]
		if len(argv) == 0 {
			argv = old[:1]
		}
		err = execClean(old[0], argv, os.Environ())
		lg.printf("exec the old init %q: %v", old[0], err)
	}
	return hang(lg, isRealInit(), err)
}

// emergency runs a shell of the new root after the point of no return, on
// the console for the real PID 1 (the old init's streams may be /dev/null).
func emergency(lg *logger, m *Meta, real bool, err error) error {
	lg.printf("boot failed after the point of no return: %v; trying an emergency shell /bin/sh", err)
	// When the switch itself failed, the new root is still where Prepare
	// put it: its shell, not the old system's. (After a successful switch
	// that path no longer exists, and the shell is the new root's anyway.)
	// Safe: PID 1, every other process gone.
	if unix.Chroot(m.Root) == nil {
		_ = os.Chdir("/")
	}
	if real {
		console(lg, m.TTY)
	}
	err = execClean("/bin/sh", []string{"sh"}, []string{defPath})
	lg.printf("exec /bin/sh: %v", err)
	return hang(lg, real, err)
}

// hang keeps the real PID 1 alive, reaping orphans; the init of a PID
// namespace returns the error instead (which ends that namespace only).
func hang(lg *logger, real bool, err error) error {
	if !real {
		return fmt.Errorf("boot-init: %w", err)
	}
	lg.printf("nothing left to run: PID 1 waits forever")
	for {
		var st unix.WaitStatus
		if _, werr := unix.Wait4(-1, &st, 0, nil); werr != nil {
			time.Sleep(time.Second)
		}
	}
}
