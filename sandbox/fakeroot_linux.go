package sandbox

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"github.com/selfdock/selfdock/policy"
	"golang.org/x/sys/unix"
)

// LaunchFakeroot is the outer half of --fakeroot: it starts this selfdock
// again, as the caller and with no_new_privs (so the setuid bit gives it
// nothing), with the same arguments. The copy enters a user and a mount
// namespace in its constructor and waits; this process maps the ids with
// newuidmap and newgidmap, run as the caller from outside the namespace
// (they check /etc/subuid and /etc/subgid, so selfdock never writes a
// multi-id map itself), then lets the copy build the sandbox, with the
// caller as root of that namespace, and returns its exit status.
func LaunchFakeroot(id policy.Identity) (int, error) {
	runtime.LockOSThread()
	var toChild, fromChild [2]int
	if err := unix.Pipe2(toChild[:], unix.O_CLOEXEC); err != nil {
		return 0, err
	}
	if err := unix.Pipe2(fromChild[:], unix.O_CLOEXEC); err != nil {
		return 0, err
	}
	defer unix.Close(toChild[1])
	defer unix.Close(fromChild[0])
	// The caller's own SELFDOCK_FAKEROOT_* would come first and win.
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "SELFDOCK_FAKEROOT_") {
			env = append(env, e)
		}
	}
	env = append(env, "SELFDOCK_FAKEROOT_SYNC=3,4", fakerootLimitsEnv+"="+encodeLimits(raisedLimits()))
	pidfd := -1
	attr := &syscall.ProcAttr{Env: env, Files: []uintptr{0, 1, 2, uintptr(toChild[0]), uintptr(fromChild[1])},
		Sys: &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, PidFD: &pidfd}}
	if Detect() != Unprivileged {
		g := make([]uint32, len(id.Groups))
		copy(g, id.Groups)
		attr.Sys.Credential = &syscall.Credential{Uid: id.Uid, Gid: id.Gid, Groups: g}
		// Safe: only this thread, which forks the copy and nothing else.
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return 0, fmt.Errorf("--fakeroot: no_new_privs: %w", err)
		}
	}
	pid, err := syscall.ForkExec("/proc/self/exe", os.Args, attr)
	unix.Close(toChild[0])
	unix.Close(fromChild[1])
	if err != nil {
		return 0, fmt.Errorf("--fakeroot: start: %w", err)
	}
	defer unix.Close(pidfd)
	status := func() int { return waitChild(pid, pidfd) }
	b := make([]byte, 1)
	if n, _ := unix.Read(fromChild[0], b); n != 1 {
		return status(), nil // it failed before it could ask; it said why
	}
	reply := make(chan byte, 1)
	// newuidmap is setuid: start it from a thread without no_new_privs.
	go func() { runtime.LockOSThread(); reply <- mapIDs(pid, id) }()
	unix.Write(toChild[1], []byte{<-reply})
	// Nothing here needs root any more: only waiting and passing signals on.
	if err := DropPrivileges(); err != nil {
		unix.PidfdSendSignal(pidfd, unix.SIGKILL, nil, 0)
		status()
		return 0, fmt.Errorf("--fakeroot: %w", err)
	}
	return status(), nil
}

