package image

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// Whiteout markers of the OCI image layer format (inherited from aufs).
const (
	whiteoutPrefix = ".wh."
	whiteoutMeta   = ".wh..wh."
	opaqueMarker   = ".wh..wh..opq"
)

// DefaultMaxEntries bounds the number of tar entries of one import, all
// layers together: a small hostile archive must not be able to make
// millions of inodes. Real images stay far below it (a full Debian with
// build tools has about 100 000 files).
const DefaultMaxEntries = 2_000_000

// applier unpacks tar layers, in order, into the directory root. Every
// path is resolved beneath root by descriptor (openBeneath); whatever is at
// a path is removed before something new is made there, and new files are
// created with O_EXCL|O_NOFOLLOW, so nothing is ever written through a link
// or outside root.
type applier struct {
	root     int  // descriptor of the directory being built
	preserve bool // keep owners, setuid/setgid bits, device nodes (real root)
	max      int  // entries allowed, all layers together
	entries  int

	seen    map[string]bool    // paths the current layer wrote, for opaque directories
	dirs    map[string]dirMeta // directory modes and times, set at the end
	rootDir *dirMeta           // the archive's "." entry, if any
	devices map[string]bool    // dropped device nodes, for hardlinks to them
	dropped Dropped
}

// dirMeta is what is applied to a directory once everything is unpacked:
// while unpacking, it stays writable for the caller.
type dirMeta struct {
	mode     uint32
	uid, gid int
	times    []unix.Timespec
}

func newApplier(root int, preserve bool, max int) *applier {
	if max <= 0 {
		max = DefaultMaxEntries
	}
	return &applier{root: root, preserve: preserve, max: max,
		dirs: map[string]dirMeta{}, devices: map[string]bool{}}
}

// applyTar unpacks one layer, applying its whiteouts to what the layers
// before it made.
func (a *applier) applyTar(ctx context.Context, r io.Reader) error {
	a.seen = map[string]bool{}
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("tar: %w", err)
		}
		if err := a.entry(hdr, &ctxReader{ctx: ctx, r: tr}); err != nil {
			return fmt.Errorf("unpack %q: %w", hdr.Name, err)
		}
	}
}

// cleanName turns a tar entry's name into a clean path relative to the
// root ("" for the root itself), refusing what could point elsewhere.
func cleanName(unsafePath string) (string, error) {
	switch {
	case unsafePath == "":
		return "", errors.New("empty name")
	case strings.HasPrefix(unsafePath, "/"):
		return "", errors.New("absolute path")
	case strings.IndexByte(unsafePath, 0) >= 0:
		return "", errors.New("NUL byte in name")
	}
	for _, c := range strings.Split(unsafePath, "/") {
		if c == ".." {
			return "", errors.New(`".." in path`)
		}
	}
	p := path.Clean(unsafePath)
	if p == "." {
		return "", nil
	}
	return p, nil
}

// splitName splits a clean name into its directory ("" for the root) and
// last component.
func splitName(name string) (dir, base string) {
	i := strings.LastIndexByte(name, '/')
	if i < 0 {
		return "", name
	}
	return name[:i], name[i+1:]
}

func (a *applier) entry(hdr *tar.Header, r io.Reader) error {
	name, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil
	}
	if a.entries++; a.entries > a.max {
		return fmt.Errorf("more than %d entries, the limit of one import", a.max)
	}
	if name == "" {
		return a.rootEntry(hdr)
	}
	dir, base := splitName(name)
	if strings.HasPrefix(base, whiteoutPrefix) {
		return a.whiteout(dir, base)
	}
	a.markSeen(name)
	pfd, err := a.parent(dir)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	// A dropped device node of this name (node and hardlink record it
	// again if this entry is one) is replaced by whatever comes now. (One
	// inside a directory removed since stays recorded: a hardlink to it is
	// then dropped as well, rather than refused.)
	delete(a.devices, name)
	return a.create(pfd, name, base, hdr, r)
}

// markSeen records name and its parents as written by this layer.
func (a *applier) markSeen(name string) {
	for p := name; p != "" && !a.seen[p]; p, _ = splitName(p) {
		a.seen[p] = true
	}
}

