package tests

import (
	_ "embed"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/selfdock/selfdock/tests/internal/testimage"
)

// The boot tests never touch this machine's PID 1: each one starts a fake
// init as PID 1 of a new PID and mount namespace (unshare --pid --mount
// --fork --mount-proc) and runs selfdock boot inside it (nsenter), which
// targets that namespace's PID 1. The one test about the real PID 1 runs
// selfdock in a private mount namespace without CAP_SYS_PTRACE, so that
// even a broken refusal could neither trace PID 1 nor mount on the host.

//go:embed testdata/fakeinit.c
var fakeinitC string

// TestBootReplacesNamespaceInit: the fake init, blocked in waitid like
// systemd, becomes selfdock boot-init, which ends every other process of
// the namespace, switches into the image and runs CMD as PID 1.
func TestBootReplacesNamespaceInit(t *testing.T) {
	h := need(t)
	img := h.bootImage(t)
	tmp := t.TempDir() // boot runs as root: no private /tmp hides it
	dir := filepath.Join(tmp, "dir")
	mkdir(t, dir, 0o755, nil)
	if b, err := exec.Command("tar", "-xf", img, "-C", dir).CombinedOutput(); err != nil {
		t.Fatalf("tar -x: %v %s", err, b)
	}
	sqfs := filepath.Join(tmp, "busybox.sqfs")
	if b, err := exec.Command("mksquashfs", dir, sqfs, "-quiet", "-noappend", "-comp", "zstd").CombinedOutput(); err != nil {
		t.Fatalf("mksquashfs: %v %s", err, b)
	}
	cmd := `cat /etc/boot-marker; echo pid=$$; for p in /proc/[0-9]*; do echo proc=${p#/proc/}; done; ` +
		`test -e /run/selfdock && echo OLD-RUN-VISIBLE; grep -E "^Sig(Blk|Ign)" /proc/self/status; exec sleep 1000`
	argv := []string{"/bin/sh", "-c", cmd}
	// A docker save archive names no CMD on the command line: its
	// entrypoint and cmd are what PID 1 runs.
	docker := dockerSave(t, img, filepath.Join(tmp, "docker.tar"), argv[:2], argv[2:])
	for kind, c := range map[string]struct {
		src, mode string // mode: how the fake init waits
		argv      []string
	}{"tarball": {img, "", argv}, "directory": {dir, "", argv}, "squashfs": {sqfs, "", argv}, "docker-save": {docker, "", nil},
		"tarball, PID 1 in nanosleep": {img, "sleep", argv}} {
		t.Run(kind, func(t *testing.T) {
			f := h.startFakeInit(t, c.mode)
			r := h.boot(t, f, append([]string{"--yes", "--pid", "1", c.src}, c.argv...)...)
			if !wantCode(t, r, 0) {
				t.Fatalf("fake init's output: %q", f.output())
			}
			// The same process, PID 1 inside, ends up running the image's sleep.
			if !waitFor(10*time.Second, func() bool { return procFile(f.pid, "cmdline") == "sleep\x001000\x00" }) {
				t.Fatalf("PID 1 (%d) does not run CMD: cmdline %q; output %q", f.pid, procFile(f.pid, "cmdline"), f.output())
			}
			checkBooted(t, f)
			if _, err := os.Stat("/run/selfdock/boot"); err == nil {
				t.Errorf("/run/selfdock/boot appeared on the host")
			}
			// The namespace selfdock boot ran in keeps nothing: unshare,
			// the fake init's parent, is still there.
			h.noBootLeft(t, f.cmd.Process.Pid, true)
		})
	}
}

