package image

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
)

// mustWork turns a skip into a failure (set in CI).
var mustWork = os.Getenv("SELFDOCK_MUST_WORK") == "1"

func skipOrFail(t testing.TB, reason string) {
	t.Helper()
	if mustWork {
		t.Fatalf("SELFDOCK_MUST_WORK=1, cannot skip: %s", reason)
	}
	t.Skip(reason)
}

// stackLayers are a three-layer image exercising what a layer can do.
func stackLayers(t testing.TB) [][]byte {
	l1 := mkTar(t,
		dirE("./", 0o755),
		dirE("bin/", 0o755),
		fileE("bin/tool", "tool v1", 0o755),
		symE("bin/sh", "tool"),
		dirE("etc/", 0o755),
		fileE("etc/hosts", "h1", 0o644),
		ent{name: "etc/shadow", typ: '0', mode: 0o640, body: "secret", gid: 42,
			xattrs: map[string]string{"user.note": "hi", "trusted.x": "1"}},
		dirE("data/", 0o755),
		fileE("data/a", "A", 0o644),
		hardE("data/link-a", "data/a"),
		dirE("opq/", 0o755),
		fileE("opq/old", "old", 0o644),
		dirE("opq/sub/", 0o755),
		fileE("opq/sub/deep", "deep", 0o644),
		fileE("usr/bin/su", "su", 0o4755), // no usr/ entries: made on the way
		fileE("usr/bin/wall", "wall", 0o2755),
		dirE("dev/", 0o755),
		charE("dev/null", 0o666, 1, 3),
		fifoE("dev/fifo", 0o640),
		dirE("gone/", 0o755),
		fileE("gone/x", "x", 0o644),
		symE("abs", "/etc/hosts"),
		symE("var-run", "/run"),
		dirE("ro/", 0o555),
		fileE("ro/f", "f", 0o444),
		dirE("replaced/", 0o755),
		fileE("replaced/inner", "inner", 0o644),
		fileE("tofile", "file", 0o644),
		owned(dirE("home/user/", 0o700), 1000, 1000),
	)
	l2 := mkTar(t,
		fileE("data/.wh.a", "", 0o644), // link-a keeps the content
		fileE("etc/hosts", "h2", 0o644),
		dirE("opq/", 0o755),
		fileE("opq/new", "new", 0o644), // before the marker: still kept
		fileE("opq/.wh..wh..opq", "", 0o644),
		fileE("opq/sub/later", "later", 0o644),
		fileE(".wh.gone", "", 0o644),
		fileE("bin/tool", "tool v2", 0o755),
		fileE("ro/g", "g", 0o444), // into a 0555 directory of a lower layer
		hardE("data/link-b", "data/link-a"),
		hardE("dev/null2", "dev/null"), // another name of a dropped device
		fileE("replaced", "now a file", 0o644),
		dirE("tofile/", 0o750),
		fileE(".wh.nonexistent", "", 0o644),
		fileE("etc/.wh..wh.plnk", "", 0o644), // aufs metadata: ignored
	)
	l3 := mkTar(t,
		fileE("etc/.wh.hosts", "", 0o644),
		symE("etc/hosts", "../data/link-b"),
	)
	return [][]byte{l1, l2, l3}
}

// stackWant is the tree the stack gives without privilege.
var stackWant = map[string]string{
	".":             "dir 0755",
	"bin":           "dir 0755",
	"bin/tool":      `file 0755 "tool v2"`,
	"bin/sh":        "link -> tool",
	"etc":           "dir 0755",
	"etc/hosts":     "link -> ../data/link-b",
	"etc/shadow":    `file 0640 "secret"`,
	"data":          "dir 0755",
	"data/link-a":   `file 0644 "A" nlink=2`,
	"data/link-b":   `file 0644 "A" nlink=2`,
	"opq":           "dir 0755",
	"opq/new":       `file 0644 "new"`,
	"opq/sub":       "dir 0755",
	"opq/sub/later": `file 0644 "later"`,
	"usr":           "dir 0755",
	"usr/bin":       "dir 0755",
	"usr/bin/su":    `file 0755 "su"`,
	"usr/bin/wall":  `file 0755 "wall"`,
	"dev":           "dir 0755",
	"dev/fifo":      "fifo 0640",
	"abs":           "link -> /etc/hosts",
	"var-run":       "link -> /run",
	"ro":            "dir 0555",
	"ro/f":          `file 0444 "f"`,
	"ro/g":          `file 0444 "g"`,
	"replaced":      `file 0644 "now a file"`,
	"tofile":        "dir 0750",
	"home":          "dir 0755",
	"home/user":     "dir 0700",
}

