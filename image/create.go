package image

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// The functions here make one entry in the directory pfd (opened beneath
// the root by applier.parent). Each first removes what is there, so a
// symlink or hardlink left by an earlier entry is replaced, never written
// through.

func (a *applier) mkdir(pfd int, name, base string, hdr *tar.Header) error {
	st, exists, err := lstatAt(pfd, base)
	if err != nil {
		return err
	}
	if exists && !isDir(&st) {
		if err := a.clear(pfd, name, base); err != nil {
			return err
		}
		exists = false
	}
	if !exists {
		if err := unix.Mkdirat(pfd, base, 0o700); err != nil {
			return err
		}
	}
	fd, err := unix.Openat(pfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	m := a.dirMeta(hdr)
	if err := a.chown(fd, m.uid, m.gid); err != nil {
		return err
	}
	a.setXattrs(fd, hdr)
	// Writable by its owner until finish sets the image's mode.
	if err := unix.Fchmod(fd, m.mode|0o700); err != nil {
		return err
	}
	a.dirs[name] = m
	return nil
}

func (a *applier) file(pfd int, name, base string, hdr *tar.Header, r io.Reader) error {
	if err := a.clear(pfd, name, base); err != nil {
		return err
	}
	fd, err := unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	if _, err := io.Copy(f, r); err != nil {
		return err
	}
	// chown before chmod: chown clears setuid and setgid bits; xattrs
	// after chown, which clears security.capability.
	if err := a.chown(fd, hdr.Uid, hdr.Gid); err != nil {
		return err
	}
	a.setXattrs(fd, hdr)
	if err := unix.Fchmod(fd, a.mode(hdr)); err != nil {
		return err
	}
	return setTimes(pfd, base, hdr)
}

func (a *applier) symlink(pfd int, name, base string, hdr *tar.Header) error {
	if hdr.Linkname == "" {
		return errors.New("symlink with an empty target")
	}
	if err := a.clear(pfd, name, base); err != nil {
		return err
	}
	// The target is data, not resolved here: inside a sandbox it resolves
	// in the new root. Writing through it later is refused by openBeneath.
	if err := unix.Symlinkat(hdr.Linkname, pfd, base); err != nil {
		return err
	}
	if a.preserve {
		if err := unix.Fchownat(pfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
	}
	return setTimes(pfd, base, hdr)
}

func (a *applier) hardlink(pfd int, name, base string, hdr *tar.Header) error {
	target, err := cleanName(hdr.Linkname)
	if err != nil {
		return fmt.Errorf("hardlink to %q: %w", hdr.Linkname, err)
	}
	if a.devices[target] {
		a.devices[name] = true // another name of a dropped device node
		a.dropped.Devices++
		return nil
	}
	switch target {
	case "":
		return fmt.Errorf("hardlink to %q: the root", hdr.Linkname)
	case name:
		return nil // a link to itself: nothing to do
	}
	tdir, tbase := splitName(target)
	tfd, err := openBeneath(a.root, tdir, unix.O_PATH|unix.O_DIRECTORY)
	if err == nil {
		_, ok, _ := lstatAt(tfd, tbase)
		if !ok {
			err = unix.ENOENT
		}
		defer unix.Close(tfd)
	}
	if err != nil {
		return fmt.Errorf("hardlink to %q: %w", hdr.Linkname, err)
	}
	if err := a.clear(pfd, name, base); err != nil {
		return err
	}
	// Without AT_SYMLINK_FOLLOW a final symlink is linked itself, never
	// its target: the new name can only be another name of an entry
	// already in the tree.
	if err := unix.Linkat(tfd, tbase, pfd, base, 0); err != nil {
		return fmt.Errorf("hardlink to %q: %w", hdr.Linkname, err)
	}
	return nil
}

// node makes a FIFO, or a device node when preserving (real root): a
// caller without privilege gets none, as mknod would refuse it anyway.
func (a *applier) node(pfd int, name, base string, hdr *tar.Header) error {
	mode := a.mode(hdr)
	if hdr.Typeflag != tar.TypeFifo && !a.preserve {
		a.dropped.Devices++
		a.devices[name] = true
		return nil
	}
	if err := a.clear(pfd, name, base); err != nil {
		return err
	}
	var err error
	switch hdr.Typeflag {
	case tar.TypeFifo:
		err = unix.Mkfifoat(pfd, base, 0o600)
	case tar.TypeChar:
		err = unix.Mknodat(pfd, base, unix.S_IFCHR|0o600, int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))))
	default:
		err = unix.Mknodat(pfd, base, unix.S_IFBLK|0o600, int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))))
	}
	if err != nil {
		return err
	}
	if a.preserve {
		if err := unix.Fchownat(pfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
	}
	// fchmodat follows a final symlink (fchmodat2's NOFOLLOW needs Linux
	// 6.6), but base was just made by mknodat in our private tree, which
	// only the caller can enter, with the caller's own rights.
	if err := unix.Fchmodat(pfd, base, mode, 0); err != nil {
		return err
	}
	return setTimes(pfd, base, hdr)
}