// TestBootExecFailsRestores: when the execve injected into PID 1 fails (a
// fake init whose seccomp filter forbids execve), its registers and memory
// are put back: it is back in the same system call with the same
// arguments, stack and program counter, and it goes on reaping; nothing is
// left mounted. The spinning variant is stopped outside any system call,
// where a syscall instruction has to be written into its code and removed.
func TestBootExecFailsRestores(t *testing.T) {
	h := need(t)
	img := h.bootImage(t)
	t.Run("blocked in waitid", func(t *testing.T) {
		f := h.startFakeInit(t, "deny-exec")
		before := procFile(f.pid, "syscall")
		r := h.failedBoot(t, f, img)
		if !strings.Contains(r.stderr, "execve in the target failed: operation not permitted") ||
			!strings.Contains(r.stderr, "the old system keeps running") || strings.Count(strings.TrimSpace(r.stderr), "\n") > 1 {
			t.Errorf("want a clear error, got:\n%v", r)
		}
		if after := procFile(f.pid, "syscall"); after != before || !strings.HasPrefix(before, "247 ") {
			t.Errorf("PID 1 not back where it was: before %q, after %q", before, after)
		}
		f.stillReaps(t)
		h.noBootLeft(t, f.pid, false)
	})
	t.Run("sleeping in nanosleep", func(t *testing.T) {
		// The kernel restarts nanosleep through restart_syscall: the
		// restore must make the same restart.
		f := h.startFakeInit(t, "deny-exec-sleep")
		f.want(t, "sleeping", "not sleeping")
		h.failedBoot(t, f, img)
		if sc := procFile(f.pid, "syscall"); !strings.HasPrefix(sc, "230 ") && !strings.HasPrefix(sc, "219 ") {
			t.Errorf("PID 1 not back in its sleep: %q", sc)
		}
		_ = syscall.Kill(f.pid, syscall.SIGUSR1)
		f.want(t, "sleep ended", "the fake init's sleep is broken after the restore")
	})
	t.Run("spinning in user space", func(t *testing.T) {
		f := h.startFakeInit(t, "deny-exec-spin")
		f.want(t, "spinning", "not spinning")
		h.failedBoot(t, f, img)
		_ = syscall.Kill(f.pid, syscall.SIGUSR1)
		f.want(t, "spin ended", "the fake init's loop is broken after the restore")
		f.stillReaps(t)
	})
}

// failedBoot runs a boot of img over f that must fail (exit 124).
func (h *harness) failedBoot(t *testing.T, f *fakeInit, img string) res {
	t.Helper()
	r := h.boot(t, f, "--yes", img, "/bin/true")
	wantCode(t, r, 124)
	return r
}

