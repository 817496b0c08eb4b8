package boot

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Target is the process boot replaces: the init of a PID namespace.
type Target struct {
	Pid int
	// RealInit is true when Pid is the machine's own PID 1, the init of the
	// initial PID namespace: replacing it replaces the running system.
	RealInit bool
	Exe      string   // its program, as /proc/PID/exe names it
	Argv     []string // its command line
	Env      []string // its environment, for starting it again on failure
	pidfd    int      // the process itself: a pid reused later is told apart
}

// FindTarget checks that pid may be replaced and describes it. The checks
// only read /proc; nothing here traces or signals the process.
//   - It must be the init (PID 1) of a PID namespace: every other process of
//     that namespace is killed afterwards, which only its init may do.
//   - It must share selfdock's mount namespace: the new root is prepared
//     there, and the path of selfdock's executable is resolved there.
//   - The machine's real PID 1 needs allowReal: nothing less than an explicit
//     flag may replace the running system.
func FindTarget(pid int, allowReal bool) (*Target, error) {
	if pid <= 0 {
		return nil, fmt.Errorf("target %d: not a process id", pid)
	}
	if err := ownProc(); err != nil {
		return nil, err
	}
	p := "/proc/" + strconv.Itoa(pid)
	st, err := readStatus(p + "/status")
	if err != nil {
		return nil, fmt.Errorf("target %d: %w", pid, err)
	}
	nspid := st.nspid
	if nspid[len(nspid)-1] != 1 {
		return nil, fmt.Errorf("target %d: not the init (PID 1) of a PID namespace", pid)
	}
	// With one NSpid entry the target is in /proc's PID namespace, which is
	// selfdock's (ownProc): the initial one makes it the machine's init.
	// Told from files anyone may read, before the checks that need
	// access to the process.
	own, err := nsInode("/proc/self/ns/pid")
	if err != nil {
		return nil, err
	}
	t := &Target{Pid: pid, RealInit: len(nspid) == 1 && own == realInit}
	if t.RealInit && !allowReal {
		return nil, fmt.Errorf("target %d is this machine's init: replacing it replaces the running system; "+
			"say so with --i-know-this-replaces-the-running-system", pid)
	}
	if err := shared(p); err != nil {
		return nil, fmt.Errorf("target %d: %w", pid, err)
	}
	if st.threads != 1 {
		return nil, fmt.Errorf("target %d: a process of %d threads (one is needed: the others would run on while it is changed)", pid, st.threads)
	}
	// Safe: only a handle on the process, to tell it from a later one.
	if t.pidfd, err = unix.PidfdOpen(pid, 0); err != nil {
		return nil, fmt.Errorf("target %d: pidfd: %w", pid, err)
	}
	if t.Exe, err = os.Readlink(p + "/exe"); err != nil {
		return nil, fmt.Errorf("target %d: %w", pid, err)
	}
	cmdline, err := os.ReadFile(p + "/cmdline")
	if err != nil {
		return nil, fmt.Errorf("target %d: %w", pid, err)
	}
	t.Argv = strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	if environ, err := os.ReadFile(p + "/environ"); err == nil && len(environ) > 0 {
		t.Env = strings.Split(strings.TrimRight(string(environ), "\x00"), "\x00")
	}
	return t, nil
}

// shared checks that the process at /proc/PID p sees selfdock's files: the
// same mount namespace and the same root directory, so that the new root
// and selfdock's executable are where selfdock put them.
func shared(p string) error {
	if same, err := sameNS(p, "mnt"); err != nil || !same {
		return fmt.Errorf("not in selfdock's mount namespace (it could not see the new root)%s", errText(err))
	}
	var a, b unix.Stat_t
	if err := unix.Stat(p+"/root/", &a); err != nil {
		return &os.PathError{Op: "stat", Path: p + "/root", Err: err}
	}
	if err := unix.Stat("/", &b); err != nil {
		return &os.PathError{Op: "stat", Path: "/", Err: err}
	}
	if a.Dev != b.Dev || a.Ino != b.Ino {
		return errors.New("its root directory is not selfdock's (chrooted)")
	}
	return nil
}

