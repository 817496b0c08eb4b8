package vm

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"testing"
)

// File type bits of a cpio mode, as in stat(2).
const (
	sIFDIR = 0o040000
	sIFREG = 0o100000
	sIFLNK = 0o120000
	sIFCHR = 0o020000
)

// cpioWriter writes the "newc" cpio format, the one the kernel unpacks an
// initramfs from. Written here rather than with the cpio tool: the entries
// must be root-owned and include /dev/console whoever runs the test, and
// one package fewer to install. The first error sticks; close returns it.
type cpioWriter struct {
	w   *bufio.Writer
	ino uint32
	err error
}

func newCpio(w io.Writer) *cpioWriter { return &cpioWriter{w: bufio.NewWriter(w)} }

func (c *cpioWriter) dir(name string) { c.entry(name, sIFDIR|0o755, nil, 0, 0) }

func (c *cpioWriter) file(name string, perm uint32, data []byte) {
	c.entry(name, sIFREG|perm, data, 0, 0)
}

func (c *cpioWriter) symlink(name, target string) {
	c.entry(name, sIFLNK|0o777, []byte(target), 0, 0)
}

func (c *cpioWriter) chardev(name string, perm, major, minor uint32) {
	c.entry(name, sIFCHR|perm, nil, major, minor)
}

// entry writes one header, name and data, each padded to 4 bytes. Every
// entry has its own inode number and one link, so the kernel never takes
// two of them for hardlinks of each other; all are root-owned.
func (c *cpioWriter) entry(name string, mode uint32, data []byte, rmajor, rminor uint32) {
	if c.err != nil {
		return
	}
	c.ino++
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, 1, 0, len(data), 0, 0, rmajor, rminor, len(name)+1, 0)
	c.write([]byte(hdr + name + "\x00"))
	c.pad(len(hdr) + len(name) + 1)
	c.write(data)
	c.pad(len(data))
}

func (c *cpioWriter) write(b []byte) {
	if c.err == nil {
		_, c.err = c.w.Write(b)
	}
}

func (c *cpioWriter) pad(n int) {
	c.write(make([]byte, (4-n%4)%4))
}

// close writes the trailer and flushes.
func (c *cpioWriter) close() error {
	c.ino = 0
	c.entry("TRAILER!!!", 0, nil, 0, 0)
	if c.err != nil {
		return c.err
	}
	return c.w.Flush()
}

// TestCpio checks the layout the kernel expects of a newc archive: the
// magic, 4-byte alignment of each header and of the data, the trailer.
func TestCpio(t *testing.T) {
	var b bytes.Buffer
	c := newCpio(&b)
	c.dir("bin")
	c.file("bin/x", 0o755, []byte("12345"))
	c.symlink("bin/y", "x")
	c.chardev("dev/console", 0o600, 5, 1)
	if err := c.close(); err != nil {
		t.Fatal(err)
	}
	raw := b.Bytes()
	var names []string
	for off := 0; off < len(raw); {
		if off%4 != 0 || string(raw[off:off+6]) != "070701" {
			t.Fatalf("offset %d: no aligned header", off)
		}
		var f [13]uint32
		for i := range f {
			fmt.Sscanf(string(raw[off+6+8*i:off+14+8*i]), "%08X", &f[i])
		}
		nameEnd := off + 110 + int(f[11]) - 1
		names = append(names, string(raw[off+110:nameEnd]))
		off = align4(align4(nameEnd+1) + int(f[6]))
	}
	want := "[bin bin/x bin/y dev/console TRAILER!!!]"
	if fmt.Sprint(names) != want {
		t.Errorf("names %v, want %s", names, want)
	}
}

func align4(n int) int { return (n + 3) &^ 3 }
