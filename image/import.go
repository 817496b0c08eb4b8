package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Options tune Import.
type Options struct {
	// Image picks one image, NAME[:TAG] as docker names it, of an archive
	// that holds several.
	Image string
	// Preserve keeps owners, modes, setuid/setgid bits and device nodes as
	// in the image. Only root can do that: the caller sets it when the real
	// uid is 0. Otherwise everything belongs to the caller, setuid/setgid
	// bits and device nodes are dropped (and counted in Result.Dropped).
	Preserve bool
	// MaxEntries bounds the tar entries of the whole import, all layers
	// together; 0 means DefaultMaxEntries.
	MaxEntries int
	// Progress, when not nil, is told how the import advances.
	Progress Progress
	// Stdin is what SRC "-" reads; nil means os.Stdin.
	Stdin io.Reader
}

// Result says what was imported.
type Result struct {
	Format  string // "docker-save", "oci", "rootfs" or "squashfs"
	Image   string // the image's name, when the archive names it
	Layers  int    // layers applied (1 for a rootfs or squashfs)
	Dropped Dropped
}

// Dropped counts what an unprivileged import left out of the image.
type Dropped struct {
	Devices int // character and block device nodes (and hardlinks to them)
	Setid   int // entries whose setuid or setgid bit was cleared
	Xattrs  int // extended attributes not set (privileged, or unsupported here)
	Other   int // entries of a type a file system cannot hold (sockets...)
}

// String is a one-line summary, "" when nothing was dropped.
func (d Dropped) String() string {
	var parts []string
	add := func(n int, one, many string) {
		switch {
		case n == 1:
			parts = append(parts, "1 "+one)
		case n > 1:
			parts = append(parts, fmt.Sprintf("%d %s", n, many))
		}
	}
	add(d.Devices, "device node", "device nodes")
	add(d.Setid, "setuid/setgid bit", "setuid/setgid bits")
	add(d.Xattrs, "extended attribute", "extended attributes")
	add(d.Other, "unsupported entry", "unsupported entries")
	if parts == nil {
		return ""
	}
	return "dropped " + strings.Join(parts, ", ")
}

// Import unpacks the image src (a path, or "-" for Options.Stdin) into the
// directory dir, which must not exist or be empty. It unpacks into a
// temporary sibling of dir and renames it to dir at the end: on any error,
// including a cancelled ctx, nothing is left behind. Nothing is ever
// written outside dir. Import itself needs no privilege and takes none:
// it reads src and writes dir with the rights of the process.
func Import(ctx context.Context, src, dir string, o Options) (*Result, error) {
	res, err := importInto(ctx, src, filepath.Clean(dir), o)
	if err != nil {
		return nil, fmt.Errorf("import %q: %w", src, err)
	}
	return res, nil
}

func importInto(ctx context.Context, src, dir string, o Options) (res *Result, err error) {
	if err := checkDest(dir); err != nil {
		return nil, err
	}
	st, err := newStage(dir)
	if err != nil {
		return nil, err
	}
	im := &importer{ctx: ctx, o: o, dest: dir, st: st, a: newApplier(st.root, o.Preserve, o.MaxEntries), prog: o.Progress}
	defer func() {
		if err != nil {
			im.st.abort()
		}
	}()
	if im.prog == nil {
		im.prog = nopProgress{}
	}
	res, err = im.run(src)
	im.prog.Done(err)
	if err != nil {
		return nil, err
	}
	if err := im.sidecar(); err != nil {
		return nil, err
	}
	if err := im.a.finish(); err != nil {
		return nil, err
	}
	if err := im.st.commit(dir); err != nil {
		return nil, err
	}
	res.Dropped = im.a.dropped
	return res, nil
}

// checkDest refuses a destination that exists and is not an empty
// directory, before any work (the final rename checks again).
func checkDest(dir string) error {
	if _, err := os.Stat(filepath.Dir(dir)); err != nil {
		return fmt.Errorf("destination %q: %w", dir, unwrapPath(err))
	}
	fi, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("destination %q: %w", dir, unwrapPath(err))
	}
	if !fi.IsDir() {
		return fmt.Errorf("destination %q exists and is not a directory", dir)
	}
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("destination %q: %w", dir, unwrapPath(err))
	}
	defer f.Close()
	if names, _ := f.Readdirnames(1); len(names) > 0 {
		return fmt.Errorf("destination %q exists and is not empty", dir)
	}
	return nil
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// stage is the temporary sibling of the destination that the image is
// unpacked into.
type stage struct {
	path string
	root int // descriptor of the directory: every operation is relative to it
}

func newStage(dir string) (*stage, error) {
	p, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+".import-")
	if err != nil {
		return nil, err
	}
	fd, err := openStage(p)
	if err != nil {
		_ = removeTree(p)
		return nil, &os.PathError{Op: "prepare", Path: p, Err: err}
	}
	return &stage{path: p, root: fd}, nil
}

// openStage opens the new directory p by descriptor and checks that it is
// the process's own: in a parent others may write, p could have been
// swapped for a symlink (O_NOFOLLOW refuses it) or for their directory.
// mkdir in a setgid directory inherits its group and setgid bit: the tree
// gets the process's own group and no setgid bit instead.
func openStage(p string) (int, error) {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	var st unix.Stat_t
	err = unix.Fstat(fd, &st)
	if err == nil && int(st.Uid) != os.Geteuid() {
		err = errors.New("not ours: replaced by another user")
	}
	if err == nil {
		err = unix.Fchown(fd, -1, os.Getegid())
	}
	if err == nil {
		err = unix.Fchmod(fd, 0o700)
	}
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

func (s *stage) close() {
	if s.root >= 0 {
		unix.Close(s.root)
		s.root = -1
	}
}

// abort removes the partly unpacked tree.
func (s *stage) abort() {
	s.close()
	_ = removeTree(s.path)
}

// commit renames the tree to dir. rename(2) replaces only an empty
// directory (os.Rename refuses any directory), so a dir that filled up
// meanwhile is never clobbered.
func (s *stage) commit(dir string) error {
	s.close()
	if err := unix.Renameat(unix.AT_FDCWD, s.path, unix.AT_FDCWD, dir); err != nil {
		return fmt.Errorf("destination %q: %w", dir, err)
	}
	return nil
}