var stackConfig = v1.Config{
	Entrypoint: []string{"/bin/sh", "-c"}, Cmd: []string{"echo hi"},
	Env: []string{"PATH=/bin", "GREETING=hello"}, WorkingDir: "/data", User: "1000:1000",
}

func stackImage(t testing.TB, comp ...string) fixImage {
	return fixImage{tags: []string{"stack:1"}, layers: stackLayers(t), comp: comp, config: stackConfig}
}

// tree describes every entry below root except the config directory:
// type, permission bits, content or link target, link count.
func tree(t testing.TB, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == ConfigDir {
			return filepath.SkipDir
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		out[rel] = describe(t, p, &st)
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", root, err)
	}
	return out
}

func describe(t testing.TB, p string, st *unix.Stat_t) string {
	perm := st.Mode & 0o7777
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return fmt.Sprintf("dir %04o", perm)
	case unix.S_IFREG:
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		s := fmt.Sprintf("file %04o %q", perm, b)
		if st.Nlink > 1 {
			s += fmt.Sprintf(" nlink=%d", st.Nlink)
		}
		return s
	case unix.S_IFLNK:
		l, _ := os.Readlink(p)
		return "link -> " + l
	case unix.S_IFIFO:
		return fmt.Sprintf("fifo %04o", perm)
	case unix.S_IFCHR:
		return fmt.Sprintf("char %04o %d,%d", perm, unix.Major(st.Rdev), unix.Minor(st.Rdev))
	}
	return fmt.Sprintf("other %o", st.Mode)
}

func sameTree(t testing.TB, got, want map[string]string) {
	t.Helper()
	if reflect.DeepEqual(got, want) {
		return
	}
	var keys []string
	for k := range got {
		keys = append(keys, k)
	}
	for k := range want {
		if _, ok := got[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		if got[k] != want[k] {
			t.Errorf("%s: got %q, want %q", k, got[k], want[k])
		}
	}
}

// owners checks that every entry belongs to uid:gid.
func owners(t testing.TB, root string, uid, gid int) {
	t.Helper()
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		var st unix.Stat_t
		if err == nil && unix.Lstat(p, &st) == nil && (int(st.Uid) != uid || int(st.Gid) != gid) {
			t.Errorf("%s: owner %d:%d, want %d:%d", p, st.Uid, st.Gid, uid, gid)
		}
		return nil
	})
}

func writeTemp(t testing.TB, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// importT imports src into a fresh directory and returns it.
func importT(t testing.TB, src string, o Options) (string, *Result, error) {
	t.Helper()
	dest := filepath.Join(t.TempDir(), "root")
	t.Cleanup(func() { _ = removeTree(dest) }) // modes like 0555 defeat t.TempDir's clean-up
	res, err := Import(context.Background(), src, dest, o)
	return dest, res, err
}

func wantConfig(t testing.TB, dest string, want Config) {
	t.Helper()
	c, err := ReadConfig(dest)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*c, want) {
		t.Errorf("config: got %+v, want %+v", *c, want)
	}
}

