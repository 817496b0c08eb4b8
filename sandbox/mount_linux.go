package sandbox

import (
	"errors"
	"fmt"
	"path"
	"strconv"

	"github.com/selfdock/selfdock/policy"
	"golang.org/x/sys/unix"
)

// devNodes are the host's harmless character devices bound into /dev.
var devNodes = []string{"null", "zero", "full", "random", "urandom", "tty"}

// devLinks are the symbolic links of the sandbox's /dev.
var devLinks = [][2]string{
	{"fd", "/proc/self/fd"}, {"stdin", "/proc/self/fd/0"}, {"stdout", "/proc/self/fd/1"},
	{"stderr", "/proc/self/fd/2"}, {"ptmx", "pts/ptmx"},
}

// source is a detached mount (open_tree clone) waiting for its destination.
type source struct {
	m  policy.Mount
	fd int // detached clone, or -1 for mounts made from scratch
	n  int // its index, naming its overlay's upper layer
}

// tree builds the sandbox's mount tree on the locked thread.
type tree struct {
	plan     *policy.Plan
	id       identity
	root     int             // the new root, attached on top of "/"
	sources  []source        // in the plan's order
	devs     []int           // clones of the host's device nodes, as devNodes
	ours     map[uint64]bool // tmpfs mounts we made: missing destinations may be created there
	procDir  int             // the host's /proc, to find the command's PID namespace later
	userns   bool            // running unprivileged in a user namespace
	procCopy int             // user namespace only: the current /proc, kept visible under the new one
	upper    int             // --overlay: the tmpfs holding the upper layers
	overlays map[uint64]bool // --overlay: the overlay mounts, where destinations may be created
	fusePid  int             // squashfuse serving the root, if any
	root0    bool            // started by the real root
	// restoreFsuid: dest() created a destination in an overlay as root.
	restoreFsuid bool
}

// setattr applies mount attributes to every mount of a detached tree.
func setattr(fd int, set uint64) error {
	attr := unix.MountAttr{Attr_set: set, Propagation: unix.MS_PRIVATE}
	return unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &attr)
}

// cloneUser makes a detached recursive copy of the caller's path. The path is
// resolved once, with the caller's file access, and never again by name.
func cloneUser(what, unsafePath string, dir bool, deny []string) (int, string, error) {
	fd, err := openUser(unsafePath, dir)
	if err != nil {
		return -1, "", errorf(what, unsafePath, err)
	}
	defer unix.Close(fd)
	real, err := realPath(fd)
	if err != nil {
		return -1, "", fmt.Errorf("%s %q: cannot tell where it lies, so the policy cannot be checked: %w", what, unsafePath, err)
	}
	for _, d := range deny {
		if under(real, d) {
			return -1, real, fmt.Errorf("%s %q: %s is refused by the policy (nothing under %s may be used)", what, unsafePath, real, d)
		}
	}
	// Safe with hostile input: fd was opened with the caller's access, and a
	// clone only shows what the caller could already reach; attributes below
	// make it nosuid and nodev before it is attached anywhere.
	c, err := unix.OpenTree(fd, "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE|unix.AT_EMPTY_PATH)
	if err != nil {
		return -1, real, errorf(what, unsafePath, err)
	}
	return c, real, nil
}

// prepare opens everything the plan takes from the host before anything is
// attached: the root, the bind sources and the host's device nodes.
func (t *tree) prepare() error {
	// Safe: only our private copy of the mount table changes, and making it
	// a slave keeps every later mount and unmount from reaching the host.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
		return errorf("make mounts private", "/", err)
	}
	var root int
	var real string
	var err error
	if t.plan.Image != "" || t.plan.Embedded != nil {
		root, real, err = t.imageRoot()
	} else {
		root, real, err = cloneUser("rootfs", t.plan.Rootfs, true, t.plan.DenyRootfs)
	}
	if err != nil {
		return err
	}
	t.root = root
	if len(t.plan.RootfsDirs) > 0 && t.plan.Image == "" && t.plan.Embedded == nil && !anyUnder(real, t.plan.RootfsDirs) {
		return fmt.Errorf("rootfs %q: %s is not in a directory the policy allows", t.plan.Rootfs, real)
	}
	set := uint64(unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV)
	if t.plan.Mode == policy.Run {
		set |= unix.MOUNT_ATTR_RDONLY
	}
	if err := setattr(root, set); err != nil {
		return errorf("rootfs", t.plan.Rootfs, err)
	}
	if t.userns && real != "/" {
		if err := t.copyProc(); err != nil {
			return err
		}
	}
	for _, m := range t.plan.Mounts {
		s := source{m: m, fd: -1}
		if m.Kind == policy.BindRO || m.Kind == policy.BindRW {
			if s.fd, err = t.cloneBind(m); err != nil {
				return err
			}
		}
		t.sources = append(t.sources, s)
	}
	return t.cloneDevs()
}

