package image

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// importer carries one import: where it unpacks, how it reports.
type importer struct {
	ctx  context.Context
	o    Options
	st   *stage
	a    *applier
	prog Progress
	dest string  // the destination, beside which the trees are made
	cfg  *Config // the image's config; nil for a rootfs or squashfs
}

// run reads src, whatever kind of image it is, and unpacks it.
func (im *importer) run(src string) (*Result, error) {
	if src == "-" {
		in := im.o.Stdin
		if in == nil {
			in = os.Stdin
		}
		return im.stream(in, 0)
	}
	f, err := os.Open(src)
	if err != nil {
		return nil, unwrapPath(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, unwrapPath(err)
	}
	switch {
	case fi.IsDir():
		return im.layoutDir(src)
	case fi.Mode().IsRegular():
		return im.file(f, fi.Size())
	}
	return im.stream(f, 0) // a pipe or a character device
}

// file reads a regular file, which allows random access: an uncompressed
// tar is indexed in place, without a copy.
func (im *importer) file(f *os.File, size int64) (*Result, error) {
	head := make([]byte, 512)
	n, _ := f.ReadAt(head, 0)
	head = head[:n]
	switch {
	case isSquashfs(head):
		return im.squashfs(f)
	case compression(head) != "":
		return im.stream(f, size)
	}
	arc, err := indexTar(f, size, im.a.max)
	if err != nil {
		return nil, err
	}
	if isImage(arc) {
		return im.image(arc)
	}
	return im.rootfs(io.NewSectionReader(f, 0, size), size)
}

// stream reads a source that can only be read once (standard input, a
// pipe, a compressed file), unpacking it as it streams. When what it
// unpacked turns out to be an image archive (manifest.json, index.json or
// oci-layout at its top), those files are the image: its layers are read
// from there into a fresh tree, and the unpacked archive goes. That costs
// the disk space of the archive, uncompressed, for the time of the import.
func (im *importer) stream(r io.Reader, size int64) (*Result, error) {
	im.prog.Start(0, size)
	br := bufio.NewReaderSize(&counter{r: r, p: im.prog}, 1<<16)
	head, _ := br.Peek(512)
	if isSquashfs(head) {
		f, err := im.spool(br)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return im.squashfs(f)
	}
	dec, err := decompress(br)
	if err != nil {
		return nil, err
	}
	defer dec.Close()
	if err := im.a.applyTar(im.ctx, dec); err != nil {
		return nil, err
	}
	// The tree by its descriptor, never by its name: whoever may write
	// the destination's parent could rename it and put another there.
	arc := dir{}
	if arc.root, err = os.OpenRoot(fmt.Sprintf("/proc/self/fd/%d", im.st.root)); err != nil {
		return nil, err
	}
	defer arc.root.Close()
	if !isImage(arc) {
		return &Result{Format: "rootfs", Layers: 1}, nil
	}
	return im.unpackedArchive(arc)
}

// unpackedArchive imports the image whose archive was unpacked into the
// current tree, into a new one.
func (im *importer) unpackedArchive(arc dir) (*Result, error) {
	st, err := newStage(im.dest)
	if err != nil {
		return nil, err
	}
	defer im.st.abort()
	im.st, im.a = st, newApplier(st.root, im.o.Preserve, im.o.MaxEntries)
	return im.image(arc)
}

// rootfs unpacks a plain, uncompressed root file system tarball.
func (im *importer) rootfs(r io.Reader, size int64) (*Result, error) {
	im.prog.Start(0, size)
	if err := im.a.applyTar(im.ctx, &counter{r: r, p: im.prog}); err != nil {
		return nil, err
	}
	return &Result{Format: "rootfs", Layers: 1}, nil
}

// spool copies r to an unnamed file in the tree's directory (O_TMPFILE;
// where the file system lacks it, a named file unlinked at once), which
// disappears when closed, even if the process is killed.
func (im *importer) spool(r io.Reader) (*os.File, error) {
	fd, err := unix.Openat(im.st.root, ".", unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		const name = ".selfdock-spool"
		fd, err = unix.Openat(im.st.root, name, unix.O_CREAT|unix.O_EXCL|unix.O_RDWR|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return nil, fmt.Errorf("temporary file: %w", err)
		}
		_ = unix.Unlinkat(im.st.root, name, 0)
	}
	f := os.NewFile(uintptr(fd), "spool")
	if _, err := io.Copy(f, &ctxReader{ctx: im.ctx, r: r}); err != nil {
		f.Close()
		return nil, fmt.Errorf("read: %w", err)
	}
	return f, nil
}

func isSquashfs(head []byte) bool { return bytes.HasPrefix(head, []byte("hsqs")) }

// counter reports the bytes read through it.
type counter struct {
	r io.Reader
	p Progress
}

func (c *counter) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.p.Add(n)
	return n, err
}

// ctxReader stops a long copy when ctx is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(b []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(b)
}

var errNotImage = errors.New("neither manifest.json nor index.json: not a docker save or OCI image archive")
