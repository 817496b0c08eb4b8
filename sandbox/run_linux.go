package sandbox

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"github.com/selfdock/selfdock/policy"
	"golang.org/x/sys/unix"
)

// Exit statuses of selfdock's own failures, as selfdock (C).
const (
	CodeFailed   = 124
	CodeNotExec  = 126
	CodeNotFound = 127
)

// Error is a failure with the exit status selfdock should use.
type Error struct {
	Code int
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Privilege says how selfdock was started.
type Privilege int

const (
	// Setuid: effective uid 0 from the setuid bit, real uid the caller's.
	Setuid Privilege = iota
	// Root: started by the real root.
	Root
	// Unprivileged: no privilege (not setuid, or no_new_privs set, as
	// inside another sandbox); the sandbox runs in a user namespace.
	Unprivileged
)

func (p Privilege) String() string {
	return [...]string{"setuid", "root", "user namespace"}[p]
}

// Detect tells how the process was started.
func Detect() Privilege {
	switch {
	case InUserNamespace() || os.Geteuid() != 0:
		return Unprivileged
	case os.Getuid() == 0:
		return Root
	}
	return Setuid
}

// identity is the caller's, recorded at start.
type identity struct {
	uid, gid uint32
	groups   []uint32
}

// Run carries out the plan and returns the command's exit status. It locks
// the calling goroutine to its OS thread for good: the thread's namespaces
// and credentials differ from the rest of the process from here on.
func Run(p *policy.Plan) (int, error) {
	runtime.LockOSThread()
	// Caught from here on, before anything is started or left behind (a
	// cgroup leaf, squashfuse, the command): a signal can never find a
	// child of selfdock running while selfdock itself would die of it.
	sigfd, err := catchSignals()
	if err != nil {
		return 0, &Error{CodeFailed, err}
	}
	var net *pendingNet
	if !p.ShareNet {
		net = newNet() // joined in setup
	} else {
		dropEarlyNet()
	}
	priv := Detect()
	id := identity{p.User.Uid, p.User.Gid, p.User.Groups}
	if priv == Unprivileged {
		entered, err := userNamespace()
		if !entered {
			if err == nil {
				err = errors.New("the command line was not recognised before the runtime started")
			}
			return 0, &Error{CodeFailed, fmt.Errorf("user namespace (no setuid privilege here): %w", err)}
		}
	} else if err := actAs(id); err != nil {
		return 0, &Error{CodeFailed, err}
	}
	p.Rlimits = mergeLimits(callerLimits(), p.Rlimits, currentLimit)
	Trace("plan")
	// Directories selfdock makes for mount points and --overlay get the
	// modes it asks for, not the caller's umask (0777 would make them
	// unusable); the command gets the caller's umask back (start).
	s := &sandbox{umask: unix.Umask(0o022), plan: p, priv: priv, sigfd: sigfd, net: net, t: &tree{plan: p, id: id, ours: map[uint64]bool{}, procDir: -1, procCopy: -1, upper: -1, overlays: map[uint64]bool{}, userns: priv == Unprivileged, root0: priv == Root}}
	if p.CgroupMemory > 0 || p.CgroupPids > 0 {
		// Thread creds are the caller's file access here; a subtree that is
		// not delegated to the caller leaves the limits out (rlimits stay).
		cg, err := enterCgroup(p.CgroupMemory, p.CgroupPids)
		if err != nil && !errors.Is(err, errNotDelegated) {
			return 0, asError(err)
		}
		s.cgroup = cg
	}
	if err := s.setup(); err != nil {
		s.cgroup.leave()
		return 0, asError(err)
	}
	Trace("setup")
	pid, err := s.start()
	if err != nil {
		s.cgroup.leave()
		return 0, asError(err)
	}
	Trace("released")
	return s.wait(pid), nil
}

func asError(err error) error {
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	return &Error{CodeFailed, err}
}

// actAs gives the locked thread the caller's file access: its groups, fsgid
// and fsuid, which also drops the file capabilities from its effective set.
// It keeps euid 0 and CAP_SYS_ADMIN for the mount calls.
func actAs(id identity) error {
	g := make([]int, len(id.groups))
	for i, v := range id.groups {
		g[i] = int(v)
	}
	// Safe: raw setgroups and setfs[ug]id change only this thread, and only
	// towards the caller's own ids.
	if err := unix.Setgroups(g); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	unix.Setfsgid(int(id.gid))
	unix.Setfsuid(int(id.uid))
	if got, _ := unix.SetfsuidRetUid(-1); got != int(id.uid) {
		return fmt.Errorf("setfsuid %d: still %d", id.uid, got)
	}
	return nil
}

type sandbox struct {
	plan     *policy.Plan
	priv     Privilege
	sigfd    int         // readable when a forwarded signal came (catchSignals)
	enter    bool        // joining an instance: its /proc is there already
	cgroup   *cgroup     // the instance's cgroup leaf, if the policy's limits apply
	net      *pendingNet // the private network namespace being made; nil: the host's
	fallback bool        // no procfs pidns option: a C child mounts /proc
	umask    int         // the caller's, while selfdock's own is 022; -1: untouched
	t        *tree
	pidfd    int
	argv0    string
	dir      string
}

// setup makes the namespaces and the mount tree and enters it.
func (s *sandbox) setup() error {
	readTTYGroup()
	proc, err := unix.Open("/proc", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return errorf("open", "/proc", err)
	}
	s.t.procDir = proc
	// The network namespace is made beside this (newNet) and joined last.
	flags := unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWIPC | unix.CLONE_NEWUTS
	// Safe: new namespaces for this thread only; nothing of the host changes.
	s.fallback = !pidnsProc()
	if err := unix.Unshare(flags); err != nil {
		return fmt.Errorf("unshare namespaces: %w", err)
	}
	Trace("unshare")
	if s.plan.Hostname != "" {
		// Safe: the sandbox's own UTS namespace, unshared above.
		if err := unix.Sethostname([]byte(s.plan.Hostname)); err != nil {
			return fmt.Errorf("hostname %q: %w", s.plan.Hostname, err)
		}
	}
	if err := s.t.prepare(); err != nil {
		return err
	}
	Trace("prepare")
	if err := s.t.attach(); err != nil {
		return err
	}
	Trace("attach")
	if err := s.t.pivot(); err != nil {
		return err
	}
	if err := s.net.join(); err != nil {
		return err
	}
	Trace("netns")
	return s.resolve()
}

// resolve finds the command and the working directory inside the new root,
// with the caller's access.
func (s *sandbox) resolve() error {
	if err := s.image(); err != nil {
		return err
	}
	if err := s.resolveCommand(); err != nil {
		return err
	}
	s.dir = s.plan.Dir
	if err := searchable(s.dir); err == nil {
	} else if s.plan.DirFallback {
		s.dir = "/"
	} else {
		return errorf("working directory", s.dir, err)
	}
	return nil
}

// searchable checks, as the caller and inside the new root, that dir is a
// directory the caller may enter, as the command's chdir will need.
func searchable(dir string) error {
	fd, err := unix.Openat2(unix.AT_FDCWD, dir, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Faccessat2(fd, "", unix.X_OK, unix.AT_EMPTY_PATH|unix.AT_EACCESS)
}

// resolveCommand finds the command in the new root.
func (s *sandbox) resolveCommand() error {
	if len(s.plan.Argv) == 0 {
		return fmt.Errorf("missing command: give one, or use a --rootfs made by selfdock import whose image has a default command")
	}
	argv0, err := lookPath(s.plan.Argv[0], s.plan.Env)
	if err != nil {
		return err
	}
	s.argv0 = argv0
	return nil
}

// image applies the config `selfdock import` saved in the root, read with
// the caller's access from inside the new root.
func (s *sandbox) image() error {
	fd, err := unix.Openat2(unix.AT_FDCWD, policy.ImageSidecar, &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NONBLOCK | unix.O_NOFOLLOW,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	if errors.Is(err, unix.ENOENT) {
		if s.plan.Embedded != nil {
			return s.applyImage(&policy.ImageConfig{})
		}
		return nil
	}
	if err != nil {
		return errorf("open", policy.ImageSidecar, err)
	}
	f := os.NewFile(uintptr(fd), policy.ImageSidecar)
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() || st.Size() > policy.MaxSidecar {
		return fmt.Errorf("image config %q: not a regular file of at most %d bytes", policy.ImageSidecar, policy.MaxSidecar)
	}
	b := make([]byte, policy.MaxSidecar)
	n, err := f.Read(b)
	if err != nil {
		return errorf("read", policy.ImageSidecar, err)
	}
	c, err := policy.ParseImageConfig(b[:n])
	if err != nil {
		return err
	}
	return s.applyImage(c)
}

// applyImage applies the image's config, and over it what a self-contained
// file recorded (pack --cmd, --env).
func (s *sandbox) applyImage(c *policy.ImageConfig) error {
	if e := s.plan.Embedded; e != nil {
		if len(e.Cmd) > 0 {
			c.Entrypoint, c.Cmd = nil, e.Cmd
		}
		c.Env = append(c.Env, e.Env...)
	}
	return s.plan.ApplyImage(c)
}

// lookPath finds name in the command's PATH, as the caller, inside the root.
func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	path := "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			path = v
		}
	}
	for _, d := range strings.Split(path, ":") {
		if d == "" {
			d = "."
		}
		p := d + "/" + name
		var st unix.Stat_t
		if unix.Stat(p, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFREG &&
			unix.Faccessat2(unix.AT_FDCWD, p, unix.X_OK, unix.AT_EACCESS) == nil {
			return p, nil
		}
	}
	return "", &Error{CodeNotFound, fmt.Errorf("command not found: %q", name)}
}

// start drops what the command must not have, forks it stopped right after
// its execve, mounts its /proc, checks its credentials and releases it.
func (s *sandbox) start() (int, error) {
	if s.umask >= 0 {
		unix.Umask(s.umask) // the command's, inherited through the fork
	}
	if s.fallback {
		return s.startC()
	}
	if _, err := s.restrictThread(false); err != nil {
		return 0, err
	}
	Trace("seccomp")
	attr := &syscall.ProcAttr{
		Dir:   s.dir,
		Env:   s.plan.Env,
		Files: []uintptr{0, 1, 2},
		Sys: &syscall.SysProcAttr{
			Ptrace:    true,
			Pdeathsig: syscall.SIGKILL,
			PidFD:     &s.pidfd,
		},
	}
	if s.enter {
		// Go's child kills itself when getppid() changed, which it always
		// has across a PID namespace: for PID 1 of a new namespace that
		// SIGKILL from inside is ignored; a process entering an instance
		// would die. It lives as long as the instance, like docker exec's.
		attr.Sys.Pdeathsig = 0
	}
	if s.priv != Unprivileged {
		g := make([]uint32, len(s.plan.User.Groups))
		copy(g, s.plan.User.Groups)
		attr.Sys.Credential = &syscall.Credential{Uid: s.plan.User.Uid, Gid: s.plan.User.Gid, Groups: g}
	}
	Trace("restrict")
	pid, err := syscall.ForkExec(s.argv0, s.plan.Argv, attr)
	if err != nil {
		return 0, execError(s.plan.Argv[0], err)
	}
	Trace("forkexec")
	if err := s.release(pid); err != nil {
		unix.Kill(pid, unix.SIGKILL)
		var ws unix.WaitStatus
		unix.Wait4(pid, &ws, unix.WALL, nil)
		return 0, err
	}
	return pid, nil
}

func execError(name string, err error) error {
	switch {
	case errors.Is(err, unix.ENOENT):
		return &Error{CodeNotFound, fmt.Errorf("command not found: %q", name)}
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.ENOEXEC), errors.Is(err, unix.EISDIR),
		errors.Is(err, unix.EPERM), errors.Is(err, unix.ETXTBSY), errors.Is(err, unix.ENOTDIR):
		return &Error{CodeNotExec, fmt.Errorf("command not executable: %q: %w", name, err)}
	}
	return &Error{CodeFailed, fmt.Errorf("exec %q: %w", name, err)}
}