func anyUnder(p string, dirs []string) bool {
	for _, d := range dirs {
		if under(p, d) {
			return true
		}
	}
	return false
}

// cloneBind makes the detached copy for a --map or --vol.
func (t *tree) cloneBind(m policy.Mount) (int, error) {
	what := "map"
	if m.Kind == policy.BindRW {
		what = "vol"
	}
	fd, _, err := cloneUser(what, m.Source, false, t.plan.DenyMap)
	if err != nil {
		return -1, err
	}
	set := uint64(unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV)
	if m.Kind == policy.BindRO {
		set |= unix.MOUNT_ATTR_RDONLY
	} else if err := unix.Faccessat2(fd, "", unix.W_OK, unix.AT_EMPTY_PATH|unix.AT_EACCESS); err != nil {
		// The check runs with the caller's fsuid, groups and no file
		// capabilities: --vol never grants a write the caller lacks.
		unix.Close(fd)
		return -1, fmt.Errorf("vol %q: the caller may not write it: %w", m.Source, err)
	}
	if err := setattr(fd, set); err != nil {
		unix.Close(fd)
		return -1, errorf("bind", m.Source, err)
	}
	return fd, nil
}

// copyProc keeps a copy of the current /proc under the sandbox's: in a user
// namespace the kernel mounts a new procfs only where a fully visible one
// exists in the mount namespace (mount_too_revealing), and a user's rootfs
// has none of its own. The copy is read-only and covered by the new /proc.
func (t *tree) copyProc() error {
	// Safe: unprivileged (user namespace) path only; /proc is what the
	// caller sees already.
	fd, err := unix.OpenTree(unix.AT_FDCWD, "/proc", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
	if err != nil {
		return errorf("bind", "/proc", err)
	}
	if err := setattr(fd, unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC); err != nil {
		unix.Close(fd)
		return errorf("bind", "/proc", err)
	}
	t.procCopy = fd
	return nil
}

// cloneDevs copies the host's device nodes; run as root on fixed paths.
func (t *tree) cloneDevs() error {
	for _, n := range devNodes {
		// Safe: a fixed path under the host's /dev, owned by root.
		fd, err := unix.OpenTree(unix.AT_FDCWD, "/dev/"+n, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
		if err != nil {
			return errorf("bind", "/dev/"+n, err)
		}
		attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NOEXEC, Propagation: unix.MS_PRIVATE}
		if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, &attr); err != nil {
			return errorf("bind", "/dev/"+n, err)
		}
		t.devs = append(t.devs, fd)
	}
	return nil
}

