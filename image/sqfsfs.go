package image

import (
	"archive/tar"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"

	"github.com/CalebQ42/squashfs"
)

// ExtractSquashfs unpacks the squashfs image that starts at off in r into
// the directory root (a descriptor), with a pure-Go reader: no program, no
// FUSE, no kernel driver. The image's files go through the same applier as
// every import (names resolved beneath root, nothing written outside it,
// device nodes and setuid bits dropped, everything owned by the process's
// own ids), as a tar stream made from a walk of the image. Hard links
// become copies (the reader does not show inode numbers). size is the
// length of r. selfdock runs it
// in a child that has dropped every privilege first.
func ExtractSquashfs(ctx context.Context, r io.ReaderAt, off, size int64, root int) (*Result, error) {
	// The reader takes a short read at the end for the end of the image:
	// check the superblock's own size first.
	sb := make([]byte, 96)
	if n, _ := r.ReadAt(sb, off); n < len(sb) || !isSquashfs(sb) {
		return nil, errors.New("squashfs image: no squashfs superblock")
	}
	if used := binary.LittleEndian.Uint64(sb[40:48]); size < off || used > uint64(size-off) {
		return nil, fmt.Errorf("squashfs image: truncated (%d bytes of %d)", max(size-off, 0), used)
	}
	sq, err := squashfs.NewReaderAtOffset(r, off)
	if err != nil {
		return nil, fmt.Errorf("squashfs image: %s", strings.ReplaceAll(err.Error(), "\n", ": "))
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writeFS(sq.FS, pw)) }()
	defer pr.Close()
	a := newApplier(root, false, 0)
	if err := a.applyTar(ctx, pr); err != nil {
		return nil, err
	}
	if err := a.finish(); err != nil {
		return nil, err
	}
	return &Result{Format: "squashfs", Layers: 1, Dropped: a.dropped}, nil
}

// writeFS writes the tree of fsys to w as a tar stream; sockets, which tar
// cannot hold, are left out.
func writeFS(fsys fs.FS, w io.Writer) error {
	tw := tar.NewWriter(w)
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSocket != 0 {
			return nil
		}
		target := ""
		if fi.Mode()&fs.ModeSymlink != 0 {
			l, ok := fi.(interface{ SymlinkPath() string })
			if !ok {
				return fmt.Errorf("%s: symlink without a target", p)
			}
			target = l.SymlinkPath()
		}
		hdr, err := tar.FileInfoHeader(fi, target)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		hdr.Name, hdr.Uname, hdr.Gname = "./"+p, "", ""
		// The reader keeps the raw setuid, setgid and sticky bits in
		// the mode's low bits, where fs.FileMode has none.
		hdr.Mode = int64(uint32(fi.Mode()) & 0o7777)
		if p == "." {
			hdr.Name = "./"
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return nil
		}
		f, err := fsys.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		if _, err := io.CopyN(tw, f, hdr.Size); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return tw.Close()
}
