package boot

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// catchAll relays every signal to a channel nobody reads but a drain:
// PID 1 must not die of one. The Go runtime's own handlers end the process
// on SIGTERM, SIGHUP, SIGINT and throw on a SIGQUIT, SIGABRT, SIGTRAP or
// SIGSYS another process sends; relayed, they do nothing. Until here the
// signals an old init left pending (systemd blocks most and reads them
// from a signalfd) stay blocked: the C constructor blocked them before the
// runtime started (sandbox/userns_linux.go), and the runtime's signal
// thread unblocks them now, for this channel.
func catchAll() {
	sigs := make(chan os.Signal, 64)
	signal.Notify(sigs)
	go func() {
		for range sigs {
		}
	}()
}

// execClean execs path with no signal blocked and none ignored: an execve
// keeps both, and the old init's mask and ignores (systemd blocks most
// signals; an old init may ignore any) are no business of the next
// program. The default action is set directly: a PID 1 ignores a signal
// at its default action anyway, so there is no window.
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
	return unix.Exec(path, argv, env)
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
func Init(meta string, old []string) (err error) {
	if os.Getpid() != 1 {
		return errors.New("boot-init: only selfdock boot runs this, as the new PID 1")
	}
	// For good: a mount namespace of its own (privateMounts) is this
	// thread's only, and all that follows, up to the exec, happens in it.
	runtime.LockOSThread()
	catchAll()
	lg := newLog(isRealInit())
	defer func() {
		if r := recover(); r != nil { // a bug must not end PID 1
			err = hang(lg, fmt.Errorf("boot-init: %v", r))
		}
	}()
	if !InitialRoot() {
		return hang(lg, errors.New("boot-init: only the real root's selfdock boot runs this"))
	}
	lg.printf("PID 1 is selfdock boot-init now")
	_ = os.Remove(ExePath) // running; the copy is not needed again
	m, err := readMeta(meta)
	if err != nil {
		return giveUp(lg, old, nil, err)
	}
	_ = os.Remove(meta) // read once: a later boot-init must not act on it again
	real := m.RealInit && isRealInit()
	if err := check(m); err != nil {
		return giveUp(lg, old, m.OldEnv, err)
	}
	if err := privateMounts(real); err != nil {
		return giveUp(lg, old, m.OldEnv, err)
	}
	lg.printf("point of no return: ending every other process")
	killAll(lg, m)
	if real {
		globalSteps(lg, m) // now, with the old system's memory freed
	} else {
		lg.printf("PID 1 of a PID namespace: no console switch, no swapoff (they would touch the whole machine)")
	}
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
	closeOld()
	err = execClean(m.Path, m.Argv, m.Env)
	return emergency(lg, m, real, fmt.Errorf("exec %q: %w", m.Path, err))
}

// closeOld marks every descriptor the old init held beyond the standard
// streams close-on-exec: the new system starts clean. (Not before: the
// old init, started again on failure, needs them.)
func closeOld() { _ = unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC) }

// InitialRoot tells whether the process is root of the initial user
// namespace: root of another one (unshare -r) is refused, and so is a
// process that cannot tell.
func InitialRoot() bool {
	b, err := os.ReadFile("/proc/self/uid_map")
	return os.Getuid() == 0 && err == nil && strings.Join(strings.Fields(string(b)), " ") == "0 0 4294967295"
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

// giveUp reports err, removes the prepared root and starts the old init
// again, in place, with its own environment: the old system's processes
// are all still there. (Best effort: the old init's own state is gone, as
// after any re-exec of it.) When even that fails, PID 1 stays, reaping.
func giveUp(lg *logger, old, env []string, err error) error {
	lg.printf("cannot boot: %v; starting the old init again", err)
	Cleanup()
	if len(old) > 0 {
		argv := old[1:]
		if len(argv) == 0 {
			argv = old[:1]
		}
		err = execClean(old[0], argv, env)
		lg.printf("exec the old init %q: %v", old[0], err)
	}
	return hang(lg, err)
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
	closeOld()
	err = execClean("/bin/sh", []string{"sh"}, []string{defPath})
	lg.printf("exec /bin/sh: %v", err)
	return hang(lg, err)
}

// hang keeps PID 1 alive, reaping orphans, unless it is sure to be the
// init of a PID namespace other than the machine's: then it returns the
// error, which ends that namespace only. Unsure (no /proc), it stays:
// the real PID 1 exiting panics the kernel.
func hang(lg *logger, err error) error {
	if ino, nerr := nsInode("/proc/self/ns/pid"); nerr == nil && ino != realInit {
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