func (a *applier) create(pfd int, name, base string, hdr *tar.Header, r io.Reader) error {
	switch hdr.Typeflag {
	case tar.TypeDir:
		return a.mkdir(pfd, name, base, hdr)
	case tar.TypeReg, tar.TypeCont:
		if isSparse(hdr) {
			// archive/tar expands holes into zeros: a few bytes of
			// header could make a file of any size.
			return errors.New("sparse file (tar --sparse): not supported")
		}
		return a.file(pfd, name, base, hdr, r)
	case tar.TypeGNUSparse:
		return errors.New("sparse file (tar --sparse): not supported")
	case tar.TypeSymlink:
		return a.symlink(pfd, name, base, hdr)
	case tar.TypeLink:
		return a.hardlink(pfd, name, base, hdr)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		return a.node(pfd, name, base, hdr)
	}
	a.dropped.Other++
	return nil
}

// isSparse tells a PAX sparse file (GNU tar's formats 0.0 to 1.0).
func isSparse(hdr *tar.Header) bool {
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// parent opens the directory dir beneath the root, making missing
// directories (mode 0755) on the way, as tar does.
func (a *applier) parent(dir string) (int, error) {
	fd, err := openBeneath(a.root, dir, unix.O_PATH|unix.O_DIRECTORY)
	if !errors.Is(err, unix.ENOENT) || dir == "" {
		return fd, err
	}
	up, base := splitName(dir)
	pfd, err := a.parent(up)
	if err != nil {
		return -1, err
	}
	err = unix.Mkdirat(pfd, base, 0o700)
	if err == nil {
		// Safe to follow: just made by mkdirat in our private tree.
		err = unix.Fchmodat(pfd, base, 0o755, 0)
	} else if errors.Is(err, unix.EEXIST) {
		err = nil
	}
	unix.Close(pfd)
	if err != nil {
		return -1, err
	}
	return openBeneath(a.root, dir, unix.O_PATH|unix.O_DIRECTORY)
}

// clear removes whatever is at name, a directory with all it holds, and
// forgets the modes recorded for the directories removed.
func (a *applier) clear(pfd int, name, base string) error {
	dir, _ := splitName(name)
	return removeAt(pfd, base, func(rel string) {
		if len(a.dirs) > 0 {
			delete(a.dirs, path.Join(dir, rel))
		}
	})
}

// whiteout applies a whiteout entry: ".wh.NAME" removes NAME from the
// layers below; ".wh..wh..opq" hides everything they had in its directory.
func (a *applier) whiteout(dir, base string) error {
	if base == opaqueMarker {
		return a.opaque(dir)
	}
	if strings.HasPrefix(base, whiteoutMeta) {
		return nil // other aufs metadata: nothing to do
	}
	victim := strings.TrimPrefix(base, whiteoutPrefix)
	if victim == "" || victim == "." || victim == ".." {
		return errors.New("not a valid whiteout")
	}
	pfd, err := openBeneath(a.root, dir, unix.O_PATH|unix.O_DIRECTORY)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return nil // nothing there to hide
	}
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	return a.clear(pfd, path.Join(dir, victim), victim)
}

// opaque removes from dir everything this layer did not write.
func (a *applier) opaque(dir string) error {
	fd, err := openBeneath(a.root, dir, unix.O_PATH|unix.O_DIRECTORY)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return nil
	}
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return a.clearUnseen(fd, dir)
}

func (a *applier) clearUnseen(fd int, dir string) error {
	d, err := openDir(fd, "")
	if err != nil {
		return err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return err
	}
	for _, n := range names {
		p := path.Join(dir, n)
		if !a.seen[p] {
			if err := a.clear(fd, p, n); err != nil {
				return err
			}
			continue
		}
		if st, ok, _ := lstatAt(fd, n); ok && isDir(&st) {
			sub, err := openBeneath(fd, n, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW)
			if err != nil {
				return err
			}
			err = a.clearUnseen(sub, p)
			unix.Close(sub)
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// finish sets the directories' final modes, owners and times, deepest
// first, once nothing more will be written into them.
func (a *applier) finish() error {
	names := make([]string, 0, len(a.dirs))
	for n := range a.dirs {
		names = append(names, n)
	}
	sortDeepestFirst(names)
	for _, n := range names {
		if err := a.setDir(n, a.dirs[n]); err != nil {
			return fmt.Errorf("unpack %q: %w", n, err)
		}
	}
	m := dirMeta{mode: 0o755, uid: -1, gid: -1}
	if a.rootDir != nil {
		m = *a.rootDir
	}
	return a.setDirAt(a.root, ".", m)
}

func (a *applier) setDir(name string, m dirMeta) error {
	dir, base := splitName(name)
	pfd, err := openBeneath(a.root, dir, unix.O_PATH|unix.O_DIRECTORY)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return nil // replaced by a later layer
	}
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	return a.setDirAt(pfd, base, m)
}
