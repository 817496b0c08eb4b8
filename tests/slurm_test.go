package tests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// slurmBundle writes an OCI bundle owned by sdtest, as a user would for
// `srun --container`: a read-only busybox root with /marker holding marker
// and the applets the jobs call. process holds the config's process members
// besides args and cwd (default: PATH=/bin as the environment); mounts the
// members of its mounts list.
func (h *harness) slurmBundle(t *testing.T, marker, process, mounts string) string {
	t.Helper()
	dir := h.dir(t, &h.user, 0o755)
	root := filepath.Join(dir, "rootfs")
	if err := os.Rename(h.busyboxRoot(t), root); err != nil {
		t.Fatal(err)
	}
	for _, applet := range []string{"cat", "echo", "env", "hostname", "id", "ls", "sleep", "touch", "true"} {
		p := filepath.Join(root, "bin", applet)
		if err := os.Symlink("busybox", p); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(p, h.user.uid, h.user.gid); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(root, "marker"), marker+"\n", 0o644, &h.user)
	mkdir(t, filepath.Join(root, "out"), 0o755, &h.user)
	if process == "" {
		process = `"env":["PATH=/bin"]`
	}
	cfg := fmt.Sprintf(`{"ociVersion":"1.0.0",
"process":{"args":["sh"],"cwd":"/",%s},
"root":{"path":"rootfs","readonly":true},
"mounts":[%s]}
`, process, mounts)
	writeFile(t, filepath.Join(dir, "config.json"), cfg, 0o644, &h.user)
	return dir
}

// slurmBind is a mounts entry as runc users write it: type none, bind option.
func slurmBind(src, dst string, opt ...string) string {
	o, _ := json.Marshal(append([]string{"bind"}, opt...))
	return fmt.Sprintf(`{"destination":%q,"type":"none","source":%q,"options":%s}`, dst, src, o)
}

// jobs reports each job (or array task) of id as "STATE EXIT", from
// scontrol, keyed by the array task id ("" for a plain job).
func (c *slurmCluster) jobs(t *testing.T, id string) map[string]string {
	t.Helper()
	out, err := c.asRoot(10*time.Second, "scontrol", "-o", "show", "job", id)
	if err != nil {
		t.Fatalf("scontrol show job %s: %v: %s", id, err, out)
	}
	m := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := map[string]string{}
		for _, w := range strings.Fields(line) {
			if k, v, ok := strings.Cut(w, "="); ok {
				f[k] = v
			}
		}
		task := f["ArrayTaskId"]
		if task == "" && f["ArrayJobId"] != "" && f["JobId"] == id {
			task = "?" // the array's pending remainder (shown while tasks wait)
		}
		m[task] = f["JobState"] + " " + f["ExitCode"]
	}
	return m
}

// waitJobs polls squeue until job id (every task of an array) has left
// the queue.
func (c *slurmCluster) waitJobs(t *testing.T, id string, timeout time.Duration) {
	t.Helper()
	c.waitFor(t, timeout, "job "+id+" to finish", func() bool {
		out, err := c.asRoot(10*time.Second, "squeue", "-h", "-j", id, "-o", "%i %T")
		return err == nil && strings.TrimSpace(out) == ""
	})
}

// slurmProcsMatching lists the host processes whose command line contains s.
func slurmProcsMatching(s string) []string {
	var found []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || !bytes.Contains(b, []byte(s)) {
			continue
		}
		if st, _ := os.ReadFile("/proc/" + e.Name() + "/stat"); isZombie(st) {
			continue
		}
		found = append(found, e.Name()+": "+string(bytes.ReplaceAll(bytes.TrimRight(b, "\x00"), []byte{0}, []byte{' '})))
	}
	return found
}