func TestImportFormats(t *testing.T) {
	gz := func(b []byte) []byte { return compress(t, "gzip", b) }
	cases := []struct {
		name   string
		src    func(t *testing.T) string
		format string
	}{
		{"docker-save old", func(t *testing.T) string { return writeTemp(t, "i.tar", dockerSaveOld(t, stackImage(t))) }, "docker-save"},
		{"docker-save old gzip layers", func(t *testing.T) string {
			return writeTemp(t, "i.tar", dockerSaveOld(t, stackImage(t, "gzip", "zstd", "")))
		}, "docker-save"},
		{"docker-save old, gzipped", func(t *testing.T) string { return writeTemp(t, "i.tgz", gz(dockerSaveOld(t, stackImage(t)))) }, "docker-save"},
		{"docker-save 25", func(t *testing.T) string { return writeTemp(t, "i.tar", dockerSaveOCI(t, stackImage(t, "", "gzip"))) }, "docker-save"},
		{"oci archive", func(t *testing.T) string {
			return writeTemp(t, "i.tar", ociArchive(t, stackImage(t, "zstd", "gzip", "xz")))
		}, "oci"},
		{"oci directory", func(t *testing.T) string {
			d := t.TempDir()
			ociDir(t, d, stackImage(t, "gzip", "gzip", "gzip"))
			return d
		}, "oci"},
		{"docker-save 25, unpacked", func(t *testing.T) string {
			d := t.TempDir()
			ociFiles(t, true, stackImage(t, "zstd")).writeDir(t, d)
			return d
		}, "docker-save"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dest, res, err := importT(t, tc.src(t), Options{})
			if err != nil {
				t.Fatal(err)
			}
			if res.Format != tc.format || res.Layers != 3 || res.Image != "stack:1" && res.Image != "docker.io/library/stack:1" {
				t.Errorf("result %+v", res)
			}
			want := Dropped{Devices: 2, Setid: 2, Xattrs: 1}
			if res.Dropped != want {
				t.Errorf("dropped %+v, want %+v", res.Dropped, want)
			}
			sameTree(t, tree(t, dest), stackWant)
			owners(t, dest, os.Getuid(), os.Getgid())
			wantConfig(t, dest, Config{Entrypoint: stackConfig.Entrypoint, Cmd: stackConfig.Cmd, Env: stackConfig.Env,
				WorkingDir: "/data", User: "1000:1000", Image: res.Image})
			stackDetails(t, dest)
		})
	}
}

// stackDetails checks what the tree does not show: times, xattrs, that a
// hardlink is one inode.
func stackDetails(t testing.TB, dest string) {
	t.Helper()
	for _, p := range []string{"bin/tool", "etc", "ro", "."} {
		fi, err := os.Lstat(filepath.Join(dest, p))
		if err != nil || !fi.ModTime().Equal(epoch) {
			t.Errorf("%s: mtime %v (%v), want %v", p, fi.ModTime(), err, epoch)
		}
	}
	buf := make([]byte, 16)
	if n, err := unix.Lgetxattr(filepath.Join(dest, "etc/shadow"), "user.note", buf); err != nil || string(buf[:n]) != "hi" {
		t.Errorf("etc/shadow user.note: %q, %v", buf[:max(n, 0)], err)
	}
	var a, b unix.Stat_t
	_ = unix.Lstat(filepath.Join(dest, "data/link-a"), &a)
	_ = unix.Lstat(filepath.Join(dest, "data/link-b"), &b)
	if a.Ino != b.Ino {
		t.Errorf("data/link-a and data/link-b are not one inode")
	}
}

