package tests

// Negative tests: each one tries something the caller cannot do without
// selfdock, asserts that it fails, and that the host did not change.

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// shadowLines are /etc/shadow's non-empty lines: none may ever be printed.
func shadowLines(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("/etc/shadow")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}

func TestShadowUnreadable(t *testing.T) {
	h := need(t)
	secret := shadowLines(t)
	d := h.dir(t, &h.user, 0o755)
	link := filepath.Join(d, "link")
	linkDir := filepath.Join(d, "linkdir")
	for target, l := range map[string]string{"/etc/shadow": link, "/etc": linkDir} {
		if err := os.Symlink(target, l); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(l, h.user.uid, h.user.gid); err != nil {
			t.Fatal(err)
		}
	}
	bb := h.dir(t, &h.user, 0o755)
	copyFile(t, busybox(t), filepath.Join(bb, "busybox"), 0o755, &h.user)
	for _, args := range [][]string{
		{"run", "cat", "/etc/shadow"},
		{"build", "cat", "/etc/shadow"},
		{"-C", "/etc", "run", "cat", "shadow"},
		{"--map", "/etc/shadow", "/tmp/x", "run", "cat", "/tmp/x"},
		{"--map", "/etc", "/srv", "run", "cat", "/srv/shadow"},
		{"--vol", "/etc/shadow", "/tmp/x", "run", "cat", "/tmp/x"},
		{"--map", link, "/tmp/x", "run", "cat", "/tmp/x"},
		{"--vol", link, "/tmp/x", "run", "cat", "/tmp/x"},
		{"--map", linkDir, "/srv", "run", "cat", "/srv/shadow"},
		{"--map", "/proc/self/root/etc/shadow", "/tmp/x", "run", "cat", "/tmp/x"},
		{"--map", "/proc/self/cwd/" + strings.Repeat("../", 8) + "etc/shadow", "/tmp/x", "run", "cat", "/tmp/x"},
		{"--rootfs", "/etc", "run", "cat", "/shadow"},
		{"--rootfs", "/etc", "--map", bb, "/opt", "run", "/opt/busybox", "cat", "/shadow"},
		{"--rootfs", linkDir, "--map", bb, "/opt", "run", "/opt/busybox", "cat", "/shadow"},
		{"--rootfs", "/etc", "--map", bb, "/opt", "build", "/opt/busybox", "cat", "/shadow"},
		{"run", h.bin, "--map", "/etc/shadow", "/tmp/x", "run", "cat", "/tmp/x"},
		{"run", h.bin, "--rootfs", "/etc", "--map", bb, "/opt", "run", "/opt/busybox", "cat", "/shadow"},
	} {
		r := h.sd(t, args...)
		noCrash(t, r)
		if r.code == 0 {
			t.Errorf("reading /etc/shadow succeeded:\n%v", r)
		}
		for _, l := range secret {
			if strings.Contains(r.stdout, l) || strings.Contains(r.stderr, l) {
				t.Errorf("/etc/shadow leaked:\n%v", r)
				break
			}
		}
	}
}