// release waits for the command's stop after execve, mounts /proc, checks
// that the command cannot be root again, and lets it run.
func (s *sandbox) release(pid int) error {
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(pid, &ws, unix.WALL, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("wait for the command: %w", err)
		}
		break
	}
	if !ws.Stopped() {
		return fmt.Errorf("the command did not stop after execve (status %#x)", uint32(ws))
	}
	if !s.enter {
		if err := s.t.mountProc(pid); err != nil {
			return err
		}
	}
	Trace("proc")
	if err := s.verify(pid); err != nil {
		return err
	}
	Trace("verified")
	for _, r := range s.plan.Rlimits {
		lim := unix.Rlimit{Cur: r.Cur, Max: r.Max}
		// Safe: only lowers the stopped command's limits, as the policy says.
		if err := unix.Prlimit(pid, r.Resource, &lim, nil); err != nil {
			return fmt.Errorf("rlimit %s: %w", r.Name, err)
		}
	}
	// Safe: detaching our own stopped child; SIGTRAP from the execve is
	// suppressed.
	if err := unix.PtraceDetach(pid); err != nil {
		return fmt.Errorf("ptrace detach: %w", err)
	}
	Trace("detached")
	return nil
}

// verify reads the stopped command's status and fails closed unless it runs
// as the caller with no capability, no_new_privs and, if asked, seccomp.
func (s *sandbox) verify(pid int) error {
	fd, err := unix.Openat(s.t.procDir, strconv.Itoa(pid)+"/status", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return errorf("read", "/proc/"+strconv.Itoa(pid)+"/status", err)
	}
	f := os.NewFile(uintptr(fd), "status")
	defer f.Close()
	buf := make([]byte, 4096)
	n, _ := f.Read(buf)
	u := strconv.Itoa(int(s.plan.User.Uid))
	g := strconv.Itoa(int(s.plan.User.Gid))
	want := map[string]string{
		"Uid":        u + "\t" + u + "\t" + u + "\t" + u,
		"Gid":        g + "\t" + g + "\t" + g + "\t" + g,
		"CapPrm":     "0000000000000000",
		"CapEff":     "0000000000000000",
		"CapBnd":     "0000000000000000",
		"CapAmb":     "0000000000000000",
		"NoNewPrivs": "1",
	}
	if s.plan.Seccomp {
		want["Seccomp"] = "2"
	}
	for _, line := range strings.Split(string(buf[:n]), "\n") {
		k, v, _ := strings.Cut(line, ":")
		if w, ok := want[k]; ok {
			if strings.TrimSpace(v) != w {
				return fmt.Errorf("refusing to run the command: its %s is %q, want %q", k, strings.TrimSpace(v), w)
			}
			delete(want, k)
		}
	}
	if len(want) > 0 {
		return fmt.Errorf("refusing to run the command: cannot check its status")
	}
	return nil
}

