package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func TestExitCodes(t *testing.T) {
	h := need(t)
	missing := filepath.Join(h.fix, "no-such-source")
	for _, tc := range []struct {
		name string
		args []string
		code int
		out  string // expected stdout, when not empty
		kind string // "": CMD's status; "refused": one-line message; "usage"
	}{
		{"true", []string{"run", "true"}, 0, "", ""},
		{"status 7 passes through", []string{"run", "sh", "-c", "exit 7"}, 7, "", ""},
		{"status 255 passes through", []string{"run", "sh", "-c", "exit 255"}, 255, "", ""},
		{"false", []string{"run", "false"}, 1, "", ""},
		{"directory not executable", []string{"run", "/"}, 126, "", "refused"},
		{"file not executable", []string{"run", "/etc/passwd"}, 126, "", "refused"},
		{"absolute path not found", []string{"run", "/1"}, 127, "", "refused"},
		{"command not in PATH", []string{"run", "selfdock-no-such-command"}, 127, "", "refused"},
		{"relative --map destination", []string{"--map", "/etc", "relative", "run", "true"}, 124, "", "refused"},
		{"relative --vol destination", []string{"--vol", h.home, "relative", "run", "true"}, 124, "", "refused"},
		{"relative --tmpfs destination", []string{"--tmpfs", "size=1m", "relative", "run", "true"}, 124, "", "refused"},
		{"missing --map source", []string{"--map", missing, "/srv", "run", "true"}, 124, "", "refused"},
		{"missing --vol source", []string{"--vol", missing, "/srv", "run", "true"}, 124, "", "refused"},
		{"missing --rootfs", []string{"--rootfs", missing, "run", "true"}, 124, "", "refused"},
		{"missing -C directory", []string{"-C", missing, "run", "true"}, 124, "", "refused"},
		{"no arguments", []string{}, 124, "", "usage"},
		{"no command", []string{"run"}, 124, "", "usage"},
		{"unknown subcommand", []string{"frobnicate", "true"}, 124, "", "usage"},
		{"unknown option", []string{"--frobnicate", "run", "true"}, 124, "", "usage"},
		{"--map without destination", []string{"run", "--map", "/etc"}, 124, "", "usage"},
		{"-e without value", []string{"run", "-e", "A"}, 124, "", "usage"},
		// PID 1 cannot be killed by its own SIGKILL, but its children can,
		// and the shell sees 128+9.
		{"child killed inside", []string{"run", "sh", "-c", `sh -c 'kill -KILL $$'; echo $?`}, 0, "137", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := h.sd(t, tc.args...)
			switch tc.kind {
			case "refused":
				wantRefused(t, r, tc.code)
			case "usage":
				wantUsage(t, r)
			default:
				if wantCode(t, r, tc.code) && tc.out != "" && r.out() != tc.out {
					t.Errorf("want stdout %q, got:\n%v", tc.out, r)
				}
			}
		})
	}
}

// CMD is PID 1; a fault's SIGSEGV is the one signal it can die of by itself.
func TestSignalDeathPassesThrough(t *testing.T) {
	h := need(t)
	if h.segv == "" {
		skipOrFail(t, "gcc could not build the SIGSEGV helper")
	}
	wantCode(t, h.sd(t, "run", h.segv), 128+11)
	wantCode(t, h.sd(t, "run", "sh", "-c", h.segv+"; exit $?"), 128+11)
}

func TestIdentity(t *testing.T) {
	h := need(t)
	wantOut(t, h.sd(t, "run", "id", "-u"), strconv.Itoa(h.user.uid))
	wantOut(t, h.sd(t, "run", "id", "-g"), strconv.Itoa(h.user.gid))
	r := h.sd(t, "run", "id", "-G")
	if wantCode(t, r, 0) && sortedFields(r.out()) != sortedGroups(h.user.groups) {
		t.Errorf("id -G: want groups %s, got:\n%v", sortedGroups(h.user.groups), r)
	}
	// Real, effective, saved and filesystem ids are all the caller's.
	st := procStatus(t, h, "run", "cat", "/proc/self/status")
	u, g := strconv.Itoa(h.user.uid), strconv.Itoa(h.user.gid)
	if want := strings.Join([]string{u, u, u, u}, " "); st["Uid"] != want {
		t.Errorf("Uid: want %q, got %q", want, st["Uid"])
	}
	if want := strings.Join([]string{g, g, g, g}, " "); st["Gid"] != want {
		t.Errorf("Gid: want %q, got %q", want, st["Gid"])
	}
	if sortedFields(st["Groups"]) != sortedGroups(h.user.groups) {
		t.Errorf("Groups: want %s, got %q", sortedGroups(h.user.groups), st["Groups"])
	}
}

func sortedGroups(g []uint32) string {
	s := make([]string, len(g))
	for i, v := range g {
		s[i] = strconv.Itoa(int(v))
	}
	return sortedFields(strings.Join(s, " "))
}

