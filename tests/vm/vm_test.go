package vm

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/selfdock/selfdock/tests/internal/testimage"
)

// oldSystem starts every /init: what a small distribution's init does
// before its services run, and one service, a sleep that `selfdock boot`
// must kill. A failure powers off at once rather than let PID 1 exit (a
// panic whose message says less).
const oldSystem = `#!/bin/sh
export PATH=/bin
fail() { echo "OLD-SYSTEM-FAILED $*"; poweroff -f; }
mount -t proc proc /proc || fail mount proc
mount -t sysfs sysfs /sys || fail mount sysfs
mount -t devtmpfs devtmpfs /dev || fail mount devtmpfs
mount -t tmpfs -o mode=0755 tmpfs /run || fail mount /run
# Print every level of /dev/kmsg on the console, despite "quiet" on the
# kernel command line: selfdock may log its progress there.
echo 8 >/proc/sys/kernel/printk
sleep 100000 &
echo "OLD-SYSTEM-UP daemon=$!"
`

// harnessInit checks the VM and the binary alone: the old system comes up,
// the static selfdock runs in it, the guest powers off.
const harnessInit = oldSystem + `/bin/selfdock --version >/dev/null 2>&1
echo "SELFDOCK-RUNS rc=$?"
echo "SELFDOCK-VM-HARNESS-OK kernel=$(uname -r)"
poweroff -f
`

// swapOn gives the old system a swap area on a RAM disk, which boot, as
// the real PID 1, must turn off.
const swapOn = `insmod /brd.ko rd_nr=1 rd_size=16384 || fail insmod brd
mkswap /dev/ram0 >/dev/null && swapon /dev/ram0 || fail swapon
echo "SWAP-ON $(grep -c '^/dev/ram0 ' /proc/swaps)"
`

// bootInit is the old system running boot, which does not return when it
// works. wait is a format whose one %s is boot's command line: it says how
// PID 1 waits for it.
func bootInit(wait, flags string) string {
	return oldSystem + swapOn + "echo \"BOOT-FLAGS " + flags + "\"\n" + fmt.Sprintf(wait, bootCommand(flags)) + `
echo "BOOT-FAILED rc=$?"
poweroff -f
`
}

// bootCommand is the old system's selfdock boot into the image, whose
// shell runs checkScript.
func bootCommand(flags string) string {
	return "/bin/selfdock boot --yes --i-know-this-replaces-the-running-system " + flags + " /image.tar /bin/sh -c '" +
		checkScript + "'"
}

// pid1Waits are the ways the old PID 1 waits for boot, so the system calls
// the injected execve interrupts: a foreground command leaves busybox sh in
// wait4, as an init waiting for its children; its "wait" builtin sleeps in
// rt_sigsuspend, as busybox's own init does. The kernel restarts the two
// differently (-ERESTARTSYS, -ERESTARTNOHAND).
//
// The second way also passes --keep-swap: the swap area must stay on.
var pid1Waits = []struct{ syscall, wait, flags string }{
	{"wait4", "%s", ""},
	{"rt_sigsuspend", "%s &\nwait $!", "--keep-swap"},
}

// checkScript runs as the new PID 1, in the image. It uses shell builtins
// only (read, not cat; a glob, not ls), so that while it lists /proc no
// child of its own runs: any process but PID 1 and kernel threads (kthreadd,
// PID 2, and its children) is one that boot left alive. It has no single
// quote: bootInit quotes it with them.
const checkScript = `export PATH=/bin
if [ -c /dev/console ]; then exec >/dev/console 2>&1; else echo "SDVM no /dev/console"; fi
read token </etc/selfdock-vm-image
echo "SDVM token=$token"
echo "SDVM pid=$$"
while read dev dir type rest; do echo "SDVM mount $dir $type"; done </proc/mounts
while read dev rest; do [ "$dev" = Filename ] || echo "SDVM swap $dev"; done </proc/swaps
for d in /proc/[0-9]*; do
	n=${d#/proc/} name= ppid= state=
	while read k v; do
		case $k in Name:) name=$v ;; State:) state=${v%% *} ;; PPid:) ppid=$v ;; esac
	done <$d/status
	[ "$n" = 2 ] || [ "$ppid" = 2 ] || echo "SDVM proc pid=$n ppid=$ppid state=$state name=$name"
done
echo SELFDOCK-VM-MARKER-OK
poweroff -f
`