// TestSlurm runs selfdock as the OCI runtime of a one-node Slurm cluster
// (Debian's Slurm 22.05) that the test starts for itself: srun --container,
// a batch array, scancel, and the refusals, all as the unprivileged sdtest.
func TestSlurm(t *testing.T) {
	h := need(t)
	c := startSlurm(t, h)
	work := h.dir(t, &h.user, 0o755) // the submit directory
	if !t.Run("cluster", func(t *testing.T) { testSlurmCluster(t, c, work) }) {
		t.Fatal("the cluster does not run plain jobs: nothing to test selfdock with")
	}
	t.Run("srun", func(t *testing.T) { testSlurmSrun(t, c, work) })
	t.Run("array", func(t *testing.T) { testSlurmArray(t, c, work) })
	t.Run("scancel", func(t *testing.T) { testSlurmScancel(t, c, work) })
	t.Run("refused", func(t *testing.T) { testSlurmRefused(t, c, work) })
}

// The cluster itself: a plain step as sdtest, without a container.
func testSlurmCluster(t *testing.T, c *slurmCluster, work string) {
	r := c.user(t, work, 30*time.Second, "srun", "id", "-u")
	wantOut(t, r, strconv.Itoa(c.h.user.uid))
	t.Logf("srun id -u (no container): %v", r.dur.Round(time.Millisecond))
}

// srun --container: the step runs as the user, in the bundle's read-only
// root, as PID 1 of its namespace.
func testSlurmSrun(t *testing.T, c *slurmCluster, work string) {
	h := c.h
	marker := uniq("marker-")
	b := h.slurmBundle(t, marker, "", "")
	r := c.user(t, work, 30*time.Second, "srun", "--container="+b, "sh", "-c", "id -u; cat /marker; echo $$; touch /x")
	want := fmt.Sprintf("%d\n%s\n1", h.user.uid, marker)
	if r.out() != want {
		t.Errorf("want stdout %q, got:\n%v", want, r)
	}
	if !strings.Contains(r.stderr, "Read-only file system") {
		t.Errorf("touch /x in a read-only root: want %q on stderr, got:\n%v", "Read-only file system", r)
	}
	wantCode(t, r, 1) // touch's status, passed through by selfdock and srun
	noCrash(t, r)
	mustNotExist(t, filepath.Join(b, "rootfs", "x"))

	// The job's environment reaches the command through config.json, after
	// the bundle's own (Slurm 22.05 appends it, duplicates included): the
	// job's value wins, once.
	o := c.opts(work, 30*time.Second)
	o.env = append(o.env, "SDVAR=job")
	b2 := h.slurmBundle(t, marker, `"env":["PATH=/bin","SDVAR=bundle"]`, "")
	r = h.exec(t, o, c.prog["srun"], "--container="+b2, "env")
	var sdvar []string
	for _, l := range strings.Split(r.stdout, "\n") {
		if strings.HasPrefix(l, "SDVAR=") {
			sdvar = append(sdvar, l)
		}
	}
	if wantCode(t, r, 0) && (strings.Join(sdvar, " ") != "SDVAR=job" || !strings.Contains("\n"+r.stdout, "\nSLURM_JOB_ID=")) {
		t.Errorf("want SDVAR=job once and SLURM_JOB_ID in the environment, got %q:\n%v", sdvar, r)
	}

	plain := c.user(t, work, 30*time.Second, "srun", "true")
	boxed := c.user(t, work, 30*time.Second, "srun", "--container="+b, "true")
	wantCode(t, plain, 0)
	wantCode(t, boxed, 0)
	t.Logf("srun true: %v; srun --container true: %v", plain.dur.Round(time.Millisecond), boxed.dur.Round(time.Millisecond))
}