// With Preserve (root only), owners, setuid bits, devices and privileged
// xattrs stay as in the image.
func TestImportPreserve(t *testing.T) {
	if os.Getuid() != 0 {
		skipOrFail(t, "Preserve needs root (chown, mknod)")
	}
	src := writeTemp(t, "i.tar", dockerSaveOCI(t, stackImage(t, "gzip")))
	dest, res, err := importT(t, src, Options{Preserve: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Dropped != (Dropped{}) {
		t.Errorf("dropped %+v", res.Dropped)
	}
	want := map[string]string{}
	for k, v := range stackWant {
		want[k] = v
	}
	want["usr/bin/su"] = `file 4755 "su"`
	want["usr/bin/wall"] = `file 2755 "wall"`
	want["dev/null"] = "char 0666 1,3"
	want["dev/null2"] = "char 0666 1,3"
	sameTree(t, tree(t, dest), want)
	for p, id := range map[string][2]uint32{"etc/shadow": {0, 42}, "home/user": {1000, 1000}, "bin/tool": {0, 0}} {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(dest, p), &st); err != nil || st.Uid != id[0] || st.Gid != id[1] {
			t.Errorf("%s: owner %d:%d, want %v (%v)", p, st.Uid, st.Gid, id, err)
		}
	}
	buf := make([]byte, 16)
	if n, err := unix.Lgetxattr(filepath.Join(dest, "etc/shadow"), "trusted.x", buf); err != nil || string(buf[:n]) != "1" {
		t.Errorf("etc/shadow trusted.x: %q, %v", buf[:max(n, 0)], err)
	}
}

// Standard input: an image archive is copied aside first, a rootfs streams.
func TestImportStdin(t *testing.T) {
	img := dockerSaveOld(t, stackImage(t))
	for name, b := range map[string][]byte{
		"docker-save":       img,
		"docker-save gzip":  compress(t, "gzip", img),
		"oci xz":            compress(t, "xz", ociArchive(t, stackImage(t))),
		"oci, tar of a dir": ociFiles(t, false, stackImage(t, "gzip")).tarOfDir(t),
	} {
		t.Run(name, func(t *testing.T) {
			dest, res, err := importT(t, "-", Options{Stdin: bytes.NewReader(b)})
			if err != nil {
				t.Fatal(err)
			}
			if res.Layers != 3 {
				t.Errorf("result %+v", res)
			}
			sameTree(t, tree(t, dest), stackWant)
		})
	}
}

// rootfsEntries is a plain root file system.
func rootfsEntries(t testing.TB) []byte {
	return mkTar(t, dirE("./", 0o755), dirE("./bin/", 0o755), fileE("./bin/busybox", "bb", 0o755),
		symE("./bin/sh", "busybox"), fileE("./bin/ping", "ping", 0o4755), dirE("./etc/", 0o755),
		fileE("./etc/os-release", "ID=test\n", 0o644), charE("./dev-console", 0o600, 5, 1))
}

var rootfsWant = map[string]string{
	".": "dir 0755", "bin": "dir 0755", "bin/busybox": `file 0755 "bb"`, "bin/sh": "link -> busybox",
	"bin/ping": `file 0755 "ping"`, "etc": "dir 0755", "etc/os-release": `file 0644 "ID=test\n"`,
}

func TestImportRootfs(t *testing.T) {
	raw := rootfsEntries(t)
	for _, kind := range []string{"", "gzip", "zstd", "xz"} {
		b := compress(t, kind, raw)
		for _, stdin := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s stdin=%v", kind, stdin), func(t *testing.T) {
				src, o := writeTemp(t, "rootfs.tar", b), Options{}
				if stdin {
					src, o.Stdin = "-", bytes.NewReader(b)
				}
				dest, res, err := importT(t, src, o)
				if err != nil {
					t.Fatal(err)
				}
				if res.Format != "rootfs" || res.Dropped != (Dropped{Devices: 1, Setid: 1}) {
					t.Errorf("result %+v", res)
				}
				sameTree(t, tree(t, dest), rootfsWant)
				wantConfig(t, dest, Config{})
			})
		}
	}
}

// A rootfs re-packed from an earlier import keeps its config file.
func TestImportRootfsKeepsConfig(t *testing.T) {
	b := mkTar(t, dirE(".selfdock/", 0o755), fileE(".selfdock/image.json", `{"Cmd":["/bin/true"]}`, 0o644),
		fileE("f", "f", 0o644))
	dest, _, err := importT(t, writeTemp(t, "r.tar", b), Options{})
	if err != nil {
		t.Fatal(err)
	}
	wantConfig(t, dest, Config{Cmd: []string{"/bin/true"}})
}