// TestVMHarness boots the old system without selfdock boot: if this fails,
// so does TestVMBoot, for a reason that is not boot's.
func TestVMHarness(t *testing.T) {
	t.Parallel()
	testHarness(t, amd64)
}

// TestVMHarnessArm64 is TestVMHarness on an emulated arm64 board, with
// arm64 builds of busybox, the kernel and selfdock.
func TestVMHarnessArm64(t *testing.T) {
	t.Parallel()
	testHarness(t, arm64)
}

func testHarness(t *testing.T, a *arch) {
	f := need(t, a)
	lines, err := runVM(t, f, f.initramfs(harnessInit, nil), 120*time.Second)
	if err != nil {
		t.Error(err)
	}
	if _, ok := find(lines, "OLD-SYSTEM-UP"); !ok {
		t.Error("no OLD-SYSTEM-UP: the old system's /init did not come up")
	}
	if rc, _ := find(lines, "SELFDOCK-RUNS"); rc != "rc=0" {
		t.Errorf("selfdock --version in the VM: %q, want rc=0 (is the binary static?)", rc)
	}
	if k, ok := find(lines, "SELFDOCK-VM-HARNESS-OK"); !ok {
		t.Error("no SELFDOCK-VM-HARNESS-OK marker: the VM did not run /init to its end")
	} else {
		t.Logf("guest %s", k)
	}
	if t.Failed() {
		logTail(t, lines, 60)
	}
}

// TestVMBoot: `selfdock boot` on the VM's real PID 1, from an initramfs,
// into a busybox image whose shell checks what it finds; once for each
// system call the old PID 1 may be blocked in.
func TestVMBoot(t *testing.T) {
	t.Parallel()
	checkQuotes(t)
	for _, w := range pid1Waits {
		t.Run(w.syscall, func(t *testing.T) {
			t.Parallel()
			testBoot(t, amd64, bootInit(w.wait, w.flags))
		})
	}
}

// TestVMBootArm64 is TestVMBoot on arm64, for the first way of waiting
// only: one VM checks the arm64 injection (its registers, its system call
// numbers) end to end, and each VM more slows the others on a small
// machine.
func TestVMBootArm64(t *testing.T) {
	t.Parallel()
	checkQuotes(t)
	testBoot(t, arm64, bootInit(pid1Waits[0].wait, pid1Waits[0].flags))
}

func checkQuotes(t *testing.T) {
	t.Helper()
	if strings.Contains(checkScript, "'") {
		t.Fatal("checkScript has a single quote: bootInit cannot quote it")
	}
}

func testBoot(t *testing.T, a *arch, init string, extra ...map[string]string) {
	f := need(t, a)
	token := randomToken(t)
	image := filepath.Join(t.TempDir(), "image.tar")
	err := testimage.BusyboxFrom(image, f.busybox, f.applets, map[string]string{"/etc/selfdock-vm-image": token + "\n"})
	if err != nil {
		t.Fatal(err)
	}
	copies := map[string]string{"image.tar": image, "brd.ko": f.brd}
	for _, e := range extra {
		maps.Copy(copies, e)
	}
	r := f.initramfs(init, copies)
	lines, err := runVM(t, f, r, 240*time.Second)
	if err != nil {
		t.Error(err)
	}
	checkBoot(t, lines, token)
	if sd := selfdockLines(lines); len(sd) > 0 {
		t.Logf("selfdock's messages:\n%s", strings.Join(sd, "\n"))
	}
	if t.Failed() {
		logTail(t, lines, 60)
	}
}

// initramfs is an old system for f's guest running init, with f's busybox
// and selfdock and the host files copies names.
func (f fixture) initramfs(init string, copies map[string]string) initramfs {
	c := map[string]string{"bin/selfdock": f.selfdock}
	maps.Copy(c, copies)
	return initramfs{init: init, busybox: f.busybox, applets: f.applets, copies: c}
}