// waitChild waits for pid, passing termination signals on through its
// pidfd, and returns its exit status as a shell reports it. Through the
// pidfd a signal can only ever reach that process, even once it is reaped
// and its pid number belongs to another.
func waitChild(pid, pidfd int) int {
	sigs := make(chan os.Signal, 4)
	for _, s := range forwarded {
		signal.Notify(sigs, s)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for s := range sigs {
			unix.PidfdSendSignal(pidfd, s.(syscall.Signal), nil, 0)
		}
	}()
	var ws unix.WaitStatus
	for {
		if _, err := unix.Wait4(pid, &ws, 0, nil); err != unix.EINTR {
			break
		}
	}
	signal.Stop(sigs) // no more sends once it returns
	close(sigs)
	<-done
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// mapIDs maps the caller to 0 and their subordinate ranges to 1..N in
// pid's user namespace with newuidmap/newgidmap, run as the caller. It
// returns what the copy must still do: 'm' nothing, 'G' map its own gid,
// 's' map its own uid and gid.
func mapIDs(pid int, id policy.Identity) byte {
	name := strconv.Itoa(int(id.Uid))
	if u, err := user.LookupId(name); err == nil {
		name = u.Username
	}
	subuid, uerr := subordinate("/etc/subuid", name, id.Uid)
	subgid, gerr := subordinate("/etc/subgid", name, id.Gid)
	if uerr != nil || gerr != nil {
		fmt.Fprintln(os.Stderr, "selfdock: --fakeroot: no subordinate ids for you in /etc/subuid and /etc/subgid: only your own uid and gid are mapped (to 0); files of other ids cannot be made")
		return 's'
	}
	if err := runMap("newuidmap", pid, id.Uid, subuid, id); err != nil {
		fmt.Fprintf(os.Stderr, "selfdock: --fakeroot: newuidmap: %v: only your own uid and gid are mapped (to 0)\n", err)
		return 's'
	}
	if err := runMap("newgidmap", pid, id.Gid, subgid, id); err != nil {
		fmt.Fprintf(os.Stderr, "selfdock: --fakeroot: newgidmap: %v: only your own gid is mapped (to 0)\n", err)
		return 'G'
	}
	return 'm'
}

// subordinate returns "start count" of the first range of name (or uid)
// in an /etc/subuid-style file.
func subordinate(file, name string, id uint32) ([2]uint64, error) {
	f, err := os.Open(file)
	if err != nil {
		return [2]uint64{}, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		p := strings.Split(strings.TrimSpace(sc.Text()), ":")
		if len(p) != 3 || (p[0] != name && p[0] != strconv.Itoa(int(id))) {
			continue
		}
		start, err1 := strconv.ParseUint(p[1], 10, 32)
		count, err2 := strconv.ParseUint(p[2], 10, 32)
		if err1 == nil && err2 == nil && count > 0 {
			return [2]uint64{start, count}, nil
		}
	}
	return [2]uint64{}, errors.New("no range")
}

// runMap runs newuidmap or newgidmap as the caller: 0 is the caller's own
// id, 1..count their subordinate range.
func runMap(prog string, pid int, own uint32, r [2]uint64, id policy.Identity) error {
	// Fixed places, never the caller's PATH (searched as root, it would
	// tell the caller which paths exist where they cannot look).
	path := ""
	for _, p := range []string{"/usr/bin/" + prog, "/bin/" + prog} {
		if _, e := os.Stat(p); e == nil {
			path = p
			break
		}
	}
	if path == "" {
		return fmt.Errorf("not installed (Debian package uidmap)")
	}
	cmd := exec.Command(path, strconv.Itoa(pid), "0", strconv.Itoa(int(own)), "1", "1",
		strconv.FormatUint(r[0], 10), strconv.FormatUint(r[1], 10))
	if Detect() != Unprivileged {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: id.Uid, Gid: id.Gid, Groups: id.Groups}}
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// fakerootLimitsEnv carries the caller's own limits to the --fakeroot copy,
// which starts with those selfdock raised for its runtime: its command gets
// the caller's, as run's does. Set by a caller by hand, it can only lower
// their own command's limits (never above the hard ones they have).
const fakerootLimitsEnv = "SELFDOCK_FAKEROOT_LIMITS"

func encodeLimits(ls []policy.Rlimit) string {
	parts := make([]string, 0, len(ls))
	for _, l := range ls {
		parts = append(parts, fmt.Sprintf("%s:%d:%d:%d", l.Name, l.Resource, l.Cur, l.Max))
	}
	return strings.Join(parts, ",")
}

func decodeLimits(s string) []policy.Rlimit {
	var out []policy.Rlimit
	for _, part := range strings.Split(s, ",") {
		f := strings.Split(part, ":")
		if len(f) != 4 {
			continue
		}
		res, err1 := strconv.Atoi(f[1])
		cur, err2 := strconv.ParseUint(f[2], 10, 64)
		max, err3 := strconv.ParseUint(f[3], 10, 64)
		if err1 == nil && err2 == nil && err3 == nil {
			out = append(out, policy.Rlimit{Name: f[0], Resource: res, Cur: cur, Max: max})
		}
	}
	return out
}

// callerLimits are the limits the command gets back: those the setuid
// constructor recorded, or, in the --fakeroot copy, those it was given.
func callerLimits() []policy.Rlimit {
	if InFakeroot() {
		return decodeLimits(os.Getenv(fakerootLimitsEnv))
	}
	return raisedLimits()
}