// attach puts the new root on top of "/" and mounts everything else in it.
func (t *tree) attach() error {
	// Safe: the tree is a nosuid,nodev clone and "/" is our private copy.
	if err := unix.MoveMount(t.root, "", unix.AT_FDCWD, "/", unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return errorf("attach rootfs", t.plan.Rootfs, err)
	}
	if t.plan.Overlay {
		// Enter the root first, so that the overlay is stacked on the
		// namespace's root alone: the second pivot (setup's) then
		// detaches exactly the tree below it.
		subs, err := submounts(t.procDir, t.root)
		if err != nil {
			return errorf("overlay", t.plan.Rootfs, err)
		}
		if err := t.pivot(); err != nil {
			return err
		}
		if err := t.overlayUpper(); err != nil {
			return err
		}
		if err := t.overlayRoot(subs); err != nil {
			return err
		}
	}
	for i, s := range t.sources {
		s.n = i
		if err := t.mount(s); err != nil {
			return err
		}
	}
	return nil
}

// mount attaches one step of the plan at its destination inside the root.
func (t *tree) mount(s source) error {
	var err error
	fd := s.fd
	switch s.m.Kind {
	case policy.Tmpfs:
		uid, gid := t.id.uid, t.id.gid
		if s.m.Dest == "/tmp" {
			uid, gid = t.owner()
		}
		fd, err = t.tmpfs(s.m.Size, s.m.Mode, uid, gid)
	case policy.Dev:
		uid, gid := t.owner()
		fd, err = t.tmpfs(64<<10, 0755, uid, gid)
	case policy.Proc:
		if t.procCopy < 0 {
			return nil // mounted after the fork, from inside the PID namespace
		}
		fd, t.procCopy = t.procCopy, -1
	}
	if err != nil {
		return errorf("tmpfs", s.m.Dest, err)
	}
	defer unix.Close(fd)
	dir := s.m.Kind != policy.BindRO && s.m.Kind != policy.BindRW
	if !dir {
		if dir, err = isDir(fd); err != nil {
			return errorf("bind", s.m.Source, err)
		}
	}
	dst, err := t.dest(s.m.Dest, dir)
	if err != nil {
		return err
	}
	defer unix.Close(dst)
	// Safe: dst was resolved inside the new root (RESOLVE_IN_ROOT) with the
	// caller's access, and fd is a nosuid,nodev mount we made or cloned.
	if err := unix.MoveMount(fd, "", dst, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
		return errorf("mount on", s.m.Dest, err)
	}
	if s.m.Kind == policy.BindRO && t.plan.Overlay && dir {
		if err := t.overlayMap(fd, "map"+strconv.Itoa(s.n)); err != nil {
			return errorf("overlay", s.m.Source, err)
		}
	}
	switch s.m.Kind {
	case policy.Tmpfs:
		if id, err := mountID(fd); err == nil {
			t.ours[id] = true
		}
	case policy.Dev:
		return t.populateDev(fd)
	}
	return nil
}

// owner is the owner of the sandbox's own directories: root, or the caller
// in a user namespace, where root is not mapped.
func (t *tree) owner() (uint32, uint32) {
	if t.userns {
		return t.id.uid, t.id.gid
	}
	return 0, 0
}

// tmpfs makes a detached nosuid,nodev tmpfs.
func (t *tree) tmpfs(size uint64, mode uint32, uid, gid uint32) (int, error) {
	fs, err := unix.Fsopen("tmpfs", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return -1, err
	}
	defer unix.Close(fs)
	opts := [][2]string{{"mode", strconv.FormatUint(uint64(mode), 8)}, {"uid", fmt.Sprint(uid)}, {"gid", fmt.Sprint(gid)}}
	if size > 0 {
		opts = append(opts, [2]string{"size", strconv.FormatUint(size, 10)})
	}
	for _, o := range opts {
		if err := unix.FsconfigSetString(fs, o[0], o[1]); err != nil {
			return -1, fmt.Errorf("%s=%s: %w", o[0], o[1], err)
		}
	}
	if err := unix.FsconfigCreate(fs); err != nil {
		return -1, err
	}
	return unix.Fsmount(fs, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV)
}

