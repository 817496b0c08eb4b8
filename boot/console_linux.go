package boot

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"unsafe"

	"github.com/selfdock/selfdock/internal/procfs"
	"golang.org/x/sys/unix"
)

// Virtual console ioctls (linux/vt.h).
const (
	vtActivate   = 0x5606
	vtWaitActive = 0x5607
)

// logger writes PID 1's progress to its standard error and, for the real
// init, to the console as well (its standard error is often /dev/null).
type logger struct{ console *os.File }

func newLog(real bool) *logger {
	lg := &logger{}
	if !real {
		return lg
	}
	c, err := os.OpenFile("/dev/console", os.O_WRONLY|unix.O_NOCTTY, 0)
	if err != nil {
		return lg
	}
	var a, b unix.Stat_t
	if unix.Fstat(int(c.Fd()), &a) == nil && unix.Fstat(2, &b) == nil && a.Rdev == b.Rdev && b.Mode&unix.S_IFMT == unix.S_IFCHR {
		c.Close() // standard error is the console already: once is enough
		return lg
	}
	lg.console = c
	return lg
}

func (lg *logger) printf(format string, a ...any) {
	line := "selfdock boot-init: " + fmt.Sprintf(format, a...) + "\n"
	os.Stderr.WriteString(line)
	if lg.console != nil {
		lg.console.WriteString(line)
	}
}

// globalSteps are those that act on the whole machine: only the real PID 1
// runs them. A failure is reported; the boot goes on.
func globalSteps(lg *logger, m *Meta) {
	if m.TTY > 0 {
		if err := switchVT(m.TTY); err != nil {
			lg.printf("switch to tty%d: %v (no virtual console?)", m.TTY, err)
		} else {
			lg.printf("switched to tty%d", m.TTY)
		}
	}
	if m.KeepSwap {
		return
	}
	for _, dev := range swaps() {
		if err := swapoff(dev); err != nil {
			lg.printf("swapoff %s: %v", dev, err)
		} else {
			lg.printf("swapoff %s", dev)
		}
	}
}

// switchVT makes tty n the foreground virtual console.
func switchVT(n int) error {
	f, err := os.OpenFile("/dev/tty0", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	// Safe: the real PID 1 only (globalSteps), a console number root chose.
	if err := unix.IoctlSetInt(int(f.Fd()), vtActivate, n); err != nil {
		return fmt.Errorf("VT_ACTIVATE: %w", err)
	}
	if err := unix.IoctlSetInt(int(f.Fd()), vtWaitActive, n); err != nil {
		return fmt.Errorf("VT_WAITACTIVE: %w", err)
	}
	return nil
}

// swaps lists the active swap areas of /proc/swaps.
func swaps() []string {
	b, err := os.ReadFile("/proc/swaps")
	if err != nil {
		return nil
	}
	var devs []string
	for i, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); i > 0 && len(f) > 0 {
			devs = append(devs, procfs.Unescape(f[0]))
		}
	}
	return devs
}

func swapoff(path string) error {
	p, err := unix.BytePtrFromString(path)
	if err != nil {
		return err
	}
	// Safe: the real PID 1 only, on the areas /proc/swaps lists.
	if _, _, e := unix.Syscall(unix.SYS_SWAPOFF, uintptr(unsafe.Pointer(p)), 0, 0); e != 0 {
		return e
	}
	return nil
}

// console makes tty n (or /dev/console for 0, or when the tty cannot be
// opened) the controlling terminal and standard input, output and error
// of what PID 1 execs next.
func console(lg *logger, n int) {
	name := "/dev/console"
	if n > 0 {
		name = "/dev/tty" + strconv.Itoa(n)
	}
	fd, err := unix.Open(name, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil && name != "/dev/console" {
		lg.printf("open %s: %v; using /dev/console", name, err)
		name = "/dev/console"
		fd, err = unix.Open(name, unix.O_RDWR|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		lg.printf("open %s: %v; keeping the old standard streams", name, err)
		return
	}
	// Safe: the real PID 1, every other process gone, takes its console.
	_, _ = unix.Setsid()
	_ = unix.IoctlSetInt(fd, unix.TIOCSCTTY, 1)
	for i := 0; i < 3; i++ {
		_ = unix.Dup3(fd, i, 0)
	}
	if fd > 2 {
		unix.Close(fd)
	}
}