// Sources the caller cannot reach, or (for --vol) cannot write, are refused.
func TestSourcesRefused(t *testing.T) {
	h := need(t)
	priv := h.dir(t, &h.other, 0o700)
	secret := writeFile(t, filepath.Join(priv, "secret"), "sdother's secret\n", 0o644, &h.other)
	rootDir := h.dir(t, nil, 0o755)
	writeFile(t, filepath.Join(rootDir, "f"), "root's\n", 0o644, nil)
	user := h.dir(t, &h.user, 0o755)
	rootFile := writeFile(t, filepath.Join(user, "rootfile"), "root's\n", 0o644, nil)
	otherGroup := h.dir(t, nil, 0o775)
	if err := os.Chown(otherGroup, 0, h.other.gid); err != nil {
		t.Fatal(err)
	}
	etcLink := filepath.Join(user, "etc")
	if err := os.Symlink("/etc", etcLink); err != nil {
		t.Fatal(err)
	}
	_ = os.Lchown(etcLink, h.user.uid, h.user.gid)
	snaps := map[string]map[string]string{}
	for _, d := range []string{priv, rootDir, user, otherGroup, "/etc"} {
		snaps[d] = snapshot(t, d)
	}
	write := []string{"run", "sh", "-c", "echo pwned > /srv/pwned; echo pwned > /srv; cat /srv/secret /srv"}
	// sdother's 0700 directory itself can be looked up by sdtest, so binding
	// it read-only (or using it as the root) is no more than sdtest can do
	// anyway; the permissions still apply inside.
	for _, args := range [][]string{
		append([]string{"--map", priv, "/srv"}, write...),
		{"--rootfs", priv, "run", "true"},
		{"--rootfs", priv, "run", "/bin/busybox", "true"},
	} {
		r := h.sd(t, args...)
		noCrash(t, r)
		if r.code == 0 || strings.Contains(r.stdout, "secret") {
			t.Errorf("sdother's 0700 directory opened up:\n%v", r)
		}
	}
	for _, tc := range []struct{ opt, src string }{
		{"--map", secret}, {"--vol", priv}, {"--vol", secret},
		{"--map", filepath.Join(priv, "nonexistent")}, {"--rootfs", filepath.Join(priv, "sub")},
		{"--vol", rootDir}, {"--vol", rootFile}, {"--vol", "/etc"}, {"--vol", etcLink},
		{"--vol", otherGroup}, {"--vol", "/"}, {"--vol", "/proc/self/root/etc"},
	} {
		args := append([]string{tc.opt, tc.src, "/srv"}, write...)
		if tc.opt == "--rootfs" {
			args = []string{"--rootfs", tc.src, "run", "true"}
		}
		r := h.sd(t, args...)
		wantRefused(t, r, 124)
		if strings.Contains(r.stdout, "secret") {
			t.Errorf("sdother's file leaked:\n%v", r)
		}
	}
	for d, before := range snaps {
		sameSnapshot(t, d, before, snapshot(t, d))
	}
}

// Access is decided with all the caller's groups: a supplementary group
// (sdextra) grants what it grants outside, and no more.
func TestSupplementaryGroupAccess(t *testing.T) {
	h := need(t)
	extra := h.user.groups[len(h.user.groups)-1]
	for _, g := range h.user.groups {
		if int(g) != h.user.gid {
			extra = g
		}
	}
	readable := h.dir(t, nil, 0o750)
	writable := h.dir(t, nil, 0o770)
	for _, d := range []string{readable, writable} {
		if err := os.Chown(d, 0, int(extra)); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(readable, "f"), "group\n", 0o644, nil)
	wantOut(t, h.sd(t, "--map", readable, "/srv", "run", "cat", "/srv/f"), "group")
	wantRefused(t, h.sd(t, "--vol", readable, "/srv", "run", "true"), 124)
	wantCode(t, h.sd(t, "--vol", writable, "/srv", "run", "sh", "-c", "echo g > /srv/g"), 0)
	if b, _ := os.ReadFile(filepath.Join(writable, "g")); string(b) != "g\n" {
		t.Errorf("--vol through a supplementary group: host file %q", b)
	}
}

