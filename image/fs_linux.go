package image

import (
	"errors"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// errEscape is what openat2 reports (EXDEV) when resolving a path would
// leave the directory it started from: through an absolute symlink, a
// relative one that climbs above it, or "..".
var errEscape = errors.New("goes through a symlink that points outside the image")

// openBeneath opens unsafePath relative to the directory fd dirfd without
// ever leaving it: RESOLVE_BENEATH makes the kernel refuse (EXDEV) any
// resolution that would step outside dirfd, whatever the symlinks on the
// way say, and RESOLVE_NO_MAGICLINKS refuses /proc-style links. Nothing is
// re-resolved later by path: callers keep the descriptor.
func openBeneath(dirfd int, unsafePath string, flags int) (int, error) {
	if unsafePath == "" {
		unsafePath = "."
	}
	how := &unix.OpenHow{
		Flags:   uint64(flags | unix.O_CLOEXEC),
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS,
	}
	for range 16 {
		fd, err := unix.Openat2(dirfd, unsafePath, how)
		switch {
		case err == nil:
			return fd, nil
		case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EINTR):
			continue // a concurrent rename; the kernel asks to retry
		case errors.Is(err, unix.EXDEV):
			return -1, errEscape
		}
		return -1, err
	}
	return -1, unix.EAGAIN
}

// lstatAt is fstatat without following a final symlink; ok is false when
// nothing is there.
func lstatAt(dirfd int, name string) (st unix.Stat_t, ok bool, err error) {
	err = unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	if errors.Is(err, unix.ENOENT) {
		return st, false, nil
	}
	return st, err == nil, err
}

func isDir(st *unix.Stat_t) bool { return st.Mode&unix.S_IFMT == unix.S_IFDIR }

// openDir opens the directory dirfd/name (name "" for dirfd itself) for
// reading, never following a final symlink.
func openDir(dirfd int, name string) (*os.File, error) {
	if name == "" {
		name = "."
	}
	const flags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fd, err := unix.Openat(dirfd, name, flags, 0)
	if errors.Is(err, unix.EACCES) {
		// Our own directory with a restrictive mode from the image (this
		// runs as its owner, or as root) that is about to go: open it up.
		// fchmodat follows a symlink, but O_NOFOLLOW said EACCES, not
		// ELOOP, so name is a directory of the tree being unpacked.
		if unix.Fchmodat(dirfd, name, 0o700, 0) == nil {
			fd, err = unix.Openat(dirfd, name, flags, 0)
		}
	}
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), name), nil
}

// removeAt removes dirfd/name and, for a directory, everything below it,
// without following any symlink: each level is opened by descriptor with
// O_NOFOLLOW. removed, when not nil, is told the path (below dirfd) of
// each directory removed. A missing name is not an error.
func removeAt(dirfd int, name string, removed func(dir string)) error {
	if name == "" || name == "." || name == ".." || strings.Contains(name, "/") {
		return unix.EINVAL // only ever one component of our own tree
	}
	err := unix.Unlinkat(dirfd, name, 0)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if !errors.Is(err, unix.EISDIR) && !errors.Is(err, unix.EPERM) {
		return err
	}
	d, err := openDir(dirfd, name)
	if err != nil {
		return err
	}
	// A directory of the image may be 0555: its entries can go only once
	// its owner (this process, or root) may write it.
	_ = unix.Fchmod(int(d.Fd()), 0o700)
	names, err := d.Readdirnames(-1)
	for _, n := range names {
		if err == nil {
			var sub func(string)
			if removed != nil {
				sub = func(dir string) { removed(name + "/" + dir) }
			}
			err = removeAt(int(d.Fd()), n, sub)
		}
	}
	d.Close()
	if err != nil {
		return err
	}
	if err = unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR); errors.Is(err, unix.ENOENT) {
		err = nil
	}
	if err == nil && removed != nil {
		removed(name)
	}
	return err
}

// removeTree removes the directory at path and everything below it, as
// removeAt does.
func removeTree(path string) error {
	parent, base := splitHostPath(path)
	pfd, err := unix.Open(parent, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: parent, Err: err}
	}
	defer unix.Close(pfd)
	if err := removeAt(pfd, base, nil); err != nil {
		return &os.PathError{Op: "remove", Path: path, Err: err}
	}
	return nil
}

func splitHostPath(p string) (dir, base string) {
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return ".", p
	}
	if i == 0 {
		return "/", p[1:]
	}
	return p[:i], p[i+1:]
}
