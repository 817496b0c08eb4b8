package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadOnlyRoot(t *testing.T) {
	h := need(t)
	d := h.dir(t, &h.user, 0o755)
	f := writeFile(t, filepath.Join(d, "existing"), "data\n", 0o644, &h.user)
	top := "/" + uniq("sd-e2e-")
	before := snapshot(t, d)
	for _, sh := range []string{
		"echo x > " + top,
		"mkdir " + top,
		"echo x > " + d + "/new",
		"echo x >> " + f,
		"mkdir " + d + "/newdir",
		"rm " + f,
		"chmod 0777 " + f,
		"ln -s x " + d + "/link",
		"touch " + f,
	} {
		for _, sub := range []string{"run", "--net run"} {
			args := append(strings.Fields(sub), "sh", "-c", sh)
			wantFail(t, h.sd(t, args...), "Read-only file system")
		}
	}
	sameSnapshot(t, d, before, snapshot(t, d))
	mustNotExist(t, top)
}

func TestPrivateTmp(t *testing.T) {
	h := need(t)
	hostFile := writeFile(t, "/tmp/"+uniq("sd-e2e-host-"), "host\n", 0o644, nil)
	defer os.Remove(hostFile)
	name := uniq("sd-e2e-inside-")
	wantOut(t, h.sd(t, "run", "sh", "-c", "test ! -e "+hostFile+" && echo ok > /tmp/"+name+" && cat /tmp/"+name), "ok")
	mustNotExist(t, "/tmp/"+name)
	// A second run does not see the first's /tmp.
	wantOut(t, h.sd(t, "run", "sh", "-c", "test ! -e /tmp/"+name+" && echo fresh"), "fresh")
	wantOut(t, h.sd(t, "run", "stat", "-f", "-c", "%T", "/tmp"), "tmpfs")
	// A --map onto /tmp replaces the tmpfs, read-only.
	src := h.dir(t, &h.user, 0o755)
	writeFile(t, filepath.Join(src, "mapped"), "m\n", 0o644, &h.user)
	wantOut(t, h.sd(t, "--map", src, "/tmp", "run", "cat", "/tmp/mapped"), "m")
	wantFail(t, h.sd(t, "--map", src, "/tmp", "run", "sh", "-c", "echo x > /tmp/new"), "Read-only file system")
	mustNotExist(t, filepath.Join(src, "new"))
	// Likewise the sandbox's /dev/shm is its own.
	shm := writeFile(t, "/dev/shm/"+uniq("sd-e2e-"), "host\n", 0o644, nil)
	defer os.Remove(shm)
	wantOut(t, h.sd(t, "run", "sh", "-c", "test ! -e "+shm+" && echo private"), "private")
}

func TestDev(t *testing.T) {
	h := need(t)
	r := h.sd(t, "run", "ls", "-A", "/dev")
	if wantCode(t, r, 0) {
		have := map[string]bool{}
		for _, f := range strings.Fields(r.stdout) {
			have[f] = true
		}
		for _, n := range strings.Fields("null zero full random urandom tty pts ptmx shm fd stdin stdout stderr") {
			if !have[n] {
				t.Errorf("/dev/%s missing inside; /dev has %q", n, r.out())
			}
		}
		for _, n := range strings.Fields("vda sda loop0 loop-control kmsg mem port tty0 fuse kvm hwrng cpu_dma_latency") {
			if have[n] {
				t.Errorf("host device /dev/%s visible inside", n)
			}
		}
	}
	for _, tc := range []struct{ sh, want string }{
		{"head -c 4 /dev/zero | wc -c", "4"},
		{"head -c 16 /dev/urandom | wc -c", "16"},
		{"head -c 16 /dev/random | wc -c", "16"},
		{"head -c 3 /dev/full | wc -c", "3"},
		{"echo x > /dev/null && wc -c < /dev/null", "0"},
		{"stat -L -c '%F %t:%T' /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty | tr '\\n' ' '",
			"character special file 1:3 character special file 1:5 character special file 1:7 " +
				"character special file 1:8 character special file 1:9 character special file 5:0"},
		{"readlink /dev/fd /dev/stdin /dev/stdout /dev/stderr | tr '\\n' ' '",
			"/proc/self/fd /proc/self/fd/0 /proc/self/fd/1 /proc/self/fd/2"},
		{"echo shm > /dev/shm/x && cat /dev/shm/x", "shm"},
		{"exec 3<>/dev/ptmx && test -d /dev/pts && echo pty", "pty"},
	} {
		wantOut(t, h.sd(t, "run", "sh", "-c", tc.sh), tc.want)
	}
	// (dash's builtin echo reports every write error as "I/O error")
	wantFail(t, h.sd(t, "run", "sh", "-c", "/bin/echo x > /dev/full"), "No space left on device")
}