// The setuid bit of a root-owned program gains nothing inside.
func TestSetuidGainsNothing(t *testing.T) {
	h := need(t)
	d := h.dir(t, nil, 0o755)
	id := copyFile(t, "/usr/bin/id", filepath.Join(d, "id"), 0o4755, nil)
	uid := strconv.Itoa(h.user.uid)
	// The fixture does give root outside, or the test would prove nothing.
	if r := h.exec(t, opts{}, id, "-u"); r.out() != "0" {
		t.Fatalf("setuid copy of id does not give root outside the sandbox:\n%v", r)
	}
	for _, sub := range []string{"run", "build"} {
		wantOut(t, h.sd(t, sub, id, "-u"), uid)
		if r := h.sd(t, sub, id); strings.Contains(r.stdout, "euid=") || !strings.HasPrefix(r.out(), "uid="+uid) {
			t.Errorf("setuid id inside:\n%v", r)
		}
	}
	if h.probe == "" {
		skipOrFail(t, "gcc could not build the setuid probe")
	}
	root := h.busyboxRoot(t)
	for _, p := range []string{filepath.Join(root, "bin/probe"), filepath.Join(d, "probe")} {
		copyFile(t, h.probe, p, 0o4755, nil)
	}
	// Named busybox, so that it runs its argv[1] applet.
	bb := copyFile(t, busybox(t), filepath.Join(mkdir(t, filepath.Join(root, "suid"), 0o755, &h.user), "busybox"), 0o4755, nil)
	if r := h.exec(t, opts{}, filepath.Join(d, "probe")); r.out() != "euid=0 setuid0=0" {
		t.Fatalf("setuid probe does not give root outside the sandbox:\n%v", r)
	}
	want := "euid=" + uid + " setuid0=-1"
	for _, args := range [][]string{
		{"run", filepath.Join(d, "probe")},
		{"build", filepath.Join(d, "probe")},
		{"run", filepath.Join(root, "bin/probe")},
		{"-r", root, "run", "/bin/probe"},
		{"-r", root, "build", "/bin/probe"},
		{"run", h.bin, "run", filepath.Join(d, "probe")},
		{"run", h.bin, "-r", root, "run", "/bin/probe"},
	} {
		wantOut(t, h.sd(t, args...), want)
	}
	// busybox, setuid root in the caller's rootfs: `id -u` stays the caller.
	wantOut(t, h.sd(t, "-r", root, "run", "/suid/busybox", "id", "-u"), uid)
	wantOut(t, h.sd(t, "-r", root, "build", "/suid/busybox", "id", "-u"), uid)
	wantOut(t, h.sd(t, "run", bb, "id", "-u"), uid)
}

// Mount destinations are never created on the host (selfdock must not make
// directories as root where the caller could not).
func TestDestinationNotCreatedOnHost(t *testing.T) {
	h := need(t)
	name := uniq("sd-e2e-dst-")
	src := h.dir(t, &h.user, 0o755)
	rootDir := h.dir(t, nil, 0o755)
	for _, dst := range []string{
		"/" + name, "/etc/" + name, "/usr/" + name + "/sub", rootDir + "/" + name, h.home + "/" + name,
	} {
		for _, opt := range [][]string{{"--map", src}, {"--vol", src}, {"--tmpfs", "size=1m"}} {
			r := h.sd(t, append(opt, dst, "run", "true")...)
			noCrash(t, r)
			if r.code != 0 && r.code != 124 {
				t.Errorf("want 0 or 124:\n%v", r)
			}
			mustNotExist(t, dst)
			mustNotExist(t, filepath.Dir(dst)+"/"+name)
		}
	}
}

// A symlink in a user-owned rootfs cannot redirect a mount out of it: the
// destination resolves inside the rootfs, or the run is refused.
func TestSymlinkDestinationStaysInRoot(t *testing.T) {
	h := need(t)
	root := h.busyboxRoot(t)
	vol := h.dir(t, &h.user, 0o755)
	outside := h.dir(t, &h.user, 0o755)
	for _, target := range []string{"/etc", "../../../../../../../../etc"} {
		_ = os.Remove(filepath.Join(root, "srv"))
		if err := os.Symlink(target, filepath.Join(root, "srv")); err != nil {
			t.Fatal(err)
		}
		_ = os.Remove(filepath.Join(vol, "pwned"))
		r := h.sd(t, "-r", root, "--vol", vol, "/srv", "run", "/bin/busybox", "sh", "-c", "echo in > /srv/pwned")
		noCrash(t, r)
		if r.code != 124 {
			if _, err := os.Stat(filepath.Join(vol, "pwned")); err != nil {
				t.Errorf("symlink %s: the --vol was not mounted at the in-root target:\n%v", target, r)
			}
		}
		mustNotExist(t, filepath.Join(root, "etc/pwned"))
		mustNotExist(t, "/etc/pwned")
	}
	// A symlinked /dev or /proc in the rootfs pointing at a host directory:
	// the sandbox's mounts never appear there.
	before := mountLines()
	for _, d := range []string{"dev", "proc", "tmp"} {
		_ = os.RemoveAll(filepath.Join(root, d))
		if err := os.Symlink(outside, filepath.Join(root, d)); err != nil {
			t.Fatal(err)
		}
		r := h.sd(t, "-r", root, "run", "/bin/busybox", "true")
		noCrash(t, r)
		if m := mountsUnder(outside); len(m) > 0 {
			t.Errorf("rootfs /%s -> %s: mounts on the host: %v", d, outside, m)
		}
	}
	if after := mountLines(); len(after) != len(before) {
		t.Errorf("host mount table changed: new %q", minus(after, before))
	}
}