func sortedFields(s string) string {
	f := strings.Fields(s)
	sort.Strings(f)
	return strings.Join(f, " ")
}

// procStatus runs selfdock args (which print a /proc/PID/status) and parses it,
// normalising whitespace in the values.
func procStatus(t *testing.T, h *harness, args ...string) map[string]string {
	t.Helper()
	r := h.sd(t, args...)
	if !wantCode(t, r, 0) {
		t.FailNow()
	}
	m := map[string]string{}
	for _, l := range strings.Split(r.stdout, "\n") {
		k, v, ok := strings.Cut(l, ":")
		if ok {
			m[k] = strings.Join(strings.Fields(v), " ")
		}
	}
	return m
}

func TestNoPrivileges(t *testing.T) {
	h := need(t)
	for _, args := range [][]string{
		{"run", "cat", "/proc/self/status"},
		{"build", "cat", "/proc/self/status"},
		{"run", "sh", "-c", "cat /proc/$$/status"}, // PID 1 itself
	} {
		st := procStatus(t, h, args...)
		for _, k := range []string{"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"} {
			if st[k] != "0000000000000000" {
				t.Errorf("%v: %s = %q, want all zero", args, k, st[k])
			}
		}
		if st["NoNewPrivs"] != "1" {
			t.Errorf("%v: NoNewPrivs = %q, want 1", args, st["NoNewPrivs"])
		}
	}
}

func TestPID1(t *testing.T) {
	h := need(t)
	wantOut(t, h.sd(t, "run", "sh", "-c", "echo $$"), "1")
	// ps is alone in its PID namespace, as PID 1.
	wantOut(t, h.sd(t, "run", "ps", "-A", "-o", "pid=,comm="), "1 ps")
	// A fresh /proc: only this namespace's processes.
	r := h.sd(t, "run", "ls", "/proc")
	if wantCode(t, r, 0) {
		var pids []string
		for _, f := range strings.Fields(r.stdout) {
			if _, err := strconv.Atoi(f); err == nil {
				pids = append(pids, f)
			}
		}
		if strings.Join(pids, " ") != "1" {
			t.Errorf("/proc inside lists pids %v, want only 1", pids)
		}
	}
}

func TestNamespaces(t *testing.T) {
	h := need(t)
	kinds := []string{"mnt", "pid", "ipc", "uts", "net"}
	host := map[string]string{}
	var paths []string
	for _, k := range kinds {
		host[k], _ = os.Readlink("/proc/self/ns/" + k)
		paths = append(paths, "/proc/self/ns/"+k)
	}
	for _, net := range []bool{false, true} {
		args := append([]string{"run", "readlink"}, paths...)
		if net {
			args = append([]string{"--net"}, args...)
		}
		r := h.sd(t, args...)
		if !wantCode(t, r, 0) {
			continue
		}
		got := strings.Fields(r.stdout)
		if len(got) != len(kinds) {
			t.Errorf("want %d namespace links, got:\n%v", len(kinds), r)
			continue
		}
		for i, k := range kinds {
			shared := got[i] == host[k]
			if wantShared := net && k == "net"; shared != wantShared {
				t.Errorf("--net=%v: %s namespace inside %s, host %s (shared=%v, want %v)",
					net, k, got[i], host[k], shared, wantShared)
			}
		}
	}
}

func TestHostname(t *testing.T) {
	h := need(t)
	host, _ := os.Hostname()
	wantOut(t, h.sd(t, "run", "hostname"), host)
	wantFail(t, h.sd(t, "run", "hostname", "sd-e2e-pwned"), "")
	if now, _ := os.Hostname(); now != host {
		t.Errorf("host name changed from %q to %q", host, now)
	}
}

// Every mount is nosuid; everything but the sandbox's /dev is nodev; every
// mount of the host's tree is read-only.
func TestMountFlags(t *testing.T) {
	h := need(t)
	r := h.sd(t, "run", "cat", "/proc/self/mountinfo")
	if !wantCode(t, r, 0) {
		return
	}
	ms := readMountinfo([]byte(r.stdout))
	if len(ms) == 0 || ms[0].point != "/" {
		t.Fatalf("want / as the first mount inside, got:\n%s", r.stdout)
	}
	for _, m := range ms {
		o := "," + m.opts + ","
		if !strings.Contains(o, ",nosuid,") {
			t.Errorf("mount without nosuid: %s", m.line)
		}
		isDev := m.point == "/dev" || strings.HasPrefix(m.point, "/dev/") && m.point != "/dev/shm"
		if !isDev && !strings.Contains(o, ",nodev,") {
			t.Errorf("mount without nodev: %s", m.line)
		}
		private := isDev || m.point == "/tmp" || m.point == "/dev/shm" || m.point == "/proc" ||
			strings.HasPrefix(m.point, "/proc/")
		if !private && !strings.Contains(o, ",ro,") {
			t.Errorf("host mount not read-only inside: %s", m.line)
		}
	}
}

