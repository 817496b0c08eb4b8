package sandbox

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/selfdock/selfdock/internal/procfs"
	"golang.org/x/sys/unix"
)

// With --overlay the root (and each --map) appears writable: an overlayfs
// over it whose upper layer is a tmpfs that vanishes with the instance.
// overlayfs does not cross mount points, so the root's submounts are bound
// again, read-only, on top of the overlay.

// overlayUpper makes the detached tmpfs that holds every upper layer.
func (t *tree) overlayUpper() error {
	uid, gid := t.owner()
	fd, err := t.tmpfs(t.plan.OverlaySize, 0o755, uid, gid)
	if err != nil {
		return errorf("overlay tmpfs", "--overlay-size", err)
	}
	t.upper = fd
	return nil
}

// layer stacks a writable overlay over the attached mount lower, at dst
// (the same place), with its upper layer in the directory name of the
// upper tmpfs. It returns the overlay's mount.
func (t *tree) layer(lower, dst int, name string) (int, error) {
	up, work, err := t.upperDirs(lower, name)
	if err != nil {
		return -1, err
	}
	defer unix.Close(up)
	defer unix.Close(work)
	fs, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("overlay: %w", err)
	}
	defer unix.Close(fs)
	back, err := t.inProc()
	if err != nil {
		return -1, err
	}
	defer back()
	if err := overlayLayer(fs, "lowerdir+", "lowerdir", lower); err != nil {
		return -1, err
	}
	if err := overlayLayer(fs, "upperdir", "upperdir", up); err != nil {
		return -1, err
	}
	if err := overlayLayer(fs, "workdir", "workdir", work); err != nil {
		return -1, err
	}
	if t.userns {
		// trusted.* xattrs need CAP_SYS_ADMIN in the initial namespace.
		if err := unix.FsconfigSetFlag(fs, "userxattr"); err != nil {
			return -1, fmt.Errorf("overlay userxattr: %w", err)
		}
	}
	if err := t.createOverlay(fs); err != nil {
		if t.userns {
			return -1, fmt.Errorf("overlay: %w (in user namespace mode the kernel refuses a lower layer with submounts, such as the host's /: use a --rootfs directory)", err)
		}
		return -1, fmt.Errorf("overlay: %w", err)
	}
	m, err := unix.Fsmount(fs, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV)
	if err != nil {
		return -1, fmt.Errorf("overlay: %w", err)
	}
	// Safe: a nosuid,nodev overlay whose writes go to our own tmpfs, over
	// a mount the sandbox already shows, at the same place.
	if err := unix.MoveMount(m, "", dst, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
		unix.Close(m)
		return -1, fmt.Errorf("overlay: %w", err)
	}
	if id, err := mountID(m); err == nil {
		t.overlays[id] = true
	}
	return m, nil
}

// createOverlay creates the overlay's superblock. overlayfs keeps its
// creator's credentials for the work it does in the upper layer (copy-up,
// whiteouts), so the creator is root with its file capabilities, not the
// caller's fsuid: the caller's own access to the merged files is still
// checked first, and the upper layer is our tmpfs, discarded at the end.
func (t *tree) createOverlay(fs int) error {
	if !t.userns {
		prev, _ := unix.SetfsuidRetUid(0)
		defer unix.SetfsuidRetUid(prev)
	}
	return unix.FsconfigCreate(fs)
}

// overlayLayersByPath, set at build time only (-ldflags -X ...=1, by a
// test), makes overlayLayer take the path of older kernels on this one.
var overlayLayersByPath string

// overlayLayer passes a layer by descriptor (Linux 6.13+), or else by its
// thread-self/fd path, relative: layer makes the host's /proc this thread's
// working directory first, as "/proc" after the pivot may be a user's.
func overlayLayer(fs int, key, oldKey string, fd int) error {
	if overlayLayersByPath != "1" {
		if err := unix.FsconfigSetFd(fs, key, fd); err == nil {
			return nil
		}
	}
	if err := unix.FsconfigSetString(fs, oldKey, "thread-self/fd/"+strconv.Itoa(fd)); err != nil {
		return fmt.Errorf("overlay %s: %w", oldKey, err)
	}
	return nil
}