// Inside, the caller cannot mount, remount / read-write, or (in a nested
// user namespace) peel mounts off to see what is under them.
func TestNoMountingInside(t *testing.T) {
	h := need(t)
	host := writeFile(t, "/tmp/"+uniq("sd-e2e-under-"), "under the tmpfs\n", 0o644, nil)
	defer os.Remove(host)
	name := "/" + uniq("sd-e2e-rw-")
	for _, sh := range []string{
		"mount -t tmpfs none /srv && echo mounted",
		"mount -o remount,rw / && echo remounted",
		"umount /tmp && echo unmounted",
		fmt.Sprintf("unshare -rm sh -c 'mount -o remount,rw / || mount -o remount,bind,rw /; echo x > %s && echo written'", name),
		fmt.Sprintf("unshare -rm sh -c 'umount -l /tmp; cat %s'", host),
		fmt.Sprintf("unshare -rm sh -c 'umount -l /dev/shm; umount -l /proc; ls /proc/1/root/tmp/%s'", filepath.Base(host)),
	} {
		r := h.sd(t, "run", "sh", "-c", sh)
		for _, bad := range []string{"mounted", "remounted", "unmounted", "written", "under the tmpfs", filepath.Base(host)} {
			if strings.Contains(r.stdout, bad) {
				t.Errorf("%q succeeded inside:\n%v", sh, r)
			}
		}
	}
	mustNotExist(t, name)
}

// TestAttackTZOpensAsRoot: Go's time package opens the file TZ names while
// the packages initialise, before main runs. A setuid selfdock must not do
// that as root: with TZ naming a FIFO only root may open, it would hang
// (and a device file would act). The command still gets the caller's TZ.
func TestAttackTZOpensAsRoot(t *testing.T) {
	h := need(t)
	fifo := filepath.Join(h.dir(t, nil, 0o700), "tz-fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"run", "sh", "-c", "echo \"TZ=$TZ\""}, {"--version"}, {"ps"}} {
		r := h.sdo(t, opts{env: []string{"TZ=" + fifo}, timeout: 10 * time.Second}, args...)
		wantCode(t, r, 0)
		if args[0] == "run" && r.out() != "TZ="+fifo {
			t.Errorf("the command lost the caller's TZ:\n%v", r)
		}
	}
	r := h.sdo(t, opts{env: []string{"TZ=Europe/Paris"}}, "run", "sh", "-c", "echo $TZ; env | grep -c SELFDOCK_CALLER_TZ; exit 0")
	wantOut(t, r, "Europe/Paris\n0")
}

// TestAttackRuntimeEnv: the Go runtime parses GODEBUG (and GOGC,
// GOMAXPROCS...) as it starts, before main; in secure mode it ignores only
// GOTRACEBACK. A setuid selfdock must not let the caller steer it (here:
// inittrace would print).
func TestAttackRuntimeEnv(t *testing.T) {
	h := need(t)
	r := h.sdo(t, opts{env: []string{"GODEBUG=inittrace=1", "GOGC=1"}}, "run", "sh", "-c", "echo ${GODEBUG-unset} ${SELFDOCK_HIDDEN-unset}")
	wantOut(t, r, "unset unset")
	if strings.Contains(r.stderr, "init runtime") {
		t.Errorf("the setuid runtime obeyed the caller's GODEBUG:\n%v", r)
	}
}

// TestUmaskOfCaller: the directories selfdock makes as root (a mount point
// in the overlay) do not take the caller's umask, and the command gets the
// caller's umask.
func TestUmaskOfCaller(t *testing.T) {
	h := need(t)
	r := h.exec(t, opts{}, "/bin/sh", "-c", `umask 0777; exec "$0" --overlay --map /etc /newdir/b run sh -c "umask; stat -c %a /newdir"`, h.bin)
	wantOut(t, r, "0777\n755")
	r = h.exec(t, opts{}, "/bin/sh", "-c", `umask 0027; exec "$0" run sh -c umask`, h.bin)
	wantOut(t, r, "0027")
}
