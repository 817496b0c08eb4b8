package image

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// arena is a test's playground: an "outside" directory holding a
// sentinel file, next to where the import goes. After a refused import,
// outside must be unchanged and the parent must hold nothing new.
type arena struct {
	parent, outside, dest string
}

func newArena(t testing.TB) *arena {
	t.Helper()
	parent := t.TempDir()
	a := &arena{parent: parent, outside: filepath.Join(parent, "outside"), dest: filepath.Join(parent, "dest")}
	if err := os.Mkdir(a.outside, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(a.outside, "sentinel"), []byte("untouched"), 0o644); err != nil {
		t.Fatal(err)
	}
	return a
}

// untouched fails unless the import left no trace: outside as it was,
// no destination, no temporary sibling, nothing else in the parent.
func (a *arena) untouched(t testing.TB, allowed ...string) {
	t.Helper()
	ents, _ := os.ReadDir(a.outside)
	if len(ents) != 1 || ents[0].Name() != "sentinel" {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("outside changed: %v", names)
	}
	if b, err := os.ReadFile(filepath.Join(a.outside, "sentinel")); err != nil || string(b) != "untouched" {
		t.Errorf("sentinel changed: %q %v", b, err)
	}
	ents, _ = os.ReadDir(a.parent)
	for _, e := range ents {
		ok := e.Name() == "outside"
		for _, n := range allowed {
			ok = ok || e.Name() == n
		}
		if !ok {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}

// maliciousLayers are layers that try to write outside DIR, each with the
// error it must get. abs is the absolute path of the outside directory.
func maliciousLayers(t testing.TB, abs string) []struct {
	name, err string
	layer     []byte
} {
	sym := func(target string) ent { return symE("evil", target) }
	return []struct {
		name, err string
		layer     []byte
	}{
		{"dotdot", `".." in path`, mkTar(t, fileE("../outside/pwned", "x", 0o644))},
		{"dotdot inside", `".." in path`, mkTar(t, dirE("a/", 0o755), fileE("a/../../outside/pwned", "x", 0o644))},
		{"dotdot directory", `".." in path`, mkTar(t, dirE("../outside/newdir/", 0o755))},
		{"absolute", "absolute path", mkTar(t, fileE(abs+"/pwned", "x", 0o644))},
		{"symlink relative, write through", "points outside", mkTar(t, sym("../outside"), fileE("evil/pwned", "x", 0o644))},
		{"symlink absolute, write through", "points outside", mkTar(t, sym(abs), fileE("evil/pwned", "x", 0o644))},
		{"symlink chain", "points outside", mkTar(t, symE("a", "."), symE("b", "a/../.."), fileE("b/outside/pwned", "x", 0o644))},
		{"symlink, mkdir through", "points outside", mkTar(t, sym(abs), dirE("evil/newdir/", 0o755))},
		{"symlink, overwrite through", "points outside", mkTar(t, sym(abs), fileE("evil/sentinel", "pwned", 0o644))},
		{"symlink, symlink through", "points outside", mkTar(t, sym(abs), symE("evil/pwned", "/etc/passwd"))},
		{"symlink, fifo through", "points outside", mkTar(t, sym(abs), fifoE("evil/pwned", 0o644))},
		{"hardlink absolute", "absolute path", mkTar(t, hardE("h", abs+"/sentinel"))},
		{"hardlink dotdot", `".." in path`, mkTar(t, hardE("h", "../outside/sentinel"))},
		{"hardlink through symlink", "points outside", mkTar(t, sym(abs), hardE("h", "evil/sentinel"))},
		{"hardlink into symlink", "points outside", mkTar(t, sym(abs), fileE("f", "f", 0o644), hardE("evil/pwned", "f"))},
		{"whiteout through symlink", "points outside", mkTar(t, sym(abs), fileE("evil/.wh.sentinel", "", 0o644))},
		{"opaque through symlink", "points outside", mkTar(t, sym(abs), fileE("evil/.wh..wh..opq", "", 0o644))},
		{"whiteout dot", "not a valid whiteout", mkTar(t, fileE(".wh..", "", 0o644))},
		{"whiteout dotdot", "not a valid whiteout", mkTar(t, fileE("sub/.wh...", "", 0o644))},
		{"hardlink to missing", "no such file", mkTar(t, hardE("h", "missing"))},
		{"root not a directory", "not a directory", mkTar(t, fileE(".", "x", 0o644))},
	}
}

// Every malicious layer is refused, as a rootfs and as the second layer
// of an image, with nothing written outside and nothing left behind.
func TestMalicious(t *testing.T) {
	probe := newArena(t)
	for _, tc := range maliciousLayers(t, probe.outside) {
		for _, as := range []string{"rootfs", "layer"} {
			t.Run(tc.name+" as "+as, func(t *testing.T) {
				a := newArena(t)
				layer := maliciousLayers(t, a.outside)
				var b []byte
				for _, l := range layer {
					if l.name == tc.name {
						b = l.layer
					}
				}
				if as == "layer" {
					benign := mkTar(t, dirE("etc/", 0o755), fileE("etc/hosts", "h", 0o644))
					b = dockerSaveOld(t, fixImage{layers: [][]byte{benign, b}, comp: []string{"", "gzip"}})
				}
				src := filepath.Join(a.parent, "src.tar")
				if err := os.WriteFile(src, b, 0o644); err != nil {
					t.Fatal(err)
				}
				_, err := Import(context.Background(), src, a.dest, Options{})
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("got %v, want an error containing %q", err, tc.err)
				} else if as == "layer" && !strings.Contains(err.Error(), "layer 2/2") {
					t.Errorf("error does not name the layer: %v", err)
				}
				if err != nil && strings.Contains(err.Error(), "\n") {
					t.Errorf("error of more than one line: %q", err)
				}
				a.untouched(t, "src.tar")
			})
		}
	}
}

// Replacing a symlink is not writing through it: a later entry of the
// same name replaces the link, the target is untouched.
func TestSymlinkReplacedNotFollowed(t *testing.T) {
	a := newArena(t)
	target := filepath.Join(a.outside, "sentinel")
	b := mkTar(t, symE("f", target), fileE("f", "pwned", 0o644), symE("d", a.outside), dirE("d/", 0o755),
		symE("l", target), hardE("l2", "l"))
	src := filepath.Join(a.parent, "src.tar")
	os.WriteFile(src, b, 0o644)
	if _, err := Import(context.Background(), src, a.dest, Options{}); err != nil {
		t.Fatal(err)
	}
	a.untouched(t, "src.tar", "dest")
	sameTree(t, tree(t, a.dest), map[string]string{".": "dir 0755", "f": `file 0644 "pwned"`, "d": "dir 0755",
		"l": "link -> " + target, "l2": "link -> " + target})
	removeTree(a.dest)
}

// Corrupt and truncated archives fail with a clear error, leaving nothing.
func TestCorrupt(t *testing.T) {
	img := stackImage(t, "gzip", "", "zstd")
	good := dockerSaveOld(t, img)
	layer := stackLayers(t)[0]
	gzLayer := compress(t, "gzip", layer)
	cases := []struct {
		name, err string
		b         []byte
	}{
		{"truncated archive", "tar: unexpected EOF", good[:len(good)/2]},
		{"truncated gzip archive", "gzip: unexpected EOF", halve(compress(t, "gzip", good))},
		{"truncated rootfs", "unexpected EOF", layer[:len(layer)-1500]},
		{"truncated gzip rootfs", "gzip: unexpected EOF", gzLayer[:len(gzLayer)-100]},
		{"corrupt gzip rootfs", "gzip", append(append([]byte{}, gzLayer[:40]...), bytes.Repeat([]byte{0x55}, 400)...)},
		{"not an archive", "tar", []byte("hello, world\n")},
		{"empty file", "", nil},
		{"truncated gzip layer", "gzip: unexpected EOF", truncatedLayer(t, layer)},
		{"wrong diff_id", "diff_id: digest mismatch", dockerSaveOld(t, fixImage{layers: [][]byte{layer},
			diffIDs: func(h []v1.Hash) []v1.Hash { return []v1.Hash{digestOf([]byte("other"))} }})},
		{"diff_ids missing", "lists 0 diff_ids for 1 layers", dockerSaveOld(t, fixImage{layers: [][]byte{layer},
			diffIDs: func([]v1.Hash) []v1.Hash { return nil }})},
		{"config tampered", "digest mismatch", dockerSaveOld(t, fixImage{layers: [][]byte{layer},
			configRaw: func(b []byte) []byte { return bytes.Replace(b, []byte(`"os":"linux"`), []byte(`"os":"LINUX"`), 1) }})},
		{"no manifest", "not a docker save or OCI image", mkTar(t, fileE("oci-layout", "{}", 0o644), fileE("blobs/x", "", 0o644))},
	}
	// A blob whose bytes differ from its digest but decompress to the
	// same tar: only the blob digest can tell.
	bl := ociFiles(t, true, fixImage{layers: [][]byte{layer}, comp: []string{"gzip"}})
	for _, n := range bl.names {
		if strings.HasPrefix(n, "blobs/") && bytes.HasPrefix(bl.data[n], []byte{0x1f, 0x8b}) {
			bl.data[n] = compress(t, "gzip-named", layer)
		}
	}
	cases = append(cases, struct {
		name, err string
		b         []byte
	}{"wrong blob digest", "digest mismatch", bl.tar(t)})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := newArena(t)
			src := filepath.Join(a.parent, "src")
			os.WriteFile(src, tc.b, 0o644)
			_, err := Import(context.Background(), src, a.dest, Options{})
			if tc.name == "empty file" {
				// An empty tar is an empty root file system.
				if err != nil {
					t.Fatal(err)
				}
				removeTree(a.dest)
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("got %v, want an error containing %q", err, tc.err)
			}
			a.untouched(t, "src")
		})
	}
}

