package vm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// kernelCmdline: the console on the board's first serial port, which qemu
// writes to the test's log; panic=-1 reboots at once on a panic (PID 1
// exiting, an oops), which -no-reboot turns into qemu's exit, so a dead
// guest never waits for the timeout; quiet keeps the boot messages out of
// the log (/init raises the console log level for selfdock's /dev/kmsg
// lines).
func kernelCmdline(a *arch) string {
	return "console=" + a.console + " panic=-1 oops=panic quiet"
}

// qemuArgs: a's board, then TCG, as there is no KVM on the development
// machines or in CI; two CPUs, so that boot ends processes that may run on
// the other one (it costs about as much time as one); -nodefaults drops the
// VGA card, the network card (whose option ROM needs ipxe-qemu), floppy,
// CD-ROM and the monitor, so that the serial port on stdout is the only
// output (a board's own serial port, as virt's PL011, stays).
func qemuArgs(a *arch, kernel, initrd string) []string {
	return append(slices.Clip(a.machine),
		"-accel", "tcg", "-m", "1024", "-smp", "2",
		"-nodefaults", "-no-user-config", "-display", "none",
		"-serial", "stdio", "-no-reboot",
		"-kernel", kernel, "-initrd", initrd, "-append", kernelCmdline(a),
	)
}

// runVM boots f's kernel with r until the guest powers off, panics or
// timeout passes, and returns the serial console's lines (carriage returns
// removed) whatever happened; err says what went wrong with qemu itself.
func runVM(t *testing.T, f fixture, r initramfs, timeout time.Duration) (lines []string, err error) {
	dir := t.TempDir()
	initrd := filepath.Join(dir, "initrd.cpio")
	if err := r.write(initrd); err != nil {
		t.Fatal(err)
	}
	logName := filepath.Join(dir, "console.log")
	logFile, err := os.Create(logName)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, f.arch.qemu, qemuArgs(f.arch, f.kernel, initrd)...)
	t.Logf("%s", cmd)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = logFile, &stderr
	// If the test binary dies (go test -timeout), qemu must not run on.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	// On timeout CommandContext kills this qemu, the only process the test
	// started; WaitDelay bounds the wait for its output after that.
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	err = cmd.Run()
	t.Logf("qemu ran %.1fs", time.Since(start).Seconds())
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		err = fmt.Errorf("qemu: no power-off within %v: killed", timeout)
	case err != nil:
		err = fmt.Errorf("qemu: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	b, rerr := os.ReadFile(logName)
	if rerr != nil {
		t.Fatal(rerr)
	}
	lines = strings.Split(strings.ReplaceAll(string(b), "\r", ""), "\n")
	// qemu exits as quietly after a panic (-no-reboot) as after a power-off.
	if p := panicLine(lines); p != "" && err == nil {
		err = fmt.Errorf("guest kernel: %s", p)
	}
	return lines, err
}

// panicLine is the kernel's panic message ("Kernel panic - not syncing:
// Attempted to kill init!" when PID 1 exits), "" if there is none.
func panicLine(lines []string) string {
	for _, l := range lines {
		if i := strings.Index(l, "Kernel panic - "); i >= 0 {
			return l[i:]
		}
	}
	return ""
}

// logTail logs the last n console lines, to tell what the guest did last.
func logTail(t *testing.T, lines []string, n int) {
	t.Helper()
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	t.Logf("serial console, last %d lines:\n%s", len(lines), strings.Join(lines, "\n"))
}

// find returns the rest of the first line that starts with marker, and
// whether there is one. Only a kernel timestamp may come before the
// marker: selfdock echoes its command line, which quotes the check
// script's markers in the middle of a line.
func find(lines []string, marker string) (string, bool) {
	all := findAll(lines, marker)
	if len(all) == 0 {
		return "", false
	}
	return all[0], true
}

// findAll is find for every line that starts with marker.
func findAll(lines []string, marker string) []string {
	var out []string
	for _, l := range lines {
		if rest, ok := strings.CutPrefix(stripTimestamp(l), marker); ok {
			out = append(out, strings.TrimSpace(rest))
		}
	}
	return out
}

// stripTimestamp removes the "[    5.048709] " a kernel message starts
// with.
func stripTimestamp(l string) string {
	if strings.HasPrefix(l, "[") {
		if i := strings.Index(l, "] "); i > 0 {
			return l[i+2:]
		}
	}
	return l
}
