package sandbox

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// openUser opens unsafePath as an O_PATH descriptor with the calling thread's
// file access, which is the caller's (setfsuid), refusing magic links such as
// /proc/self/root that would jump out of the caller's view.
func openUser(unsafePath string, dir bool) (int, error) {
	flags := uint64(unix.O_PATH | unix.O_CLOEXEC)
	if dir {
		flags |= unix.O_DIRECTORY
	}
	fd, err := unix.Openat2(unix.AT_FDCWD, unsafePath, &unix.OpenHow{Flags: flags, Resolve: unix.RESOLVE_NO_MAGICLINKS})
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: unsafePath, Err: err}
	}
	return fd, nil
}

// openIn resolves an absolute destination inside root as if root were "/"
// (RESOLVE_IN_ROOT): a symlink in a user-owned root file system can never
// point a mount outside it.
func openIn(root int, dest string) (int, error) {
	return unix.Openat2(root, dest, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
}

// fdPath is the kernel's name of what fd refers to, for messages and for
// checks that fail closed on "?". It is read, never resolved again.
func fdPath(fd int) string {
	p, err := realPath(fd)
	if err != nil {
		return "?"
	}
	return p
}

// realPath is the kernel's absolute name of what fd refers to, for policy
// checks, and only if that name leads back to it: a name the kernel cannot
// give (longer than PATH_MAX, which a user can build with nested symlinks),
// or one that names something else from this root (a file reached through
// another mount namespace, as in /proc/PID/cwd of a process in one, is named
// relative to that namespace's root) is an error: the caller must refuse
// rather than check the wrong name.
func realPath(fd int) (string, error) {
	p, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("not reachable from this root: %q", p)
	}
	again, err := unix.Openat2(unix.AT_FDCWD, p, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return "", fmt.Errorf("%q does not lead back to it: %w", p, err)
	}
	defer unix.Close(again)
	if !sameFile(fd, again) {
		return "", fmt.Errorf("%q names something else from this root", p)
	}
	return p, nil
}

// sameFile reports whether a and b are the same file on the same mount.
func sameFile(a, b int) bool {
	var x, y unix.Statx_t
	const mask = unix.STATX_INO | unix.STATX_MNT_ID
	if unix.Statx(a, "", unix.AT_EMPTY_PATH, mask, &x) != nil || unix.Statx(b, "", unix.AT_EMPTY_PATH, mask, &y) != nil {
		return false
	}
	return x.Ino == y.Ino && x.Dev_major == y.Dev_major && x.Dev_minor == y.Dev_minor && x.Mnt_id == y.Mnt_id
}

// under reports whether path is dir or lies below it.
func under(path, dir string) bool {
	if dir == "/" {
		return true
	}
	return path == dir || strings.HasPrefix(path, dir+"/")
}

// isDir tells whether fd refers to a directory.
func isDir(fd int) (bool, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return false, err
	}
	return st.Mode&unix.S_IFMT == unix.S_IFDIR, nil
}

// mountID is the id of the mount fd lies on.
func mountID(fd int) (uint64, error) {
	var stx unix.Statx_t
	if err := unix.Statx(fd, "", unix.AT_EMPTY_PATH, unix.STATX_MNT_ID, &stx); err != nil {
		return 0, err
	}
	return stx.Mnt_id, nil
}

// errorf builds "op "path": cause" errors.
func errorf(op, path string, err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return fmt.Errorf("%s %q: %w", op, path, err)
}
