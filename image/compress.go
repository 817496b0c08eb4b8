package image

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"fmt"
	"io"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// compression names the compression of a stream from its first bytes; ""
// for none known. Media types are not trusted for this: docker save and
// hand-made archives often name a compressed layer ".tar".
func compression(head []byte) string {
	switch {
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b, 0x08}):
		return "gzip"
	case bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return "zstd"
	case bytes.HasPrefix(head, []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}):
		return "xz"
	case len(head) >= 10 && bytes.HasPrefix(head, []byte("BZh")) && head[3] >= '1' && head[3] <= '9' &&
		bytes.Equal(head[4:10], []byte{0x31, 0x41, 0x59, 0x26, 0x53, 0x59}):
		return "bzip2"
	}
	return ""
}

// decompress returns r decompressed as its first bytes say (gzip, zstd,
// xz, bzip2), or as it is.
func decompress(r io.Reader) (io.ReadCloser, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	head, _ := br.Peek(10)
	kind := compression(head)
	var (
		out io.Reader
		err error
	)
	switch kind {
	case "":
		return io.NopCloser(br), nil
	case "gzip":
		var z *gzip.Reader
		if z, err = gzip.NewReader(br); err == nil {
			return &named{z, kind, z}, nil
		}
	case "zstd":
		var z *zstd.Decoder
		// One goroutine; the decoder's default bound on the window (512
		// MiB) keeps a hostile frame from asking for more.
		z, err = zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
		if err == nil {
			return &named{z, kind, z.IOReadCloser()}, nil
		}
	case "xz":
		out, err = xz.NewReader(br)
	case "bzip2":
		out = bzip2.NewReader(br)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", kind, err)
	}
	return &named{out, kind, io.NopCloser(nil)}, nil
}

// named says which decompressor failed: "gzip: unexpected EOF" tells a
// truncated archive from a truncated tar.
type named struct {
	r    io.Reader
	kind string
	c    io.Closer
}

func (n *named) Read(p []byte) (int, error) {
	k, err := n.r.Read(p)
	if err != nil && err != io.EOF && !strings.HasPrefix(err.Error(), n.kind+":") {
		err = fmt.Errorf("%s: %w", n.kind, err)
	}
	return k, err
}

func (n *named) Close() error { return n.c.Close() }