func halve(b []byte) []byte { return b[:len(b)/2] }

// truncatedLayer is an intact archive whose gzip layer is cut short.
func truncatedLayer(t testing.TB, layer []byte) []byte {
	f := ociFiles(t, true, fixImage{layers: [][]byte{layer}, comp: []string{"gzip"}})
	for _, n := range f.names {
		if strings.HasPrefix(n, "blobs/") && bytes.HasPrefix(f.data[n], []byte{0x1f, 0x8b}) {
			f.data[n] = f.data[n][:len(f.data[n])-64]
		}
	}
	return f.tar(t)
}

// An archive with more entries than the limit is refused.
func TestEntryLimit(t *testing.T) {
	var ents []ent
	for i := range 60 {
		ents = append(ents, fileE("f"+strings.Repeat("x", i), "", 0o644))
	}
	b := mkTar(t, ents...)
	for _, src := range []string{"file", "image"} {
		a := newArena(t)
		p := filepath.Join(a.parent, "src")
		if src == "image" {
			b = dockerSaveOld(t, fixImage{layers: [][]byte{b}})
		}
		os.WriteFile(p, b, 0o644)
		_, err := Import(context.Background(), p, a.dest, Options{MaxEntries: 50})
		if err == nil || !strings.Contains(err.Error(), "more than 50 entries") {
			t.Errorf("%s: got %v", src, err)
		}
		a.untouched(t, "src")
	}
	if DefaultMaxEntries < 1_000_000 {
		t.Errorf("DefaultMaxEntries %d is too small for real images", DefaultMaxEntries)
	}
}