func TestNetwork(t *testing.T) {
	h := need(t)
	r := h.sd(t, "run", "cat", "/proc/net/dev")
	if wantCode(t, r, 0) {
		if got := ifaces(r.stdout); strings.Join(got, " ") != "lo" {
			t.Errorf("default network: want only lo, got %v", got)
		}
	}
	r = h.sd(t, "run", "cat", "/sys/class/net/lo/flags")
	if wantCode(t, r, 0) {
		if f, err := strconv.ParseUint(strings.TrimPrefix(r.out(), "0x"), 16, 32); err != nil || f&1 == 0 {
			t.Errorf("loopback is not up inside (flags %q)", r.out())
		}
	}
	host, _ := os.ReadFile("/proc/net/dev")
	r = h.sd(t, "--net", "run", "cat", "/proc/net/dev")
	if wantCode(t, r, 0) {
		if got, want := ifaces(r.stdout), ifaces(string(host)); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("--net: want the host's interfaces %v, got %v", want, got)
		}
	}
}

func ifaces(procNetDev string) []string {
	var out []string
	for _, l := range strings.Split(procNetDev, "\n") {
		if name, _, ok := strings.Cut(l, ":"); ok && !strings.Contains(name, "|") {
			out = append(out, strings.TrimSpace(name))
		}
	}
	sort.Strings(out)
	return out
}

func TestNested(t *testing.T) {
	h := need(t)
	want := fmt.Sprintf("%d %d 1", h.user.uid, h.user.gid)
	show := []string{"sh", "-c", `echo $(id -u) $(id -g) $$`}
	wantOut(t, h.sd(t, "run", h.bin, "run", "true"), "")
	wantOut(t, h.sd(t, append([]string{"run", h.bin, "run"}, show...)...), want)
	wantOut(t, h.sd(t, append([]string{"run", h.bin, "run", h.bin, "run"}, show...)...), want)
	wantCode(t, h.sd(t, "run", h.bin, "run", "sh", "-c", "exit 9"), 9)
	// The inner instance is as read-only as the outer one.
	wantFail(t, h.sd(t, "run", h.bin, "run", "sh", "-c", "echo x > "+h.home+"/nested"), "Read-only file system")
	mustNotExist(t, filepath.Join(h.home, "nested"))
}

func TestRootfs(t *testing.T) {
	h := need(t)
	root := h.busyboxRoot(t)
	wantOut(t, h.sd(t, "--rootfs", root, "run", "/bin/busybox", "sh", "-c", "echo $$ $(/bin/busybox id -u)"),
		fmt.Sprintf("1 %d", h.user.uid))
	wantOut(t, h.sd(t, "-r", root, "run", "/bin/sh", "-c", "echo ok"), "ok")
	// The rootfs is the root: the host's /usr is not there.
	wantOut(t, h.sd(t, "-r", root, "run", "/bin/busybox", "sh", "-c", "test ! -e /usr/bin && echo own"), "own")
	wantFail(t, h.sd(t, "-r", root, "run", "/bin/busybox", "touch", "/etc/x"), "Read-only file system")
	mustNotExist(t, filepath.Join(root, "etc/x"))
}

func TestBuild(t *testing.T) {
	h := need(t)
	root := h.busyboxRoot(t)
	locked := mkdir(t, filepath.Join(root, "rootowned"), 0o755, nil)
	wantCode(t, h.sd(t, "-r", root, "build", "/bin/busybox", "sh", "-c", "echo built > /etc/made && mkdir /newdir"), 0)
	if b, _ := os.ReadFile(filepath.Join(root, "etc/made")); string(b) != "built\n" {
		t.Errorf("build did not write into the caller's rootfs: etc/made = %q", b)
	}
	if fi, err := os.Stat(filepath.Join(root, "newdir")); err != nil || fileUID(fi) != h.user.uid {
		t.Errorf("build: /newdir not made by the caller: %v", err)
	}
	before := snapshot(t, locked)
	wantFail(t, h.sd(t, "-r", root, "build", "/bin/busybox", "sh", "-c", "echo x > /rootowned/f"), "")
	sameSnapshot(t, locked, before, snapshot(t, locked))
	// The default root: writable where sdtest may write, nowhere else.
	d := h.dir(t, &h.user, 0o755)
	wantCode(t, h.sd(t, "build", "sh", "-c", "echo b > "+d+"/b"), 0)
	if b, _ := os.ReadFile(filepath.Join(d, "b")); string(b) != "b\n" {
		t.Errorf("build did not write into a caller-owned directory: %q", b)
	}
	name := uniq("sd-e2e-")
	for _, p := range []string{"/etc/" + name, "/usr/" + name, "/" + name, h.fix + "/" + name} {
		wantFail(t, h.sd(t, "build", "sh", "-c", "echo x > "+p), "")
		mustNotExist(t, p)
	}
}

func fileUID(fi os.FileInfo) int {
	return int(fi.Sys().(*syscall.Stat_t).Uid)
}