// TestBootDryRunAndRefusals: --dry-run prepares and removes the new root
// without touching PID 1; an image larger than the RAM, a missing CMD, a
// missing image and a target that is no init are refused with one line
// and exit 124, leaving nothing behind.
func TestBootDryRunAndRefusals(t *testing.T) {
	h := need(t)
	img := h.bootImage(t)
	f := h.startFakeInit(t, "")
	before := procFile(f.pid, "syscall")
	r := h.boot(t, f, "--dry-run", img, "/bin/sh")
	wantCode(t, r, 0)
	if !strings.Contains(r.stderr, "dry run: nothing was replaced") {
		t.Errorf("dry run does not say so:\n%v", r)
	}
	huge := filepath.Join(t.TempDir(), "huge.tar")
	if err := os.WriteFile(huge, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(huge, 1<<40); err != nil { // sparse: 1 TiB that takes no disk
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--yes", huge}, "MiB are available"},
		{[]string{"--yes", img, "/no/such/cmd"}, `command "/no/such/cmd" in the image`},
		{[]string{"--yes", img, "nosuchcmd"}, `command "nosuchcmd": not found in the image's PATH`},
		{[]string{"--yes", filepath.Join(h.fix, "no-such-image")}, "no such file"},
		{[]string{"--yes", "--pid", f.inner, img}, "not the init (PID 1) of a PID namespace"},
	} {
		r := h.boot(t, f, tc.args...)
		if wantCode(t, r, 124) && (!strings.Contains(r.stderr, tc.want) || strings.Count(strings.TrimSpace(r.stderr), "\n") > 0) {
			t.Errorf("want one line with %q, got:\n%v", tc.want, r)
		}
	}
	if after := procFile(f.pid, "syscall"); after != before {
		t.Errorf("PID 1 was disturbed: %q then %q", before, after)
	}
	h.noBootLeft(t, f.pid, false)
}

// TestBootRefusesUsersAndRealInit: the setuid bit never allows boot or
// boot-init; root is refused this machine's real PID 1 without the
// explicit flag. That last run is made harmless twice over: a private
// mount namespace, and no CAP_SYS_PTRACE (without it root cannot trace a
// PID 1 that has every capability).
func TestBootRefusesUsersAndRealInit(t *testing.T) {
	h := need(t)
	img := h.bootImage(t)
	for _, args := range [][]string{{"boot", "--dry-run", img}, {"boot", "--yes", img}, {"boot-init", "/run/selfdock/boot/boot.json"}} {
		r := h.sd(t, args...)
		if wantCode(t, r, 124) && !strings.Contains(r.stderr, "only the real root") {
			t.Errorf("want a refusal, got:\n%v", r)
		}
	}
	r := h.exec(t, opts{as: &root, dir: "/"}, "unshare", "--mount", "--propagation", "private",
		"setpriv", "--bounding-set", "-sys_ptrace", "--inh-caps", "-sys_ptrace", "--",
		h.bin, "boot", "--yes", "--dry-run", img, "/bin/true")
	if wantCode(t, r, 124) && !strings.Contains(r.stderr, "is this machine's init") {
		t.Errorf("want the real PID 1 refused, got:\n%v", r)
	}
	if _, err := os.Stat("/run/selfdock/boot"); err == nil {
		t.Errorf("/run/selfdock/boot exists on the host")
	}
}

// TestBootConfirms: without --yes, boot asks on the terminal and anything
// but "yes" cancels, with nothing replaced and nothing left; without a
// terminal it refuses.
func TestBootConfirms(t *testing.T) {
	h := need(t)
	img := h.bootImage(t)
	f := h.startFakeInit(t, "")
	before := procFile(f.pid, "syscall")
	r := h.boot(t, f, img, "/bin/true") // stdin is not a terminal, and there is no controlling one
	if wantCode(t, r, 124) && !strings.Contains(r.stderr, "confirmation needs a terminal (/dev/tty); add --yes") {
		t.Errorf("want a refusal without a terminal, got:\n%v", r)
	}
	master, slave := openPty(t, nil)
	if _, err := master.Write([]byte("no\n")); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("nsenter", "-t", strconv.Itoa(f.pid), "-p", "-m", h.bin, "boot", img, "/bin/true")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	err := cmd.Run()
	slave.Close()
	out := readAll(master)
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 124 {
		t.Errorf("answering no: %v, want exit 124; terminal:\n%s", err, out)
	}
	for _, want := range []string{"Type yes to go on:", "cancelled; nothing was replaced"} {
		if !strings.Contains(out, want) {
			t.Errorf("terminal lacks %q:\n%s", want, out)
		}
	}
	if after := procFile(f.pid, "syscall"); after != before {
		t.Errorf("PID 1 was disturbed: %q then %q", before, after)
	}
	h.noBootLeft(t, f.pid, false)
}

// TestBootInitGivesUp: a boot-init that cannot go on before the point of
// no return (here: no metadata) starts the old init again in its place, so
// that the old system keeps running. The namespace's PID 1 is boot-init
// from the start here, with the fake init as the one to fall back to.
func TestBootInitGivesUp(t *testing.T) {
	h := need(t)
	bin := buildC(filepath.Join(h.fix, "bin"), "fakeinit", fakeinitC)
	out, err := os.CreateTemp(t.TempDir(), "giveup")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("unshare", "--pid", "--mount", "--fork", "--mount-proc",
		h.bin, "boot-init", "/run/selfdock/boot/no-such-boot.json", "--", bin)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f := &fakeInit{out: out, cmd: cmd}
	t.Cleanup(f.stop)
	if !waitFor(10*time.Second, func() bool { return strings.Contains(f.output(), "fakeinit ready pid=1") }) {
		t.Fatalf("the old init did not come back: %q", f.output())
	}
	f.pid = firstChild(cmd.Process.Pid)
	if !strings.Contains(f.output(), "cannot boot: open /run/selfdock/boot/no-such-boot.json") ||
		!strings.Contains(f.output(), "starting the old init again") {
		t.Errorf("boot-init did not say why it gave up: %q", f.output())
	}
}

// TestBootEmergencyShell: a CMD that cannot be executed after the point of
// no return (a script whose interpreter the image lacks: it passes the
// check before) drops to the image's /bin/sh, which answers on PID 1's
// standard input.
func TestBootEmergencyShell(t *testing.T) {
	h := need(t)
	img := filepath.Join(t.TempDir(), "broken.tar")
	if err := testimage.Busybox(img, map[string]string{"/bin/broken": "#!/no/such/interpreter\n"}); err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	defer pw.Close()
	f := h.startFakeInitIn(t, "", pr)
	r := h.boot(t, f, "--yes", img, "/bin/broken")
	wantCode(t, r, 0)
	go func() { _, _ = io.WriteString(pw, "echo EMERGENCY-SHELL-$((6*7))\n") }()
	if !waitFor(10*time.Second, func() bool { return strings.Contains(f.output(), "EMERGENCY-SHELL-42") }) {
		t.Fatalf("no emergency shell: %q", f.output())
	}
	if !strings.Contains(f.output(), `boot failed after the point of no return: exec "/bin/broken"`) {
		t.Errorf("boot-init did not say why: %q", f.output())
	}
}