// sbatch --array=1-8 --container: every task runs its batch script (Slurm
// binds it at /tmp/slurm/startup inside) and writes its file through the
// bundle's read-write bind; nothing else changes on the host.
func testSlurmArray(t *testing.T, c *slurmCluster, work string) {
	h := c.h
	out := h.dir(t, &h.user, 0o755)
	logs := h.dir(t, &h.user, 0o755)
	marker := uniq("marker-")
	b := h.slurmBundle(t, marker, "", slurmBind(out, "/out", "rw"))
	_, tmpSlurmBefore := os.Lstat("/tmp/slurm")
	bundleBefore, workBefore := snapshot(t, b), snapshot(t, work)

	script := `echo "task $SLURM_ARRAY_TASK_ID uid $(id -u) pid $$" > /out/$SLURM_ARRAY_TASK_ID; cat /marker`
	begin := time.Now()
	r := c.user(t, work, 30*time.Second, "sbatch", "--parsable", "--array=1-8", "--container="+b,
		"-o", logs+"/%a.out", "--wrap", script)
	if !wantCode(t, r, 0) {
		return
	}
	id, _, _ := strings.Cut(r.out(), ";")
	c.waitJobs(t, id, 90*time.Second)
	t.Logf("8 array tasks with --container: %v", time.Since(begin).Round(time.Millisecond))

	jobs := c.jobs(t, id)
	var tasks []string
	for i := 1; i <= 8; i++ {
		n := strconv.Itoa(i)
		tasks = append(tasks, n)
		log, _ := os.ReadFile(filepath.Join(logs, n+".out"))
		if jobs[n] != "COMPLETED 0:0" {
			t.Errorf("task %s: %q, want %q; its output:\n%s", n, jobs[n], "COMPLETED 0:0", log)
		}
		if strings.TrimSpace(string(log)) != marker {
			t.Errorf("task %s: output %q, want the marker %q", n, log, marker)
		}
		want := fmt.Sprintf("task %d uid %d pid 1\n", i, h.user.uid)
		if got, err := os.ReadFile(filepath.Join(out, n)); err != nil || string(got) != want {
			t.Errorf("task %s: %s: %q (%v), want %q", n, filepath.Join(out, n), got, err, want)
		}
	}
	ents, _ := os.ReadDir(out)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(tasks)
	if strings.Join(names, " ") != strings.Join(tasks, " ") {
		t.Errorf("the output directory holds %v, want %v", names, tasks)
	}
	sameSnapshot(t, "the bundle", bundleBefore, snapshot(t, b))
	sameSnapshot(t, "the submit directory", workBefore, snapshot(t, work))
	if tmpSlurmBefore != nil {
		mustNotExist(t, "/tmp/slurm")
	}
}

// scancel of a running step ends it within seconds (Slurm signals the
// step's processes, selfdock among them; it never calls RunTimeKill), and
// nothing of the instance is left.
func testSlurmScancel(t *testing.T, c *slurmCluster, work string) {
	h := c.h
	b := h.slurmBundle(t, uniq("marker-"), "", "")
	arg := sleepArg(1000)
	job := uniq("sdsleep")
	s := h.start(t, c.opts(work, 60*time.Second), c.prog["srun"], "--container="+b, "-J", job, "sleep", arg)
	if len(waitProcs(30*time.Second, "sleep", arg)) == 0 {
		t.Fatalf("sleep %s never started:\n%v", arg, s.wait(t))
	}
	out, err := c.asRoot(10*time.Second, "squeue", "-h", "-n", job, "-o", "%i")
	id := strings.TrimSpace(out)
	if err != nil || id == "" {
		t.Fatalf("squeue -n %s: %v: %q", job, err, out)
	}
	inst := c.instance(id, "0", "0")

	// The instance as oci.conf names it, seen by its owner.
	var st struct {
		OCIVersion, ID, Status, Bundle string
		Pid                            int
	}
	r := h.sd(t, "state", inst)
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || st.ID != inst || st.Status != "running" ||
		st.Pid <= 0 || st.OCIVersion == "" || st.Bundle == "" {
		t.Errorf("selfdock state %s: want running with pid and bundle, got %+v:\n%v", inst, st, r)
	}
	if r := h.sd(t, "ps"); !strings.Contains(r.stdout, inst) {
		t.Errorf("selfdock ps does not list %s:\n%v", inst, r)
	}

	sent := time.Now()
	wantCode(t, c.user(t, work, 30*time.Second, "scancel", id), 0)
	deadline := sent.Add(20 * time.Second)
	for (len(procsWithArgv("sleep", arg)) > 0 || len(slurmProcsMatching(inst)) > 0) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	gone := time.Since(sent)
	t.Logf("scancel: the instance was gone after %v", gone.Round(time.Millisecond))
	if gone > 5*time.Second {
		t.Errorf("scancel: the instance took %v to end", gone)
	}
	if left := slurmProcsMatching(inst); len(left) > 0 {
		t.Errorf("processes of %s left after scancel: %q", inst, left)
	}
	wantNoProcs(t, "sleep", arg)
	sr := s.wait(t)
	if sr.code == 0 {
		t.Errorf("srun of a cancelled step exited 0:\n%v", sr)
	}
	if r := h.sd(t, "ps"); strings.Contains(r.stdout, inst) {
		t.Errorf("selfdock ps still lists %s after scancel:\n%v", inst, r)
	}
	if r := h.sd(t, "state", inst); r.code != 1 {
		t.Errorf("selfdock state of a cancelled instance: want exit 1, got:\n%v", r)
	}
}

