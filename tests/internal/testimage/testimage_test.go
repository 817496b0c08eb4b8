package testimage

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// needBusybox skips without Debian's busybox-static, unless
// SELFDOCK_MUST_WORK=1 (CI) asks that nothing is skipped.
func needBusybox(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(BusyboxPath); err == nil {
		return
	}
	reason := "needs " + BusyboxPath + " (Debian package busybox-static)"
	if os.Getenv("SELFDOCK_MUST_WORK") == "1" {
		t.Fatalf("SELFDOCK_MUST_WORK=1, cannot skip: %s", reason)
	}
	t.Skip(reason)
}

// entry is what the test checks of one tar member.
type entry struct {
	typ  byte
	mode int64
	link string
	body string
}

// readTar reads every member, failing on a duplicate name, a member whose
// parent directory came later (or never), or one not owned by root.
func readTar(t *testing.T, name string) map[string]entry {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := map[string]entry{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return got
		}
		if err != nil {
			t.Fatal(err)
		}
		n := filepath.Clean(h.Name)
		if _, dup := got[n]; dup {
			t.Errorf("%s: twice in the archive", n)
		}
		if p := filepath.Dir(n); p != "." && got[p].typ != tar.TypeDir {
			t.Errorf("%s: comes before its directory %s", n, p)
		}
		if h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s: owned by %d:%d, want 0:0", n, h.Uid, h.Gid)
		}
		b, _ := io.ReadAll(tr)
		got[n] = entry{typ: h.Typeflag, mode: h.Mode, link: h.Linkname, body: string(b)}
	}
}

func TestBusybox(t *testing.T) {
	needBusybox(t)
	out := filepath.Join(t.TempDir(), "image.tar")
	files := map[string]string{
		"/etc/marker":          "token\n",
		"usr/local/bin/hello":  "#!/bin/sh\necho hello\n",
		"/bin/sh":              "#!/bin/busybox ash\n", // replaces the applet link
		"/opt/x..y/not-dotdot": "",
	}
	if err := Busybox(out, files); err != nil {
		t.Fatal(err)
	}
	got := readTar(t, out)
	bb, err := os.ReadFile(BusyboxPath)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]entry{
		"bin/busybox":         {tar.TypeReg, 0o755, "", string(bb)},
		"bin/ls":              {tar.TypeSymlink, 0o777, "busybox", ""},
		"bin/poweroff":        {tar.TypeSymlink, 0o777, "busybox", ""},
		"sbin/init":           {tar.TypeSymlink, 0o777, "../bin/busybox", ""},
		"tmp":                 {tar.TypeDir, 0o1777, "", ""},
		"usr/local":           {tar.TypeDir, 0o755, "", ""},
		"etc/marker":          {tar.TypeReg, 0o644, "", "token\n"},
		"usr/local/bin/hello": {tar.TypeReg, 0o755, "", files["usr/local/bin/hello"]},
		"bin/sh":              {tar.TypeReg, 0o755, "", files["/bin/sh"]},
		"opt/x..y/not-dotdot": {tar.TypeReg, 0o644, "", ""},
	}
	for _, d := range Dirs {
		if d != "tmp" {
			want[d] = entry{tar.TypeDir, 0o755, "", ""}
		}
	}
	for n, w := range want {
		if g, ok := got[n]; !ok {
			t.Errorf("%s: missing", n)
		} else if g != w {
			t.Errorf("%s: type %c mode %o link %q, %d bytes; want type %c mode %o link %q, %d bytes",
				n, g.typ, g.mode, g.link, len(g.body), w.typ, w.mode, w.link, len(w.body))
		}
	}
}

// TestBusyboxSame: the same arguments give the same bytes, so an image
// can be cached or compared by digest.
func TestBusyboxSame(t *testing.T) {
	needBusybox(t)
	dir := t.TempDir()
	files := map[string]string{"etc/a": "a", "etc/b": "b", "var/c": "c"}
	var tars [2][]byte
	for i := range tars {
		name := filepath.Join(dir, "image.tar")
		if err := Busybox(name, files); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		tars[i] = b
	}
	if !bytes.Equal(tars[0], tars[1]) {
		t.Error("two images from the same arguments differ")
	}
}

func TestBusyboxRefuses(t *testing.T) {
	needBusybox(t)
	for _, name := range []string{"", "/", "../etc/x", "etc/../../x", "/a/.."} {
		out := filepath.Join(t.TempDir(), "image.tar")
		if err := Busybox(out, map[string]string{name: "x"}); err == nil {
			t.Errorf("file %q: no error", name)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("file %q: %s left behind", name, out)
		}
	}
	out := filepath.Join(t.TempDir(), "image.tar")
	if err := Busybox(out, map[string]string{"/etc/x": "1", "etc/x": "2"}); err == nil {
		t.Error("one file given twice: no error")
	}
}

// TestBusyboxFrom: any binary with the caller's applets, as for a busybox
// of another architecture; it needs no busybox here.
func TestBusyboxFrom(t *testing.T) {
	dir := t.TempDir()
	bb := filepath.Join(dir, "busybox-arm64")
	if err := os.WriteFile(bb, []byte("\x7fELF not for this machine"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "image.tar")
	if err := BusyboxFrom(out, bb, []string{"sh", "poweroff"}, map[string]string{"/etc/x": "x"}); err != nil {
		t.Fatal(err)
	}
	got := readTar(t, out)
	want := map[string]entry{
		"bin/busybox":  {tar.TypeReg, 0o755, "", "\x7fELF not for this machine"},
		"bin/sh":       {tar.TypeSymlink, 0o777, "busybox", ""},
		"bin/poweroff": {tar.TypeSymlink, 0o777, "busybox", ""},
		"sbin/init":    {tar.TypeSymlink, 0o777, "../bin/busybox", ""},
		"etc/x":        {tar.TypeReg, 0o644, "", "x"},
	}
	for n, w := range want {
		if g := got[n]; g != w {
			t.Errorf("%s: %+v, want %+v", n, g, w)
		}
	}
	if _, ok := got["bin/ls"]; ok {
		t.Error("bin/ls: an applet that was not given")
	}
	for _, bad := range [][]string{nil, {"sh", "busybox"}, {"../sh"}, {""}, {".."}} {
		if err := BusyboxFrom(out, bb, bad, nil); err == nil {
			t.Errorf("applets %q: no error", bad)
		}
	}
}