func TestWorkdir(t *testing.T) {
	h := need(t)
	wantOut(t, h.sd(t, "-C", "/usr", "run", "pwd"), "/usr")
	wantOut(t, h.sd(t, "run", "-C", "/etc", "pwd"), "/etc")
	wantOut(t, h.sd(t, "run", "pwd"), h.home)
	sub := mkdir(t, filepath.Join(h.dir(t, &h.user, 0o755), "sub"), 0o755, &h.user)
	wantOut(t, h.sdo(t, opts{dir: sub}, "run", "pwd"), sub)
	// The caller's cwd does not exist in this root: fall back to /.
	root := h.busyboxRoot(t)
	wantOut(t, h.sd(t, "--rootfs", root, "run", "/bin/busybox", "pwd"), "/")
}

func TestEnv(t *testing.T) {
	h := need(t)
	o := opts{env: []string{
		"SD_KEEP=kept", "LD_PRELOAD=/nonexistent/sd-e2e.so", "LD_LIBRARY_PATH=/nonexistent",
		"LD_AUDIT=/nonexistent/a.so", "GODEBUG=x=1", "GOTRACEBACK=crash",
	}}
	show := `for v in SD_KEEP SD_NEW HOME LD_PRELOAD LD_LIBRARY_PATH LD_AUDIT GODEBUG GOTRACEBACK; do eval "echo $v=\${$v-unset}"; done`
	r := h.sdo(t, o, "-e", "SD_NEW", "a b", "-E", "HOME", "run", "sh", "-c", show)
	want := "SD_KEEP=kept\nSD_NEW=a b\nHOME=unset\nLD_PRELOAD=unset\nLD_LIBRARY_PATH=unset\n" +
		"LD_AUDIT=unset\nGODEBUG=unset\nGOTRACEBACK=unset"
	wantOut(t, r, want)
	if strings.Contains(r.stderr, "sd-e2e.so") {
		t.Errorf("the dynamic loader saw the caller's LD_PRELOAD:\n%v", r)
	}
	wantOut(t, h.sd(t, "--env", "SD_X", "1", "run", "--env", "SD_Y", "2", "sh", "-c", "echo $SD_X$SD_Y"), "12")
	wantOut(t, h.sdo(t, opts{env: []string{"SD_Z=1"}}, "run", "-E", "SD_Z", "sh", "-c", "echo ${SD_Z-unset}"), "unset")
}

func TestArgumentOrder(t *testing.T) {
	h := need(t)
	// Options after run, --, and CMD's own arguments that look like options.
	wantOut(t, h.sd(t, "run", "-e", "A", "b", "sh", "-c", "echo $A"), "b")
	wantOut(t, h.sd(t, "-e", "A", "1", "run", "-e", "B", "2", "--", "sh", "-c", "echo $A$B"), "12")
	wantOut(t, h.sd(t, "run", "--", "printf", `%s\n`, "-e", "x"), "-e\nx")
	wantOut(t, h.sd(t, "run", "printf", `%s\n`, "--map", "a", "--", "run"), "--map\na\n--\nrun")
	wantOut(t, h.sd(t, "-r", "/", "run", "true", "--net"), "")
}

func TestStdio(t *testing.T) {
	h := need(t)
	wantOut(t, h.sdo(t, opts{stdin: "hello through the sandbox\n"}, "run", "cat"), "hello through the sandbox")
	r := h.sd(t, "run", "sh", "-c", "echo out; echo err >&2")
	if wantCode(t, r, 0) && (r.stdout != "out\n" || r.stderr != "err\n") {
		t.Errorf("want stdout %q stderr %q, got:\n%v", "out\n", "err\n", r)
	}
	big := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB
	r = h.sdo(t, opts{stdin: big}, "run", "sh", "-c", "cat; cat /dev/null")
	if wantCode(t, r, 0) && r.stdout != big {
		t.Errorf("1 MiB through cat came out as %d bytes", len(r.stdout))
	}
}

