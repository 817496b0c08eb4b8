package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// bundle writes an OCI bundle owned by sdtest around a busybox root: the
// config's process runs script, bound read-only at /tmp/slurm/startup (as
// Slurm's sbatch does), and out is bound read-write at /out.
func (h *harness) bundle(t *testing.T, uid int, extraMount string) (dir, out string) {
	t.Helper()
	dir = h.dir(t, &h.user, 0o755)
	root := h.busyboxRoot(t)
	if err := os.Rename(root, dir+"/rootfs"); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir+"/rootfs/marker", "bundle-marker", 0o644, &h.user)
	mkdir(t, dir+"/rootfs/out", 0o755, &h.user)
	out = mkdir(t, dir+"/out", 0o755, &h.user)
	writeFile(t, dir+"/script", "echo task $TASK; /bin/busybox cat /marker; echo; echo $$; echo done > /out/f\n", 0o644, &h.user)
	cfg := fmt.Sprintf(`{"ociVersion":"1.0.0","process":{"user":{"uid":%d,"gid":%d},
"args":["/bin/sh","/tmp/slurm/startup"],"env":["PATH=/bin","TASK=7"],"cwd":"/"},
"root":{"path":"rootfs","readonly":true},
"mounts":[{"destination":"/proc","type":"proc","source":"proc"},
{"destination":"/tmp/slurm/startup","type":"none","source":"%s/script","options":["bind","ro"]},
{"destination":"/out","type":"bind","source":"%s","options":["rbind","rw"]}%s]}`, uid, h.user.gid, dir, out, extraMount)
	writeFile(t, dir+"/config.json", cfg, 0o644, &h.user)
	return dir, out
}

func TestBundle(t *testing.T) {
	h := need(t)
	dir, out := h.bundle(t, h.user.uid, "")
	wantOut(t, h.sd(t, "--bundle", dir, "run"), "task 7\nbundle-marker\n1")
	if b, _ := os.ReadFile(filepath.Join(out, "f")); string(b) != "done\n" {
		t.Errorf("the rw bind: %q", b)
	}
	if r := h.sd(t, "--bundle", dir, "run", "/bin/busybox", "touch", "/x"); !strings.Contains(r.stderr, "Read-only") {
		t.Errorf("root.readonly true, but:\n%v", r)
	}
	// Privilege asked in the config: refused, naming the field.
	bad, _ := h.bundle(t, 0, "")
	r := h.sd(t, "--bundle", bad, "run")
	wantRefused(t, r, 124)
	if !strings.Contains(r.stderr, "process.user.uid") {
		t.Errorf("uid 0:\n%v", r)
	}
	// A bind of a file the caller cannot read.
	secret := writeFile(t, h.dir(t, &h.other, 0o700)+"/secret", "s", 0o600, &h.other)
	bad, _ = h.bundle(t, h.user.uid, fmt.Sprintf(`,{"destination":"/tmp/s","type":"bind","source":"%s","options":["bind","ro"]}`, secret))
	wantRefused(t, h.sd(t, "--bundle", bad, "run"), 124)
}

// ociState is what `selfdock state NAME` prints.
type ociState struct {
	OCIVersion, ID, Status, Bundle string
	Pid                            int
}

// waitRunning waits until bin's `state NAME` says the instance runs.
func (h *harness) waitRunning(t *testing.T, bin, name string) ociState {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var st ociState
		r := h.exec(t, opts{}, bin, "state", name)
		if json.Unmarshal([]byte(r.stdout), &st) == nil && st.Status == "running" && st.Pid > 0 {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("state never said running:\n%v", r)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestNamedInstances(t *testing.T) {
	h := need(t)
	marker := sleepArg(30)
	s := h.start(t, opts{}, h.bin, "--name", "job-1", "run", "sleep", marker)
	st := h.waitRunning(t, h.bin, "job-1")
	if st.ID != "job-1" || st.OCIVersion == "" {
		t.Errorf("state: %+v", st)
	}
	if r := h.sd(t, "ps"); !strings.Contains(r.stdout, "job-1") {
		t.Errorf("ps lacks the name:\n%v", r)
	}
	wantRefused(t, h.sd(t, "--name", "job-1", "run", "true"), 124)
	// Another user sees nothing and kills nothing of it.
	other := opts{as: &h.other, dir: "/"}
	wantCode(t, h.sdo(t, other, "state", "job-1"), 1)
	wantCode(t, h.sdo(t, other, "kill", "job-1"), 1)
	wantCode(t, h.sd(t, "kill", "job-1", "KILL"), 0)
	r := s.wait(t)
	if r.code != 137 && r.sig != syscall.SIGKILL {
		t.Errorf("killed instance: %v", r)
	}
	wantNoProcs(t, "sleep", marker)
	wantCode(t, h.sd(t, "state", "job-1"), 1)
	wantRefused(t, h.sd(t, "--name", "no/slash", "run", "true"), 124)
}