// inProc makes the host's /proc (t.procDir) the calling thread's working
// directory, where overlayLayer's relative paths resolve (an older kernel
// resolves them at fsconfig or at create), and returns how to go back.
func (t *tree) inProc() (func(), error) {
	here, err := unix.Open(".", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("overlay: %w", err)
	}
	if err := unix.Fchdir(t.procDir); err != nil {
		unix.Close(here)
		return nil, fmt.Errorf("overlay: chdir /proc: %w", err)
	}
	return func() {
		unix.Fchdir(here)
		unix.Close(here)
	}, nil
}

// upperDirs makes name/u and name/w in the upper tmpfs; u takes the owner
// and mode of lower's root, which the overlay's root shows.
func (t *tree) upperDirs(lower int, name string) (int, int, error) {
	if !t.userns {
		// Our own fresh tmpfs, root-owned: create its directories as root.
		prev, _ := unix.SetfsuidRetUid(0)
		defer unix.SetfsuidRetUid(prev)
	}
	var st unix.Stat_t
	if err := unix.Fstat(lower, &st); err != nil {
		return -1, -1, fmt.Errorf("overlay: %w", err)
	}
	for _, d := range []string{name, name + "/u", name + "/w"} {
		if err := unix.Mkdirat(t.upper, d, 0o755); err != nil {
			return -1, -1, fmt.Errorf("overlay: mkdir %s: %w", d, err)
		}
	}
	if !t.userns {
		unix.Fchownat(t.upper, name+"/u", int(st.Uid), int(st.Gid), 0)
		unix.Fchmodat(t.upper, name+"/u", st.Mode&0o7777, 0)
	}
	up, err := unix.Openat(t.upper, name+"/u", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, -1, fmt.Errorf("overlay: %w", err)
	}
	work, err := unix.Openat(t.upper, name+"/w", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(up)
		return -1, -1, fmt.Errorf("overlay: %w", err)
	}
	return up, work, nil
}

// overlayRoot puts the overlay over the attached root and binds the root's
// submounts (subs, their mount points) again, read-only, on top of it.
func (t *tree) overlayRoot(subs []submount) error {
	ov, err := t.layer(t.root, t.root, "root")
	if err != nil {
		return errorf("overlay", t.plan.Rootfs, err)
	}
	below := t.root
	t.root = ov
	defer unix.Close(below)
	for _, sm := range subs {
		if err := t.rebind(below, ov, sm); err != nil {
			return err
		}
	}
	return nil
}

// overlayMap puts an overlay over the attached read-only map at fd. overlayfs
// does not cross mount points, so the map's submounts are bound again,
// read-only, on top of it, as overlayRoot does for the root: the overlay
// alone would show what lies hidden under them in the source's file system
// (which no user namespace lets its user see) and hide what they show.
func (t *tree) overlayMap(fd int, name string) error {
	subs, err := submounts(t.procDir, fd)
	if err != nil {
		return err
	}
	ov, err := t.layer(fd, fd, name)
	if err != nil {
		return err
	}
	defer unix.Close(ov)
	for _, sm := range subs {
		if err := t.rebind(fd, ov, sm); err != nil {
			return err
		}
	}
	return nil
}