// An image's own .selfdock is replaced by the config file.
func TestImportReplacesImageSidecar(t *testing.T) {
	im := fixImage{layers: [][]byte{mkTar(t, dirE(".selfdock/", 0o755), fileE(".selfdock/image.json", `{"Cmd":["evil"]}`, 0o644),
		fileE(".selfdock/other", "x", 0o644))}, config: v1.Config{Cmd: []string{"good"}}}
	dest, _, err := importT(t, writeTemp(t, "i.tar", dockerSaveOld(t, im)), Options{})
	if err != nil {
		t.Fatal(err)
	}
	wantConfig(t, dest, Config{Cmd: []string{"good"}})
	if _, err := os.Lstat(filepath.Join(dest, ".selfdock/other")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf(".selfdock/other: %v", err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(dest, ConfigPath), &st); err != nil || st.Mode&0o777 != 0o644 {
		t.Errorf("%s: mode %o, %v", ConfigPath, st.Mode, err)
	}
}

func TestReadConfigMissing(t *testing.T) {
	_, err := ReadConfig(t.TempDir())
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), ConfigPath) {
		t.Errorf("ReadConfig of a plain directory: %v", err)
	}
}

func importFile(src, dest string) (*Result, error) {
	return Import(context.Background(), src, dest, Options{})
}

// A directory's recorded mode goes with it: one made again later (here on
// the way to a file) gets its own.
func TestDirModesAfterWhiteout(t *testing.T) {
	l1 := mkTar(t, dirE("d/", 0o700), dirE("d/sub/", 0o555), dirE("e/", 0o500), fileE("e/f", "f", 0o644))
	l2 := mkTar(t, fileE(".wh.d", "", 0o644), fileE("d/sub/new", "new", 0o644), fileE("e", "now a file", 0o600))
	l3 := mkTar(t, fileE(".wh.e", "", 0o644), fileE("e/g", "g", 0o644))
	dest, _, err := importT(t, writeTemp(t, "i.tar", dockerSaveOld(t, fixImage{layers: [][]byte{l1, l2, l3}})), Options{})
	if err != nil {
		t.Fatal(err)
	}
	sameTree(t, tree(t, dest), map[string]string{".": "dir 0755", "d": "dir 0755", "d/sub": "dir 0755",
		"d/sub/new": `file 0644 "new"`, "e": "dir 0755", "e/g": `file 0644 "g"`})
}

// Whiting out many directories costs time in proportion to what goes.
func TestManyWhiteouts(t *testing.T) {
	const n = 5000
	var l1, l2 []ent
	for i := range n {
		d := fmt.Sprintf("d%d/", i)
		l1 = append(l1, dirE(d, 0o755), fileE(d+"f", "", 0o644))
		l2 = append(l2, fileE(fmt.Sprintf(".wh.d%d", i), "", 0o644))
	}
	start := time.Now()
	dest, _, err := importT(t, writeTemp(t, "i.tar", dockerSaveOld(t, fixImage{layers: [][]byte{mkTar(t, l1...), mkTar(t, l2...)}})), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := tree(t, dest); len(got) != 1 {
		t.Errorf("%d entries left", len(got))
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("took %v", d)
	}
}

// A blob that is a FIFO (or a device node) where a layer should be is
// refused without being opened for reading: a FIFO would hang the import.
func TestBlobNotRegular(t *testing.T) {
	d := filepath.Join(t.TempDir(), "layout")
	ociDir(t, d, stackImage(t, "gzip", "gzip", "gzip"))
	blobs, err := filepath.Glob(filepath.Join(d, "blobs", "sha256", "*"))
	if err != nil || len(blobs) == 0 {
		t.Fatalf("no blobs: %v", err)
	}
	for _, b := range blobs {
		if err := os.Remove(b); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mkfifo(b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() { _, _, err := importT(t, d, Options{}); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("FIFO blobs: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the import hangs on a FIFO blob")
	}
}
