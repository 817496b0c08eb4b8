package image

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// mkSquashfs packs a tar into a squashfs image with tar2sqfs
// (squashfs-tools-ng), which keeps owners, modes and device nodes.
func mkSquashfs(t testing.TB, tarball []byte) string {
	t.Helper()
	if _, err := exec.LookPath("tar2sqfs"); err != nil {
		skipOrFail(t, "no tar2sqfs: apt-get install squashfs-tools-ng")
	}
	if _, err := exec.LookPath(Sqfs2tar); err != nil {
		skipOrFail(t, "no sqfs2tar: apt-get install squashfs-tools-ng")
	}
	p := filepath.Join(t.TempDir(), "root.sqfs")
	cmd := exec.Command("tar2sqfs", "--quiet", "--force", p)
	cmd.Stdin = bytes.NewReader(tarball)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tar2sqfs: %v\n%s", err, out)
	}
	return p
}

func TestImportSquashfs(t *testing.T) {
	sq := mkSquashfs(t, rootfsEntries(t))
	b, err := os.ReadFile(sq)
	if err != nil {
		t.Fatal(err)
	}
	for _, stdin := range []bool{false, true} {
		src, o := sq, Options{}
		if stdin {
			src, o.Stdin = "-", bytes.NewReader(b)
		}
		dest, res, err := importT(t, src, o)
		if err != nil {
			t.Fatalf("stdin=%v: %v", stdin, err)
		}
		if res.Format != "squashfs" || res.Dropped != (Dropped{Devices: 1, Setid: 1}) {
			t.Errorf("stdin=%v: result %+v", stdin, res)
		}
		sameTree(t, tree(t, dest), rootfsWant)
		wantConfig(t, dest, Config{})
	}
}

// A squashfs whose tar stream would escape gets the same refusal as a tar.
func TestSquashfsMalicious(t *testing.T) {
	a := newArena(t)
	sq := mkSquashfs(t, mkTar(t, symE("evil", a.outside), fileE("f", "x", 0o644)))
	// tar2sqfs cannot store "evil/pwned" through the link, so the stream
	// sqfs2tar makes only holds the link: harmless, and imported as is.
	dest := filepath.Join(a.parent, "dest")
	if _, err := importFile(sq, dest); err != nil {
		t.Fatal(err)
	}
	a.untouched(t, "dest")
	removeTree(dest)
	// A corrupt squashfs: sqfs2tar's own error, one line, nothing left.
	b, _ := os.ReadFile(sq)
	bad := filepath.Join(a.parent, "bad.sqfs")
	os.WriteFile(bad, append(b[:4:4], bytes.Repeat([]byte{0xff}, len(b))...), 0o644)
	_, err := importFile(bad, dest)
	if err == nil || !strings.Contains(err.Error(), "sqfs2tar") || strings.Contains(err.Error(), "\n") {
		t.Errorf("corrupt squashfs: %v", err)
	}
	a.untouched(t, "bad.sqfs")
}

// ExtractSquashfs (the pure-Go reader, for a sandbox's root) gives the same
// tree as an import, through the same applier; a bundle's image at an
// offset and a corrupt image are handled.
func TestExtractSquashfs(t *testing.T) {
	sq := mkSquashfs(t, rootfsEntries(t))
	b, err := os.ReadFile(sq)
	if err != nil {
		t.Fatal(err)
	}
	const off = 4096
	bundle := append(bytes.Repeat([]byte{'#'}, off), b...)
	for _, tc := range []struct {
		img []byte
		off int64
	}{{b, 0}, {bundle, off}} {
		dest := t.TempDir()
		root, err := unix.Open(dest, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		res, err := ExtractSquashfs(context.Background(), bytes.NewReader(tc.img), tc.off, int64(len(tc.img)), root)
		unix.Close(root)
		if err != nil {
			t.Fatalf("offset %d: %v", tc.off, err)
		}
		if res.Dropped != (Dropped{Devices: 1, Setid: 1}) {
			t.Errorf("offset %d: result %+v", tc.off, res)
		}
		sameTree(t, tree(t, dest), rootfsWant)
	}
	root, err := unix.Open(t.TempDir(), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(root)
	used := binary.LittleEndian.Uint64(b[40:48])
	for _, bad := range [][]byte{b[:used-1], b[:used/2], append(b[:4:4], bytes.Repeat([]byte{0xff}, len(b))...), nil} {
		if _, err := ExtractSquashfs(context.Background(), bytes.NewReader(bad), 0, int64(len(bad)), root); err == nil || strings.Contains(err.Error(), "\n") {
			t.Errorf("damaged image (%d bytes): %v", len(bad), err)
		}
	}
}