// dest opens an absolute destination inside the new root. A missing one is
// created only inside a tmpfs this sandbox made (so nothing is written to
// disk), with the caller's access.
func (t *tree) dest(dest string, dir bool) (int, error) {
	fd, err := openIn(t.root, dest)
	if err == nil {
		return fd, nil
	}
	if !errors.Is(err, unix.ENOENT) {
		return -1, errorf("mount destination", dest, err)
	}
	parent, rest, err := t.deepest(dest)
	defer func() {
		if t.restoreFsuid { // deepest() made it root for an overlay
			unix.SetfsuidRetUid(int(t.id.uid))
			t.restoreFsuid = false
		}
	}()
	if err != nil {
		return -1, err
	}
	defer func() { unix.Close(parent) }()
	for i, name := range rest {
		last := i == len(rest)-1
		if last && !dir {
			f, err := unix.Openat(parent, name, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0644)
			if err != nil {
				return -1, errorf("create mount destination", dest, err)
			}
			unix.Close(f)
		} else if err := unix.Mkdirat(parent, name, 0755); err != nil {
			return -1, errorf("create mount destination", dest, err)
		}
		next, err := unix.Openat2(parent, name, &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC | unix.O_NOFOLLOW, Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS})
		if err != nil {
			return -1, errorf("open mount destination", dest, err)
		}
		unix.Close(parent)
		parent = next
	}
	fd, parent = parent, -1
	return fd, nil
}

// deepest finds the deepest existing ancestor of a missing destination and
// checks that it lies on a tmpfs this sandbox made.
func (t *tree) deepest(dest string) (int, []string, error) {
	var rest []string
	for p := dest; p != "/"; p = path.Dir(p) {
		rest = append([]string{path.Base(p)}, rest...)
		fd, err := openIn(t.root, path.Dir(p))
		if errors.Is(err, unix.ENOENT) {
			continue
		}
		if err != nil {
			return -1, nil, errorf("mount destination", dest, err)
		}
		id, err := mountID(fd)
		if err == nil && t.overlays[id] && !t.userns {
			// The overlay's upper layer is ours and discarded: the
			// destination is created there as root, like a mount point.
			unix.SetfsuidRetUid(0)
			t.restoreFsuid = true
		}
		if err != nil || !(t.ours[id] || t.overlays[id]) {
			unix.Close(fd)
			return -1, nil, fmt.Errorf("mount destination %q does not exist in the root (it is created only inside a tmpfs of the sandbox)", dest)
		}
		return fd, rest, nil
	}
	return -1, nil, fmt.Errorf("mount destination %q does not exist", dest)
}

// populateDev fills the sandbox's fresh /dev tmpfs (attached at fd).
func (t *tree) populateDev(dev int) error {
	// The tmpfs is ours, fresh and root-owned: create its entries as root.
	prev, _ := unix.SetfsuidRetUid(0)
	defer unix.SetfsuidRetUid(prev)
	prevGid, _ := unix.SetfsgidRetGid(0)
	defer unix.SetfsgidRetGid(prevGid)
	for i, n := range devNodes {
		f, err := unix.Openat(dev, n, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC, 0666)
		if err != nil {
			return errorf("create", "/dev/"+n, err)
		}
		unix.Close(f)
		// Safe: binds a root-owned host device node onto our own file.
		if err := unix.MoveMount(t.devs[i], "", dev, n, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
			return errorf("bind", "/dev/"+n, err)
		}
	}
	for _, l := range devLinks {
		if err := unix.Symlinkat(l[1], dev, l[0]); err != nil {
			return errorf("symlink", "/dev/"+l[0], err)
		}
	}
	if err := t.mountIn(dev, "shm", "tmpfs", [][2]string{{"mode", "1777"}}, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV); err != nil {
		return err
	}
	pts := [][2]string{{"ptmxmode", "0666"}, {"mode", "0620"}}
	if ttyGID >= 0 && !t.userns { // the host's tty group is not mapped in a user namespace
		pts = append(pts, [2]string{"gid", strconv.Itoa(ttyGID)})
	}
	return t.mountIn(dev, "pts", "devpts", pts, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NOEXEC)
}