func TestMap(t *testing.T) {
	h := need(t)
	src := h.dir(t, &h.user, 0o755)
	writeFile(t, filepath.Join(src, "f"), "mapped\n", 0o644, &h.user)
	before := snapshot(t, src)
	wantOut(t, h.sd(t, "--map", src, "/srv", "run", "cat", "/srv/f"), "mapped")
	wantOut(t, h.sd(t, "run", "-m", src+"/f", "/tmp/file", "cat", "/tmp/file"), "mapped")
	for _, sh := range []string{"echo x > /srv/new", "echo x >> /srv/f", "rm /srv/f", "mkdir /srv/d", "chmod 0 /srv/f"} {
		wantFail(t, h.sd(t, "--map", src, "/srv", "run", "sh", "-c", sh), "Read-only file system")
		wantFail(t, h.sd(t, "--map", src, "/srv", "build", "sh", "-c", sh), "Read-only file system")
	}
	sameSnapshot(t, src, before, snapshot(t, src))
}

// A submount under a --map source is visible and read-only too.
func TestMapRecursive(t *testing.T) {
	h := need(t)
	src := h.dir(t, &h.user, 0o755)
	sub := mkdir(t, filepath.Join(src, "sub"), 0o755, &h.user)
	if err := runRoot("mount", "-t", "tmpfs", "-o", "mode=0777,size=1m", "sd-e2e", sub); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = runRoot("umount", sub) })
	writeFile(t, filepath.Join(sub, "inner"), "submount\n", 0o666, &h.user)
	before := snapshot(t, sub)
	wantOut(t, h.sd(t, "--map", src, "/srv", "run", "cat", "/srv/sub/inner"), "submount")
	wantFail(t, h.sd(t, "--map", src, "/srv", "run", "sh", "-c", "echo x > /srv/sub/new"), "Read-only file system")
	wantFail(t, h.sd(t, "--map", src, "/srv", "run", "sh", "-c", "echo x >> /srv/sub/inner"), "Read-only file system")
	// And a submount of the root itself (the same tmpfs, seen at its host
	// path). (Under build it is writable: sdtest may write the 0777 tmpfs.)
	wantFail(t, h.sd(t, "run", "sh", "-c", "echo x > "+sub+"/new"), "Read-only file system")
	sameSnapshot(t, sub, before, snapshot(t, sub))
}

func TestVol(t *testing.T) {
	h := need(t)
	src := h.dir(t, &h.user, 0o755)
	wantOut(t, h.sd(t, "--vol", src, "/srv", "run", "sh", "-c", "echo written > /srv/out && cat /srv/out"), "written")
	b, err := os.ReadFile(filepath.Join(src, "out"))
	if err != nil || string(b) != "written\n" {
		t.Errorf("write through --vol not on the host: %q, %v", b, err)
	}
	if fi, err := os.Stat(filepath.Join(src, "out")); err == nil && fileUID(fi) != h.user.uid {
		t.Errorf("file written through --vol owned by uid %d, want %d", fileUID(fi), h.user.uid)
	}
	f := writeFile(t, filepath.Join(src, "file"), "old\n", 0o644, &h.user)
	wantCode(t, h.sd(t, "run", "-v", f, "/tmp/f", "sh", "-c", "echo new > /tmp/f"), 0)
	if b, _ := os.ReadFile(f); string(b) != "new\n" {
		t.Errorf("file --vol: host file has %q, want %q", b, "new\n")
	}
	// A --vol is not mounted on the host.
	if m := mountsUnder(src); len(m) > 0 {
		t.Errorf("mounts left on the host: %v", m)
	}
}

func TestTmpfs(t *testing.T) {
	h := need(t)
	before := snapshot(t, "/srv")
	wantOut(t, h.sd(t, "--tmpfs", "size=1m", "/srv", "run", "sh", "-c", "echo a > /srv/a && cat /srv/a"), "a")
	wantOut(t, h.sd(t, "run", "-t", "size=1m", "/srv", "stat", "-f", "-c", "%T", "/srv"), "tmpfs")
	r := h.sd(t, "-t", "size=1m", "/srv", "run", "sh", "-c",
		"dd if=/dev/zero of=/srv/big bs=64k count=32 2>&1; echo status=$?")
	if wantCode(t, r, 0) && (!strings.Contains(r.stdout, "No space left on device") || strings.Contains(r.stdout, "status=0")) {
		t.Errorf("2 MiB fitted in a 1 MiB --tmpfs:\n%v", r)
	}
	wantOut(t, h.sd(t, "-t", "mode=0700,size=1m", "/srv", "run", "stat", "-c", "%a", "/srv"), "700")
	wantOut(t, h.sd(t, "-t", "size=1m", "/srv", "run", "sh", "-c", "test ! -e /srv/a && echo gone"), "gone")
	sameSnapshot(t, "/srv", before, snapshot(t, "/srv"))
}