// A cancelled import leaves nothing behind.
func TestCancel(t *testing.T) {
	a := newArena(t)
	src := filepath.Join(a.parent, "src")
	os.WriteFile(src, dockerSaveOld(t, stackImage(t)), 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Import(ctx, src, a.dest, Options{}); err == nil || !strings.Contains(err.Error(), "context canceled") {
		t.Errorf("got %v", err)
	}
	a.untouched(t, "src")
}

// A sparse file is refused: its holes would be written out as zeros, a
// terabyte from a few bytes of archive.
func TestSparseRefused(t *testing.T) {
	if _, err := exec.LookPath("tar"); err != nil {
		skipOrFail(t, "no GNU tar to make a sparse archive")
	}
	a := newArena(t)
	big := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(big, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(big, 1<<40); err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"gnu", "pax"} {
		src := filepath.Join(a.parent, "sparse.tar")
		out, err := exec.Command("tar", "--sparse", "--format="+format, "-C", filepath.Dir(big), "-cf", src, "big").CombinedOutput()
		if err != nil {
			t.Fatalf("tar: %v\n%s", err, out)
		}
		_, err = Import(context.Background(), src, a.dest, Options{})
		if err == nil || !strings.Contains(err.Error(), "sparse file") {
			t.Errorf("%s: got %v", format, err)
		}
		a.untouched(t, "sparse.tar")
	}
}

// An image directory's manifest cannot name files outside the directory:
// os.Root keeps every open inside, even of a valid layer.
func TestDirManifestStaysInside(t *testing.T) {
	parent := t.TempDir()
	layer := mkTar(t, fileE("stolen", "x", 0o644))
	os.WriteFile(filepath.Join(parent, "layer.tar"), layer, 0o644)
	d := filepath.Join(parent, "img")
	os.Mkdir(d, 0o755)
	for _, name := range []string{"../layer.tar", filepath.Join(parent, "layer.tar")} {
		img := fixImage{layers: [][]byte{layer}}
		b := img.blobs(t)
		os.WriteFile(filepath.Join(d, "config.json"), b.config, 0o644)
		os.WriteFile(filepath.Join(d, "manifest.json"), mustJSON(t, []dockerEntry{{Config: "config.json", Layers: []string{name}}}), 0o644)
		dest, _, err := importT(t, d, Options{})
		if err == nil || !strings.Contains(err.Error(), "escapes") {
			t.Errorf("layer %q outside the image directory: %v", name, err)
		}
		if _, serr := os.Lstat(dest); serr == nil {
			t.Errorf("%s exists after %v", dest, err)
		}
	}
}
