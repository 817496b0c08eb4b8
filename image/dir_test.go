package image

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestImportRootfsDir copies a plain directory: files, a hard link kept as
// a link, a symlink kept as a symlink (never followed out of the tree).
func TestImportRootfsDir(t *testing.T) {
	src := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(src, "bin"), 0o755))
	must(os.WriteFile(filepath.Join(src, "bin/tool"), []byte("#!/bin/sh\n"), 0o755))
	must(os.Link(filepath.Join(src, "bin/tool"), filepath.Join(src, "bin/alias")))
	must(os.Symlink("/etc/shadow", filepath.Join(src, "shadow")))
	dst := filepath.Join(t.TempDir(), "root")
	res, err := Import(context.Background(), src, dst, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Format != "rootfs" {
		t.Errorf("format %q, want rootfs", res.Format)
	}
	a, err1 := os.Stat(filepath.Join(dst, "bin/tool"))
	b, err2 := os.Stat(filepath.Join(dst, "bin/alias"))
	if err1 != nil || err2 != nil || !os.SameFile(a, b) || a.Mode().Perm() != 0o755 {
		t.Errorf("bin/tool and bin/alias: %v %v, same file %v, mode %v", err1, err2, os.SameFile(a, b), a.Mode())
	}
	if l, err := os.Readlink(filepath.Join(dst, "shadow")); err != nil || l != "/etc/shadow" {
		t.Errorf("shadow: %q %v, want the symlink itself", l, err)
	}
	if _, err := ReadConfig(dst); err != nil {
		t.Errorf("config: %v", err)
	}
}