// mountIn mounts a fresh file system of type fstype on a new directory name
// under dir.
func (t *tree) mountIn(dir int, name, fstype string, opts [][2]string, attrs int) error {
	if err := unix.Mkdirat(dir, name, 0755); err != nil {
		return errorf("mkdir", "/dev/"+name, err)
	}
	fs, err := unix.Fsopen(fstype, unix.FSOPEN_CLOEXEC)
	if err != nil {
		return errorf("mount "+fstype, "/dev/"+name, err)
	}
	defer unix.Close(fs)
	for _, o := range opts {
		if err := unix.FsconfigSetString(fs, o[0], o[1]); err != nil {
			return errorf("mount "+fstype+" "+o[0]+"="+o[1], "/dev/"+name, err)
		}
	}
	if err := unix.FsconfigCreate(fs); err != nil {
		return errorf("mount "+fstype, "/dev/"+name, err)
	}
	m, err := unix.Fsmount(fs, unix.FSMOUNT_CLOEXEC, attrs)
	if err != nil {
		return errorf("mount "+fstype, "/dev/"+name, err)
	}
	defer unix.Close(m)
	// Safe: a fresh file system on a directory we just made in our own tmpfs.
	if err := unix.MoveMount(m, "", dir, name, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return errorf("mount "+fstype, "/dev/"+name, err)
	}
	return nil
}

// ttyGID is the host's tty group, owner of new pseudo-terminals; -1 if unknown.
var ttyGID = -1

// pivot makes the new root the thread's root and detaches the old one.
func (t *tree) pivot() error {
	if err := unix.Fchdir(t.root); err != nil {
		return errorf("chdir", "new root", err)
	}
	// Safe: only this thread's private mount namespace changes; the old root
	// is detached so nothing of the host stays reachable but what was bound.
	if err := unix.PivotRoot(".", "."); err != nil {
		return errorf("pivot_root", t.plan.Rootfs, err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return errorf("unmount", "old root", err)
	}
	return unix.Chdir("/")
}

// mountProc mounts the PID namespace of pid (stopped by ptrace right after
// its execve) on /proc inside the new root.
func (t *tree) mountProc(pid int) error {
	ns, err := unix.Openat(t.procDir, strconv.Itoa(pid)+"/ns/pid", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return errorf("open", "/proc/"+strconv.Itoa(pid)+"/ns/pid", err)
	}
	defer unix.Close(ns)
	fs, err := unix.Fsopen("proc", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return errorf("mount proc", "/proc", err)
	}
	defer unix.Close(fs)
	if err := unix.FsconfigSetFd(fs, "pidns", ns); err != nil {
		return errorf("mount proc pidns", "/proc", err)
	}
	if err := unix.FsconfigCreate(fs); err != nil {
		return errorf("mount proc", "/proc", err)
	}
	m, err := unix.Fsmount(fs, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC)
	if err != nil {
		return errorf("mount proc", "/proc", err)
	}
	defer unix.Close(m)
	dst, err := openIn(t.root, "/proc")
	if err != nil {
		return errorf("mount destination", "/proc", err)
	}
	defer unix.Close(dst)
	// Safe: a fresh procfs of the sandbox's own PID namespace, on /proc
	// resolved inside the new root.
	if err := unix.MoveMount(m, "", dst, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
		return errorf("mount proc on", "/proc", err)
	}
	return nil
}

// readTTYGroup finds the tty group without reading /etc/group on the hot
// path: the group of the host's /dev/ptmx's sibling devpts is tty.
func readTTYGroup() {
	var st unix.Stat_t
	if unix.Stat("/dev/tty", &st) == nil && st.Gid != 0 {
		ttyGID = int(st.Gid)
	}
}
