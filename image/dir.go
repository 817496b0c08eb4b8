package image

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// rootfsDir imports a plain root file system directory: it is read as a
// tar stream (made here, from a walk that never follows a symlink and
// stays on the directory's own file system, as cp -x does) and unpacked
// by the same code as a rootfs tarball, with the same checks. Hard links
// stay links; extended attributes are not copied.
func (im *importer) rootfsDir(path string) (*Result, error) {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writeTree(path, pw)) }()
	defer pr.Close()
	return im.rootfs(pr, 0)
}

// writeTree writes the tree at root to w as a tar stream.
func writeTree(root string, w io.Writer) error {
	var top unix.Stat_t
	if err := unix.Stat(root, &top); err != nil {
		return &os.PathError{Op: "stat", Path: root, Err: err}
	}
	tw := tar.NewWriter(w)
	links := map[[2]uint64]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st, _ := fi.Sys().(*syscall.Stat_t)
		if err := writeEntry(tw, p, "./"+filepath.ToSlash(rel), fi, st, links); err != nil {
			return err
		}
		if d.IsDir() && st != nil && st.Dev != top.Dev && rel != "." {
			return fs.SkipDir // another file system mounted here: its mount point only
		}
		return nil
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// writeEntry writes one file's header and, for a regular file, its bytes.
func writeEntry(tw *tar.Writer, p, name string, fi fs.FileInfo, st *syscall.Stat_t, links map[[2]uint64]string) error {
	target := ""
	if fi.Mode()&fs.ModeSymlink != 0 {
		t, err := os.Readlink(p)
		if err != nil {
			return err
		}
		target = t
	}
	hdr, err := tar.FileInfoHeader(fi, target)
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	hdr.Name, hdr.Uname, hdr.Gname = name, "", ""
	if fi.Mode().IsRegular() && st != nil && st.Nlink > 1 {
		key := [2]uint64{st.Dev, st.Ino}
		if first, ok := links[key]; ok {
			hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
			return tw.WriteHeader(hdr)
		}
		links[key] = name
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return nil
	}
	return copyFile(tw, p, hdr.Size)
}

// copyFile copies exactly size bytes of the regular file p; one that
// changed meanwhile (grown, shrunk, swapped for a symlink) is an error.
func copyFile(w io.Writer, p string, size int64) error {
	f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := io.CopyN(w, f, size); err != nil {
		return fmt.Errorf("copy %s: %w", p, err)
	}
	return nil
}