// checkBoot checks the console of TestVMBoot, stopping at the first failure
// that makes the rest meaningless.
func checkBoot(t *testing.T, lines []string, token string) {
	t.Helper()
	up, ok := find(lines, "OLD-SYSTEM-UP")
	if !ok {
		t.Error("no OLD-SYSTEM-UP: the old system did not come up (see TestVMHarness)")
		return
	}
	if rc, ok := find(lines, "BOOT-FAILED"); ok {
		t.Errorf("selfdock boot failed in the VM (%s) and the old system went on", rc)
		return
	}
	if _, ok := find(lines, "SDVM"); !ok {
		t.Error("the image's shell printed nothing: boot did not reach CMD, or CMD's console is not the serial port")
		return
	}
	if got, _ := find(lines, "SDVM token="); got != token {
		t.Errorf("/etc/selfdock-vm-image read %q, want %q: the root is not the image", got, token)
	}
	if got, _ := find(lines, "SDVM pid="); got != "1" {
		t.Errorf("CMD's $$ is %q, want 1", got)
	}
	checkMounts(t, findAll(lines, "SDVM mount "))
	checkSwap(t, lines)
	checkProcs(t, findAll(lines, "SDVM proc "), strings.TrimPrefix(up, "daemon="))
	if _, ok := find(lines, "SELFDOCK-VM-MARKER-OK"); !ok {
		t.Error("no SELFDOCK-VM-MARKER-OK: the check script did not finish")
	}
}

// checkSwap: boot turns the old system's swap area off, unless told
// --keep-swap.
func checkSwap(t *testing.T, lines []string) {
	t.Helper()
	flags, _ := find(lines, "BOOT-FLAGS")
	keep := strings.Contains(flags, "--keep-swap")
	swaps := findAll(lines, "SDVM swap ")
	reported := slices.ContainsFunc(selfdockLines(lines), func(l string) bool { return strings.HasSuffix(l, "swapoff /dev/ram0") })
	switch on, _ := find(lines, "SWAP-ON "); {
	case on != "1":
		t.Errorf("the old system's swap area was not on (SWAP-ON %q)", on)
	case keep && (len(swaps) != 1 || swaps[0] != "/dev/ram0" || reported):
		t.Errorf("--keep-swap: swap areas %q in the new system, swapoff reported %v", swaps, reported)
	case !keep && len(swaps) > 0:
		t.Errorf("swap still on in the new system: %q", swaps)
	case !keep && !reported:
		t.Errorf("boot-init did not report its swapoff")
	}
}

// checkMounts: boot moves the old system's /proc, /sys and /dev into the
// new root.
func checkMounts(t *testing.T, mounts []string) {
	t.Helper()
	for _, want := range []string{"/proc proc", "/sys sysfs", "/dev devtmpfs"} {
		if !contains(mounts, want) {
			t.Errorf("no %s mount in the image; mounts:\n%s", want, strings.Join(mounts, "\n"))
		}
	}
}

// checkProcs: only the image's PID 1 may remain; above all not the old
// system's daemon (pid daemon, a sleep), not even as a zombie.
func checkProcs(t *testing.T, procs []string, daemon string) {
	t.Helper()
	sawInit := false
	for _, p := range procs {
		f := fields(p)
		switch {
		case f["pid"] == daemon || f["name"] == "sleep":
			t.Errorf("the old system's daemon (sleep, pid %s) survived boot: %s", daemon, p)
		case f["pid"] == "1":
			sawInit = true
		default:
			t.Errorf("a process survived boot (only the image's PID 1 should run): %s", p)
		}
	}
	if !sawInit {
		t.Errorf("PID 1 is not in the image's /proc; processes: %q", procs)
	}
}

// fields parses "k=v k=v" (a value without spaces, maybe empty).
func fields(s string) map[string]string {
	m := map[string]string{}
	for _, kv := range strings.Fields(s) {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

func contains(list []string, s string) bool {
	for _, l := range list {
		if l == s {
			return true
		}
	}
	return false
}

// selfdockLines are selfdock's progress and error lines, from /dev/kmsg or
// its standard error.
func selfdockLines(lines []string) []string {
	var out []string
	for _, l := range lines {
		if strings.HasPrefix(stripTimestamp(l), "selfdock") {
			out = append(out, l)
		}
	}
	return out
}

// randomToken marks the image: a root that has it is this run's image.
func randomToken(t *testing.T) string {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "sdvm-" + hex.EncodeToString(b)
}
