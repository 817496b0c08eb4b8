package image

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
)

// maxJSON bounds what is read of a manifest, index or config file.
const maxJSON = 16 << 20

// store is where an image's files are found: a tar archive (docker save,
// OCI layout tarball) or an OCI layout directory.
type store interface {
	has(name string) bool
	open(name string) (io.ReadCloser, int64, error)
}

// archive is an index of a tar file's regular files, read in place.
type archive struct {
	ra    io.ReaderAt
	files map[string]tarFile
}

type tarFile struct {
	off, size int64
	link      string // for a symlink or hardlink: the archive path it names
}

// indexTar reads the headers of the tar in ra, seeking over the contents.
func indexTar(ra io.ReaderAt, size int64, max int) (*archive, error) {
	sr := io.NewSectionReader(ra, 0, size)
	tr := tar.NewReader(sr)
	a := &archive{ra: ra, files: map[string]tarFile{}}
	for n := 0; ; n++ {
		hdr, err := tr.Next()
		if err == io.EOF {
			return a, nil
		}
		if err != nil {
			return nil, fmt.Errorf("tar: %w", err)
		}
		if n >= max {
			return nil, fmt.Errorf("more than %d entries, the limit of one import", max)
		}
		name := archiveName(hdr.Name)
		switch hdr.Typeflag {
		case tar.TypeReg:
			if isSparse(hdr) {
				continue // its data is not stored in one piece
			}
			// tar.Reader has read exactly the header blocks: the data
			// starts where the section reader is now.
			off, _ := sr.Seek(0, io.SeekCurrent)
			a.files[name] = tarFile{off: off, size: hdr.Size}
		case tar.TypeSymlink:
			target := hdr.Linkname
			if !path.IsAbs(target) {
				target = path.Join(path.Dir(name), target)
			}
			a.files[name] = tarFile{link: archiveName(target)}
		case tar.TypeLink:
			a.files[name] = tarFile{link: archiveName(hdr.Linkname)}
		}
	}
}

// archiveName is a name of the archive's own namespace: docker save
// archives say "./manifest.json" or "manifest.json" alike.
func archiveName(n string) string {
	return strings.TrimPrefix(path.Clean("/"+n), "/")
}

// isImage tells an image archive from a root file system tarball: a
// root file system has no manifest.json, index.json or oci-layout at its
// top.
func isImage(s store) bool {
	return s.has("manifest.json") || s.has("index.json") || s.has("oci-layout")
}

func (a *archive) has(name string) bool {
	_, err := a.lookup(name)
	return err == nil
}

// lookup finds a regular file, following the archive's own links (old
// docker save archives link identical layers to one another).
func (a *archive) lookup(name string) (tarFile, error) {
	name = archiveName(name)
	for range 16 {
		f, ok := a.files[name]
		if !ok {
			return f, fmt.Errorf("%q: %w", name, fs.ErrNotExist)
		}
		if f.link == "" {
			return f, nil
		}
		name = f.link
	}
	return tarFile{}, fmt.Errorf("%q: too many links", name)
}

func (a *archive) open(name string) (io.ReadCloser, int64, error) {
	f, err := a.lookup(name)
	if err != nil {
		return nil, 0, err
	}
	return io.NopCloser(io.NewSectionReader(a.ra, f.off, f.size)), f.size, nil
}

// dir is an OCI image layout directory. os.Root keeps every open inside
// it, symlinks included.
type dir struct{ root *os.Root }

func (d dir) has(name string) bool {
	fi, err := d.root.Stat(name)
	return err == nil && fi.Mode().IsRegular()
}

func (d dir) open(name string) (io.ReadCloser, int64, error) {
	// O_PATH first, so that nothing but a regular file is ever opened for
	// reading: a FIFO would hang the import, and opening a device node (as
	// root, for boot) can act. Then the same inode is opened through
	// /proc, never by its name again.
	p, err := d.root.OpenFile(name, unix.O_PATH, 0)
	if err != nil {
		return nil, 0, fmt.Errorf("%q: %w", name, unwrapPath(err))
	}
	defer p.Close()
	fi, err := p.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = errors.New("not a regular file")
	}
	if err != nil {
		return nil, 0, fmt.Errorf("%q: %w", name, unwrapPath(err))
	}
	f, err := os.OpenFile(fmt.Sprintf("/proc/self/fd/%d", p.Fd()), os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, 0, fmt.Errorf("%q: %w", name, unwrapPath(err))
	}
	return f, fi.Size(), nil
}

// readBlob reads a small file of the store (a manifest, index or config),
// checking its digest when one is known.
func readBlob(s store, name string, want v1.Hash) ([]byte, error) {
	rc, _, err := s.open(name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	v := newVerifier(rc, want)
	b, err := io.ReadAll(io.LimitReader(v, maxJSON+1))
	if err != nil {
		return nil, fmt.Errorf("%q: %w", name, err)
	}
	if len(b) > maxJSON {
		return nil, fmt.Errorf("%q: larger than %d bytes", name, maxJSON)
	}
	if err := v.check(); err != nil {
		return nil, fmt.Errorf("%q: %w", name, err)
	}
	return b, nil
}

// blobPath is where an OCI layout keeps the blob of digest h; h has been
// validated (algorithm and hex digits) when it was parsed.
func blobPath(h v1.Hash) string { return "blobs/" + h.Algorithm + "/" + h.Hex }