func (a *applier) rootEntry(hdr *tar.Header) error {
	if hdr.Typeflag != tar.TypeDir {
		return errors.New("the root of the image is not a directory")
	}
	m := a.dirMeta(hdr)
	a.rootDir = &m
	return nil
}

// setDirAt applies m to the directory pfd/base, not following a symlink.
func (a *applier) setDirAt(pfd int, base string, m dirMeta) error {
	fd, err := unix.Openat(pfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
		return nil // replaced by a later layer
	}
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := a.chown(fd, m.uid, m.gid); err != nil {
		return err
	}
	if err := unix.Fchmod(fd, m.mode); err != nil {
		return err
	}
	if m.times == nil {
		return nil
	}
	return unix.UtimesNanoAt(pfd, base, m.times, unix.AT_SYMLINK_NOFOLLOW)
}

func (a *applier) dirMeta(hdr *tar.Header) dirMeta {
	return dirMeta{mode: a.mode(hdr), uid: hdr.Uid, gid: hdr.Gid, times: times(hdr)}
}

// mode is the entry's permission bits; setuid and setgid are dropped (and
// counted) unless preserving.
func (a *applier) mode(hdr *tar.Header) uint32 {
	m := uint32(hdr.Mode) & 0o7777
	if !a.preserve && m&(unix.S_ISUID|unix.S_ISGID) != 0 {
		a.dropped.Setid++
		m &^= unix.S_ISUID | unix.S_ISGID
	}
	return m
}

// chown gives fd the image's owner when preserving; otherwise the file
// stays the caller's, who created it.
func (a *applier) chown(fd, uid, gid int) error {
	if !a.preserve || uid < 0 {
		return nil
	}
	return unix.Fchown(fd, uid, gid)
}

// setXattrs sets the entry's extended attributes (PAX SCHILY.xattr.*):
// all of them when preserving, only user.* otherwise (the others need
// privilege: security.capability would be a file capability). What is
// not set is counted as dropped.
func (a *applier) setXattrs(fd int, hdr *tar.Header) {
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, "SCHILY.xattr.")
		if !ok {
			continue
		}
		if (!a.preserve && !strings.HasPrefix(name, "user.")) || unix.Fsetxattr(fd, name, []byte(v), 0) != nil {
			a.dropped.Xattrs++
		}
	}
}

func times(hdr *tar.Header) []unix.Timespec {
	if hdr.ModTime.IsZero() {
		return nil
	}
	at := hdr.AccessTime
	if at.IsZero() {
		at = hdr.ModTime
	}
	a, errA := unix.TimeToTimespec(at)
	m, errM := unix.TimeToTimespec(hdr.ModTime)
	if errA != nil || errM != nil {
		return nil // out of the kernel's range: leave the time of unpacking
	}
	return []unix.Timespec{a, m}
}

func setTimes(pfd int, base string, hdr *tar.Header) error {
	ts := times(hdr)
	if ts == nil {
		return nil
	}
	return unix.UtimesNanoAt(pfd, base, ts, unix.AT_SYMLINK_NOFOLLOW)
}

// sortDeepestFirst orders paths so that every path comes before its
// parents (reverse lexical order does that: a parent is a prefix).
func sortDeepestFirst(names []string) {
	sort.Sort(sort.Reverse(sort.StringSlice(names)))
}