// A bundle that asks for what the user does not have: a bind of a file the
// user cannot read, another uid. The step fails with status 124 and
// selfdock's one-line error, in srun's stderr and in a batch job's output.
func testSlurmRefused(t *testing.T, c *slurmCluster, work string) {
	h := c.h
	secret := writeFile(t, filepath.Join(h.dir(t, &h.other, 0o700), "secret"), "secret\n", 0o600, &h.other)
	for _, tc := range []struct {
		name, process, mounts, says string
	}{
		{"unreadable bind", "", slurmBind(secret, "/tmp/secret", "ro"), secret},
		{"uid 0", `"env":["PATH=/bin"],"user":{"uid":0,"gid":0}`, "", "process.user.uid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := h.slurmBundle(t, uniq("marker-"), tc.process, tc.mounts)
			r := c.user(t, work, 30*time.Second, "srun", "--container="+b, "cat", "/marker")
			wantCode(t, r, 124)
			wantSelfdockLine(t, "srun's stderr", r.stderr, tc.says)
			if strings.Contains(r.stdout, "marker-") {
				t.Errorf("the command ran:\n%v", r)
			}
			noCrash(t, r)
		})
	}
	t.Run("sbatch uid 0", func(t *testing.T) {
		b := h.slurmBundle(t, uniq("marker-"), `"env":["PATH=/bin"],"user":{"uid":0,"gid":0}`, "")
		log := filepath.Join(h.dir(t, &h.user, 0o755), "job.out")
		r := c.user(t, work, 30*time.Second, "sbatch", "--parsable", "--container="+b, "-o", log, "--wrap", "cat /marker")
		if !wantCode(t, r, 0) {
			return
		}
		id, _, _ := strings.Cut(r.out(), ";")
		c.waitJobs(t, id, 60*time.Second)
		out, _ := os.ReadFile(log)
		if got := c.jobs(t, id)[""]; got != "FAILED 124:0" {
			t.Errorf("job %s: %q, want %q; its output:\n%s", id, got, "FAILED 124:0", out)
		}
		wantSelfdockLine(t, "the job's output", string(out), "process.user.uid")
	})
}

// wantSelfdockLine: text has exactly one line from selfdock, and it says says.
func wantSelfdockLine(t *testing.T, where, text, says string) {
	t.Helper()
	var lines []string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, "selfdock: ") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 || !strings.Contains(lines[0], says) {
		t.Errorf("%s: want one line starting %q and naming %q, got:\n%s", where, "selfdock: ", says, text)
	}
}
