package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// cgroupRoot is where cgroup v2 is mounted.
const cgroupRoot = "/sys/fs/cgroup"

// cgroup is an instance's cgroup v2 leaf, a sibling of the caller's own;
// held by descriptors, since the thread's root changes after pivot_root.
type cgroup struct {
	home, parent int    // the caller's cgroup and its parent
	name         string // our leaf, in parent
}

// errNotDelegated: no cgroup v2 subtree of the caller's here; the policy's
// cgroup limits then do not apply (rlimits still do).
var errNotDelegated = errors.New("no delegated cgroup v2")

// enterCgroup moves selfdock into a fresh leaf beside the caller's own
// cgroup, with the policy's memory.max and pids.max, before the command is
// forked, so that the command starts inside it. Every write goes through
// the caller's file access: only a subtree delegated to the caller (its
// parent owned by the caller, as systemd delegates) can be used.
func enterCgroup(memory, pids uint64) (*cgroup, error) {
	var fs unix.Statfs_t
	if unix.Statfs(cgroupRoot, &fs) != nil || fs.Type != unix.CGROUP2_SUPER_MAGIC {
		return nil, errNotDelegated
	}
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, errNotDelegated
	}
	rel, ok := strings.CutPrefix(strings.TrimSpace(string(b)), "0::")
	if !ok || rel == "/" {
		return nil, errNotDelegated
	}
	home := path.Join(cgroupRoot, path.Clean(rel))
	parent := path.Dir(home)
	var st unix.Stat_t
	if unix.Stat(parent, &st) != nil || int(st.Uid) != unix.Getuid() {
		return nil, errNotDelegated
	}
	c := &cgroup{name: "selfdock-" + strconv.Itoa(os.Getpid())}
	if c.home, err = unix.Open(home, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
		return nil, fmt.Errorf("cgroup %s: %w", home, err)
	}
	if c.parent, err = unix.Open(parent, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
		unix.Close(c.home)
		return nil, fmt.Errorf("cgroup %s: %w", parent, err)
	}
	if err := unix.Mkdirat(c.parent, c.name, 0o755); err != nil {
		c.close()
		return nil, fmt.Errorf("cgroup %s/%s: %w", parent, c.name, err)
	}
	for _, w := range [][2]string{{"memory.max", limit(memory)}, {"pids.max", limit(pids)},
		{"cgroup.procs", strconv.Itoa(os.Getpid())}} {
		if err := writeAt(c.parent, c.name+"/"+w[0], w[1]); err != nil {
			c.leave()
			return nil, fmt.Errorf("cgroup %s/%s/%s: %w", parent, c.name, w[0], err)
		}
	}
	return c, nil
}

// writeAt writes value to the file name below dir.
func writeAt(dir int, name, value string) error {
	fd, err := unix.Openat(dir, name, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	_, err = unix.Write(fd, []byte(value))
	return err
}

func (c *cgroup) close() {
	unix.Close(c.home)
	unix.Close(c.parent)
}

func limit(v uint64) string {
	if v == 0 {
		return "max"
	}
	return strconv.FormatUint(v, 10)
}

// leave moves selfdock back to the caller's cgroup and removes the leaf,
// once the command is gone: nothing is left behind.
func (c *cgroup) leave() {
	if c == nil {
		return
	}
	writeAt(c.home, "cgroup.procs", strconv.Itoa(os.Getpid()))
	unix.Unlinkat(c.parent, c.name, unix.AT_REMOVEDIR)
	c.close()
}