// rebind binds the submount sm (its path relative to both) of the tree
// below onto the same path in the overlay above it, read-only. The path was
// read earlier, and the directories on it are the host's: the source must
// still be the root of the very mount listed, and the destination is
// reached only through directories that no one but root and the caller may
// rename (in a user namespace, where the overlay has only the caller's
// access, by the path as it is).
func (t *tree) rebind(below, above int, sm submount) error {
	mp := sm.mp
	src, err := openIn(below, mp)
	if err != nil {
		return errorf("overlay submount", mp, err)
	}
	defer unix.Close(src)
	// The path was read earlier and its directories may have been renamed
	// since: it must still lead to the root of the very mount listed.
	var stx unix.Statx_t
	if err := unix.Statx(src, "", unix.AT_EMPTY_PATH, unix.STATX_MNT_ID, &stx); err != nil {
		return errorf("overlay submount", mp, err)
	}
	if stx.Mnt_id != sm.id || stx.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT == 0 || stx.Attributes&unix.STATX_ATTR_MOUNT_ROOT == 0 {
		return fmt.Errorf("overlay submount %q: the path no longer leads to mount %d", mp, sm.id)
	}
	// Safe: a copy of a mount the sandbox shows already, made read-only.
	c, err := unix.OpenTree(src, "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_EMPTY_PATH)
	if err != nil {
		return errorf("overlay submount", mp, err)
	}
	defer unix.Close(c)
	if err := setattr(c, unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV); err != nil {
		return errorf("overlay submount", mp, err)
	}
	var dst int
	if t.userns {
		dst, err = openIn(above, mp)
	} else {
		dst, err = openStable(above, mp, t.id.uid)
	}
	if err != nil {
		return errorf("overlay submount", mp, err)
	}
	defer unix.Close(dst)
	if err := unix.MoveMount(c, "", dst, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
		return errorf("overlay submount", mp, err)
	}
	return nil
}

// submount is a mount below the root: its id (of the top mount, where
// several are stacked on one point) and its path relative to the root.
type submount struct {
	id uint64
	mp string
}

// submounts lists, parents first, the mount points of the mounts below the
// attached mount at root, relative to it ("/" is root itself). proc is the
// host's /proc, opened before the namespaces: after the pivot, "/proc" of
// this thread would be whatever a user-owned --rootfs has there.
func submounts(proc, root int) ([]submount, error) {
	id, err := mountID(root)
	if err != nil {
		return nil, err
	}
	mi, err := unix.Openat(proc, "thread-self/mountinfo", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("mountinfo: %w", err)
	}
	f := os.NewFile(uintptr(mi), "mountinfo")
	defer f.Close()
	type entry struct {
		id uint64
		mp string
	}
	children := map[uint64][]entry{}
	rootMP, found := "", false // root's own mount point
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mid, _ := strconv.ParseUint(fields[0], 10, 64)
		parent, _ := strconv.ParseUint(fields[1], 10, 64)
		mp := procfs.Unescape(fields[4])
		if mid == id {
			rootMP, found = strings.TrimSuffix(mp, "/"), true
		} else {
			children[parent] = append(children[parent], entry{mid, mp})
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("mount %d not in this namespace", id)
	}
	var out []submount
	for queue := append([]entry(nil), children[id]...); len(queue) > 0; queue = queue[1:] {
		e := queue[0]
		rel, ok := strings.CutPrefix(e.mp, rootMP+"/")
		if !ok {
			return nil, fmt.Errorf("submount %q is not below %q", e.mp, rootMP)
		}
		// A mount stacked on this one's root covers it: the path leads
		// to the top of the stack.
		top := e
		for again := true; again; {
			again = false
			for _, c := range children[top.id] {
				if c.mp == top.mp {
					top, again = c, true
					break
				}
			}
		}
		out = append(out, submount{top.id, "/" + rel})
		queue = append(queue, children[e.id]...)
	}
	return out, nil
}

// openStable opens p below root one component at a time, following no
// symbolic link, through directories only root or uid may change: a name
// that others may rename could lead elsewhere than it did when the
// submounts were listed, leaving the real mount point uncovered in the
// overlay. (uid, the caller, can steer it within their own directories,
// uncovering what lies under a mount point there only.)
func openStable(root int, p string, uid uint32) (int, error) {
	fd, err := unix.Openat(root, ".", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	for _, c := range strings.Split(strings.Trim(p, "/"), "/") {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return -1, err
		}
		// In a sticky directory (/tmp) others may not rename an entry
		// of root's or the caller's.
		sticky, shared := st.Mode&unix.S_ISVTX != 0, st.Mode&0o022 != 0
		if (st.Uid != 0 && st.Uid != uid) || (shared && !sticky) || c == ".." || c == "." || c == "" {
			unix.Close(fd)
			return -1, errors.New("a directory on the path may be changed by others than root and you")
		}
		next, err := unix.Openat2(fd, c, &unix.OpenHow{Flags: unix.O_PATH | unix.O_NOFOLLOW | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS})
		unix.Close(fd)
		if err != nil {
			return -1, err
		}
		fd = next
		if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT == unix.S_IFLNK {
			unix.Close(fd)
			return -1, errors.New("a symbolic link on the path")
		}
		if shared && st.Uid != 0 && st.Uid != uid {
			unix.Close(fd)
			return -1, errors.New("an entry of a sticky directory on the path is neither root's nor yours")
		}
	}
	return fd, nil
}
