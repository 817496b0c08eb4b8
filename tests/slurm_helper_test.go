package tests

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// slurmPackages are the Debian packages of a one-node cluster.
var slurmPackages = []string{"slurmctld", "slurmd", "slurm-client", "munge"}

// slurmPrograms must all be found once the packages are installed.
var slurmPrograms = []string{"munged", "slurmctld", "slurmd", "srun", "sbatch", "scancel", "sinfo", "squeue", "scontrol"}

// slurmOCIConf is the documented contrib/slurm/oci.conf, pointed at the
// harness's setuid binary: the test runs the file administrators copy.
func slurmOCIConf(t *testing.T, bin string) string {
	t.Helper()
	const installed = "/usr/local/bin/selfdock"
	b, err := os.ReadFile(filepath.Join("..", "contrib", "slurm", "oci.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(installed)) {
		t.Fatalf("contrib/slurm/oci.conf does not name %s", installed)
	}
	return strings.ReplaceAll(string(b), installed, bin)
}

// slurmCluster is a one-node Slurm cluster private to one test: its own
// munged, slurmctld and slurmd, children of the test, with every file under
// root.
type slurmCluster struct {
	h       *harness
	root    string // fresh, root-owned, 0755
	conf    string // root/etc/slurm.conf; oci.conf sits next to it
	socket  string // munged's socket
	node    string // this host's short name: the one node
	mark    string // NAME=VALUE in slurmd's environment, which the RunTime commands inherit
	name    string // the --name pattern of oci.conf's RunTimeRun
	daemons []*slurmDaemon
	release chan struct{} // closed after the daemons are gone
	prog    map[string]string
}

type slurmDaemon struct {
	name string
	cmd  *exec.Cmd
	log  string        // its stdout and stderr
	done chan struct{} // closed when it exited
	err  error         // what Wait returned
}

// ensureSlurm installs the Debian packages when a program is missing, and
// returns the programs' paths; it skips (or fails) when that cannot work.
func ensureSlurm(t *testing.T) map[string]string {
	t.Helper()
	find := func() (map[string]string, []string) {
		paths, missing := map[string]string{}, []string(nil)
		for _, p := range slurmPrograms {
			if path, err := exec.LookPath(p); err == nil {
				paths[p] = path
			} else if _, err := os.Stat("/usr/sbin/" + p); err == nil {
				paths[p] = "/usr/sbin/" + p
			} else {
				missing = append(missing, p)
			}
		}
		return paths, missing
	}
	paths, missing := find()
	if len(missing) == 0 {
		return paths
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		skipOrFail(t, fmt.Sprintf("no %v and no apt-get to install %v", missing, slurmPackages))
	}
	start := time.Now()
	install := append([]string{"install", "-y", "-qq", "--no-install-recommends"}, slurmPackages...)
	err := slurmAptGet(install...)
	if err != nil {
		_ = slurmAptGet("update", "-qq")
		err = slurmAptGet(install...)
	}
	paths, missing = find()
	if len(missing) > 0 {
		skipOrFail(t, fmt.Sprintf("cannot install %v (missing %v): %v", slurmPackages, missing, err))
	}
	t.Logf("installed %v in %v", slurmPackages, time.Since(start).Round(time.Millisecond))
	return paths
}

func slurmAptGet(args ...string) error {
	cmd := exec.Command("apt-get", args...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("apt-get %s: %v: %s", strings.Join(args, " "), err, slurmTail(string(out), 5))
	}
	return nil
}

// startSlurm starts the cluster and waits until its node is idle. The
// daemons are stopped by their PIDs when the test ends, whatever happened.
func startSlurm(t *testing.T, h *harness) *slurmCluster {
	t.Helper()
	c := &slurmCluster{h: h, prog: ensureSlurm(t), release: make(chan struct{})}
	munge, err := user.Lookup("munge")
	if err != nil {
		skipOrFail(t, "no user munge (package munge): "+err.Error())
	}
	mu, _ := strconv.Atoi(munge.Uid)
	mg, _ := strconv.Atoi(munge.Gid)
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	c.node, _, _ = strings.Cut(host, ".")
	c.root = h.dir(t, nil, 0o755)
	c.mark = "SELFDOCK_SLURM_TEST=" + c.root
	for _, d := range []string{"etc", "state", "spool", "log"} {
		mkdir(t, filepath.Join(c.root, d), 0o755, nil)
	}
	// munged insists on its own directories: owned by munge, not writable by
	// others; the socket's must let the test user reach the socket.
	mdir := filepath.Join(c.root, "munge")
	mkdir(t, mdir, 0o755, nil)
	if err := os.Chown(mdir, mu, mg); err != nil {
		t.Fatal(err)
	}
	c.socket = filepath.Join(mdir, "socket")
	key := make([]byte, 128)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(mdir, "key")
	if err := os.WriteFile(keyFile, key, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(keyFile, mu, mg); err != nil {
		t.Fatal(err)
	}
	c.conf = filepath.Join(c.root, "etc", "slurm.conf")
	writeFile(t, c.conf, c.slurmConf(t), 0o644, nil)
	ociConf := slurmOCIConf(t, h.bin)
	writeFile(t, filepath.Join(c.root, "etc", "oci.conf"), ociConf, 0o644, nil)
	m := regexp.MustCompile(`(?m)^RunTimeRun=.* --name (\S+) `).FindStringSubmatch(ociConf)
	if m == nil {
		t.Fatalf("no RunTimeRun with --name in oci.conf:\n%s", ociConf)
	}
	c.name = m[1]

	t.Cleanup(func() { c.stop(t) })
	begin := time.Now()
	c.spawn(t, "munged", &syscall.Credential{Uid: uint32(mu), Gid: uint32(mg), Groups: []uint32{}}, nil,
		c.prog["munged"], "-F", "--socket="+c.socket, "--key-file="+keyFile,
		"--pid-file="+filepath.Join(mdir, "pid"), "--seed-file="+filepath.Join(mdir, "seed"),
		"--log-file="+filepath.Join(mdir, "log"))
	c.waitFor(t, 10*time.Second, "munged's socket", func() bool {
		_, err := os.Stat(c.socket)
		return err == nil
	})
	c.spawn(t, "slurmctld", nil, nil, c.prog["slurmctld"], "-D", "-f", c.conf)
	c.spawn(t, "slurmd", nil, []string{c.mark}, c.prog["slurmd"], "-D", "-f", c.conf, "-N", c.node)
	c.waitFor(t, 60*time.Second, "sinfo to show the node idle", func() bool {
		out, _ := c.asRoot(10*time.Second, "sinfo", "-h", "-N", "-o", "%N %t")
		return strings.TrimSpace(out) == c.node+" idle"
	})
	t.Logf("cluster up in %v: node %q, %s", time.Since(begin).Round(time.Millisecond), c.node, c.root)
	return c
}

// slurmConf is the cluster's slurm.conf: no cgroups (proctrack/linuxproc,
// task/none), no accounting, daemons as root, addresses and ports of its own.
func (c *slurmCluster) slurmConf(t *testing.T) string {
	f := func(name string) string { return filepath.Join(c.root, name) }
	return fmt.Sprintf(`# written by tests/slurm_test.go
ClusterName=selfdock
SlurmctldHost=%[1]s(127.0.0.1)
SlurmctldPort=%[2]d
SlurmdPort=%[3]d
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=%[4]s
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SlurmctldPidFile=%[5]s
SlurmdPidFile=%[6]s
StateSaveLocation=%[7]s
SlurmdSpoolDir=%[8]s
SlurmctldLogFile=%[9]s
SlurmdLogFile=%[10]s
SlurmctldDebug=info
SlurmdDebug=debug
NodeName=%[1]s NodeAddr=127.0.0.1 CPUs=%[11]d State=UNKNOWN
PartitionName=selfdock Nodes=%[1]s Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:8
`, c.node, slurmFreePort(t), slurmFreePort(t), c.socket, f("state/slurmctld.pid"), f("state/slurmd.pid"), f("state"),
		f("spool"), f("log/slurmctld.log"), f("log/slurmd.log"), runtime.NumCPU())
}

// slurmFreePort is a TCP port nothing listens on right now.
func slurmFreePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// spawn starts a daemon in the foreground as a child of the test. It is
// started from a goroutine locked to its thread, which stays until the
// daemons are stopped: the parent-death signal (a test binary killed by
// -timeout takes its daemons with it) belongs to the thread that forked.
func (c *slurmCluster) spawn(t *testing.T, name string, cred *syscall.Credential, env []string, path string, args ...string) {
	t.Helper()
	d := &slurmDaemon{name: name, log: filepath.Join(c.root, "log", name+".out"), done: make(chan struct{})}
	out, err := os.OpenFile(d.log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	d.cmd = exec.Command(path, args...)
	d.cmd.Dir = c.root
	d.cmd.Env = append(os.Environ(), env...)
	d.cmd.Stdout, d.cmd.Stderr = out, out
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true, Pdeathsig: syscall.SIGTERM}
	started := make(chan error)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		err := d.cmd.Start()
		started <- err
		if err == nil {
			<-c.release
		}
	}()
	if err := <-started; err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	c.daemons = append(c.daemons, d)
	go func() {
		d.err = d.cmd.Wait()
		close(d.done)
	}()
}

// waitFor polls ok until it holds; it fails at the deadline or as soon as a
// daemon has exited, with the daemons' logs.
func (c *slurmCluster) waitFor(t *testing.T, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		for _, d := range c.daemons {
			select {
			case <-d.done:
				t.Fatalf("waiting for %s: %s exited (%v):\n%s", what, d.name, d.err, c.logs())
			default:
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s after %v:\n%s", what, timeout, c.logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// instance is the name oci.conf gives a task's instance.
func (c *slurmCluster) instance(job, step, task string) string {
	return strings.NewReplacer("%j", job, "%s", step, "%t", task, "%u", c.h.user.name).Replace(c.name)
}

// asRoot runs a Slurm client program as root (the test itself).
func (c *slurmCluster) asRoot(timeout time.Duration, prog string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.prog[prog], args...)
	cmd.Env = append(os.Environ(), "SLURM_CONF="+c.conf)
	var b bytes.Buffer
	cmd.Stdout, cmd.Stderr = &b, &b
	err := cmd.Run()
	return b.String(), err
}

// user runs a Slurm client program as sdtest in dir.
func (c *slurmCluster) user(t *testing.T, dir string, timeout time.Duration, prog string, args ...string) res {
	t.Helper()
	return c.h.exec(t, c.opts(dir, timeout), c.prog[prog], args...)
}

func (c *slurmCluster) opts(dir string, timeout time.Duration) opts {
	return opts{dir: dir, timeout: timeout, env: []string{"SLURM_CONF=" + c.conf}}
}

// stop cancels what is left of the test's jobs, kills any slurmstepd (and
// what runs under it) that the test's slurmd started, then stops the
// daemons by their PIDs, newest first. Only processes this test started
// are signalled: the daemons, and processes carrying c.mark.
func (c *slurmCluster) stop(t *testing.T) {
	if len(c.daemons) == 0 {
		close(c.release)
		return
	}
	if c.running("slurmctld") {
		_, _ = c.asRoot(10*time.Second, "scancel", "--user="+c.h.user.name)
		deadline := time.Now().Add(15 * time.Second)
		for time.Now().Before(deadline) {
			out, err := c.asRoot(10*time.Second, "squeue", "-h")
			if err == nil && strings.TrimSpace(out) == "" {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	if left := c.marked(); len(left) > 0 {
		t.Logf("killing slurmstepd and job processes left behind: %v", left)
		for _, pid := range left {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	for i := len(c.daemons) - 1; i >= 0; i-- {
		d := c.daemons[i]
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(10 * time.Second):
			t.Errorf("%s (pid %d) still running 10s after SIGTERM: killed", d.name, d.cmd.Process.Pid)
			_ = d.cmd.Process.Kill()
			<-d.done
		}
	}
	close(c.release)
	if t.Failed() {
		t.Logf("Slurm's logs:\n%s", c.logs())
	}
}

func (c *slurmCluster) running(name string) bool {
	for _, d := range c.daemons {
		if d.name == name {
			select {
			case <-d.done:
				return false
			default:
				return true
			}
		}
	}
	return false
}

// marked lists the processes this cluster started, other than the daemons:
// those whose working directory or an open file lies under c.root
// (slurmstepd has its log and socket there, and starts the RunTime commands
// in its spool), or whose environment holds c.mark (selfdock, which
// inherits slurmd's), and every descendant of these (the job's processes).
func (c *slurmCluster) marked() []int {
	skip, daemon := map[int]bool{os.Getpid(): true}, map[int]bool{}
	for _, d := range c.daemons {
		skip[d.cmd.Process.Pid], daemon[d.cmd.Process.Pid] = true, true
	}
	children := map[int][]int{}
	var todo []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || skip[pid] {
			continue
		}
		ppid := slurmParent(pid)
		if daemon[ppid] {
			continue // slurmctld's slurmscriptd: it ends with its daemon
		}
		children[ppid] = append(children[ppid], pid)
		if c.ours(pid) {
			todo = append(todo, pid)
		}
	}
	seen := map[int]bool{}
	var pids []int
	for len(todo) > 0 {
		pid := todo[0]
		todo = todo[1:]
		if seen[pid] || skip[pid] {
			continue
		}
		seen[pid] = true
		pids = append(pids, pid)
		todo = append(todo, children[pid]...)
	}
	return pids
}

// slurmParent is the parent PID of pid, from /proc; 0 if unknown.
func slurmParent(pid int) int {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if i := bytes.LastIndexByte(stat, ')'); err == nil && i > 0 {
		if f := strings.Fields(string(stat[i+1:])); len(f) > 1 {
			ppid, _ := strconv.Atoi(f[1])
			return ppid
		}
	}
	return 0
}

// ours tells whether process pid belongs to this cluster (see marked).
func (c *slurmCluster) ours(pid int) bool {
	dir := "/proc/" + strconv.Itoa(pid)
	under := func(link string) bool {
		p, err := os.Readlink(link)
		return err == nil && strings.HasPrefix(p, c.root+"/")
	}
	if under(dir + "/cwd") {
		return true
	}
	fds, _ := os.ReadDir(dir + "/fd")
	for _, fd := range fds {
		if under(dir + "/fd/" + fd.Name()) {
			return true
		}
	}
	env, _ := os.ReadFile(dir + "/environ")
	for _, kv := range bytes.Split(env, []byte{0}) {
		if string(kv) == c.mark {
			return true
		}
	}
	return false
}

// logs is the end of each daemon's output and log file.
func (c *slurmCluster) logs() string {
	var b strings.Builder
	files, _ := filepath.Glob(filepath.Join(c.root, "log", "*"))
	for _, f := range files {
		data, _ := os.ReadFile(f)
		fmt.Fprintf(&b, "==> %s <==\n%s\n", f, slurmTail(string(data), 40))
	}
	return b.String()
}

func slurmTail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