// still checks, once the target is stopped, that it is the process
// FindTarget vetted: alive under the same pidfd (so not a pid reused
// since), still a namespace's init in selfdock's mount namespace, still
// one thread (a stopped thread cannot start another).
func (t *Target) still() error {
	p := "/proc/" + strconv.Itoa(t.Pid)
	if err := unix.PidfdSendSignal(t.pidfd, 0, nil, 0); err != nil {
		return fmt.Errorf("target %d: no longer the process that was checked: %w", t.Pid, err)
	}
	st, err := readStatus(p + "/status")
	switch {
	case err != nil:
	case st.nspid[len(st.nspid)-1] != 1:
		err = errors.New("not a namespace's init")
	case st.threads != 1:
		err = fmt.Errorf("%d threads", st.threads)
	default:
		err = shared(p)
	}
	if err != nil {
		return fmt.Errorf("target %d changed: %w", t.Pid, err)
	}
	return nil
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return ": " + err.Error()
}

// ownProc checks that /proc shows selfdock's own PID namespace: the target
// execs /proc/<selfdock's pid>/exe, which must name selfdock there.
func ownProc() error {
	var fs unix.Statfs_t
	if err := unix.Statfs("/proc", &fs); err != nil || fs.Type != unix.PROC_SUPER_MAGIC {
		return errors.New("/proc is not a procfs")
	}
	s, err := os.Readlink("/proc/self")
	if err != nil {
		return fmt.Errorf("/proc: %w", err)
	}
	own, err := readStatus("/proc/self/status")
	if s != strconv.Itoa(os.Getpid()) || err != nil || len(own.nspid) != 1 {
		return errors.New("/proc belongs to another PID namespace than selfdock's: mount a /proc of its own")
	}
	return nil
}

// procStatus is what boot reads of a /proc/PID/status file.
type procStatus struct {
	nspid   []int // the id in /proc's PID namespace, then in each one below, the last in its own
	threads int
}

func readStatus(path string) (procStatus, error) {
	var st procStatus
	b, err := os.ReadFile(path)
	if err != nil {
		return st, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, ":")
		switch k {
		case "NSpid":
			for _, f := range strings.Fields(v) {
				id, err := strconv.Atoi(f)
				if err != nil {
					return st, fmt.Errorf("%s: NSpid: %w", path, err)
				}
				st.nspid = append(st.nspid, id)
			}
		case "Threads":
			if st.threads, err = strconv.Atoi(strings.TrimSpace(v)); err != nil {
				return st, fmt.Errorf("%s: Threads: %w", path, err)
			}
		}
	}
	if len(st.nspid) == 0 || st.threads == 0 {
		return st, fmt.Errorf("%s: no NSpid or Threads line", path)
	}
	return st, nil
}

// nsInode is the inode of a namespace file such as /proc/PID/ns/pid. It
// stats the link's target: no access to the process beyond /proc's own
// permission check (PTRACE_MODE_READ), which root passes.
func nsInode(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	return st.Ino, nil
}

// sameNS tells whether the process at /proc/PID p is in selfdock's
// namespace of the given kind.
func sameNS(p, kind string) (bool, error) {
	var a, b unix.Stat_t
	if err := unix.Stat(p+"/ns/"+kind, &a); err != nil {
		return false, &os.PathError{Op: "stat", Path: p + "/ns/" + kind, Err: err}
	}
	if err := unix.Stat("/proc/self/ns/"+kind, &b); err != nil {
		return false, &os.PathError{Op: "stat", Path: "/proc/self/ns/" + kind, Err: err}
	}
	return a.Dev == b.Dev && a.Ino == b.Ino, nil
}

// isRealInit tells whether the calling process is the machine's real PID 1.
// Without /proc it answers no: the safe side, which skips the steps global
// to the machine and keeps mounts in a namespace of PID 1's own. (selfdock
// boot needed /proc to find its target, in the same mount namespace.)
func isRealInit() bool {
	ino, err := nsInode("/proc/self/ns/pid")
	return err == nil && os.Getpid() == 1 && ino == realInit
}