// Why says in words how the process runs and why, for --version.
func Why() string {
	switch Detect() {
	case Setuid:
		return "setuid mode: effective uid 0 from the setuid bit, sandbox set up with privilege and dropped"
	case Root:
		return "root mode: started by root; the command runs as root without capabilities"
	}
	why := "the binary is not setuid root or is on a nosuid file system"
	if v, _ := unix.PrctlRetInt(unix.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0); v == 1 {
		why = "no_new_privs is set (as inside another sandbox), so the setuid bit gives nothing"
	}
	return "user namespace mode: " + why
}

// mergeLimits gives the command the caller's own limits back (those the
// setuid start raised), each lowered further by the policy's. A policy limit
// on any other resource is lowered to the caller's, which this process
// still has (current): a policy never raises a limit, not even the soft one,
// and the command's setrlimit, as the caller, could not raise a hard one.
func mergeLimits(caller, pol []policy.Rlimit, current func(resource int) (unix.Rlimit, bool)) []policy.Rlimit {
	out := append([]policy.Rlimit(nil), caller...)
	for _, p := range pol {
		merged := false
		for i := range out {
			if out[i].Resource == p.Resource {
				out[i].Cur, out[i].Max = min(out[i].Cur, p.Cur), min(out[i].Max, p.Max)
				merged = true
			}
		}
		if !merged {
			if c, ok := current(p.Resource); ok {
				p.Cur, p.Max = min(p.Cur, c.Cur), min(p.Max, c.Max)
			}
			out = append(out, p)
		}
	}
	return out
}

// currentLimit is this process's limit on resource.
func currentLimit(resource int) (unix.Rlimit, bool) {
	var l unix.Rlimit
	return l, unix.Getrlimit(resource, &l) == nil
}
