package image

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func oneFile(t testing.TB, name, body string) fixImage {
	return fixImage{tags: []string{name}, layers: [][]byte{mkTar(t, fileE("which", body, 0o644))}}
}

// An archive of several images needs --image; it picks by docker's name.
func TestPickImage(t *testing.T) {
	a, b := oneFile(t, "alpha:1", "alpha"), oneFile(t, "quay.io/org/beta:2", "beta")
	archives := map[string][]byte{
		"old": dockerSaveOld(t, a, b), "docker 25": dockerSaveOCI(t, a, b), "oci": ociArchive(t, a, b),
	}
	for name, arc := range archives {
		t.Run(name, func(t *testing.T) {
			src := writeTemp(t, "multi.tar", arc)
			_, _, err := importT(t, src, Options{})
			if err == nil || !strings.Contains(err.Error(), "holds 2 images") || !strings.Contains(err.Error(), "--image") {
				t.Errorf("no --image: %v", err)
			}
			for pick, want := range map[string]string{
				"alpha:1": "alpha", "docker.io/library/alpha:1": "alpha", "quay.io/org/beta:2": "beta",
			} {
				dest, res, err := importT(t, src, Options{Image: pick})
				if err != nil {
					t.Fatalf("--image %s: %v", pick, err)
				}
				if b, _ := os.ReadFile(filepath.Join(dest, "which")); string(b) != want {
					t.Errorf("--image %s: got %q", pick, b)
				}
				if res.Image == "" {
					t.Errorf("--image %s: no name in the result", pick)
				}
			}
			if _, _, err := importT(t, src, Options{Image: "gamma:3"}); err == nil || !strings.Contains(err.Error(), `no image "gamma:3"`) {
				t.Errorf("--image gamma:3: %v", err)
			}
		})
	}
}

func TestNormalizeRef(t *testing.T) {
	for in, want := range map[string]string{
		"busybox":                                "docker.io/library/busybox:latest",
		"busybox:1.36":                           "docker.io/library/busybox:1.36",
		"library/busybox":                        "docker.io/library/busybox:latest",
		"index.docker.io/library/busybox:latest": "docker.io/library/busybox:latest",
		"user/app:v1":                            "docker.io/user/app:v1",
		"localhost:5000/app":                     "localhost:5000/app:latest",
		"localhost/app:x":                        "localhost/app:x",
		"quay.io/org/app@sha256:abc":             "quay.io/org/app@sha256:abc",
		"registry.example.com:443/a/b/c:tag":     "registry.example.com:443/a/b/c:tag",
	} {
		if got := normalizeRef(in); got != want {
			t.Errorf("normalizeRef(%q) = %q, want %q", in, got, want)
		}
	}
}

// A multi-platform index: the manifest for this machine is taken, the
// others (and attestations) are not.
func TestPlatformIndex(t *testing.T) {
	mine := oneFile(t, "x", "mine")
	other := oneFile(t, "x", "other")
	f := ociFiles(t, false, other, mine) // two manifests, blobs of both
	var idx v1.IndexManifest
	if err := json.Unmarshal(f.data["index.json"], &idx); err != nil {
		t.Fatal(err)
	}
	arch := "arm64"
	if runtime.GOARCH == "arm64" {
		arch = "amd64"
	}
	idx.Manifests[0].Platform = &v1.Platform{OS: "linux", Architecture: arch}
	idx.Manifests[0].Annotations = nil
	idx.Manifests[1].Platform = &v1.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH}
	idx.Manifests[1].Annotations = nil
	att := idx.Manifests[0]
	att.Platform = &v1.Platform{OS: "unknown", Architecture: "unknown"}
	nested := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex,
		Manifests: []v1.Descriptor{idx.Manifests[0], att, idx.Manifests[1]}}
	nb := mustJSON(t, nested)
	nd := digestOf(nb)
	f.add(blobPath(nd), nb)
	top := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{{
		MediaType: types.OCIImageIndex, Size: int64(len(nb)), Digest: nd,
		Annotations: map[string]string{annotRefName: "multi:1"},
	}}}
	f.add("index.json", mustJSON(t, top))
	dest, res, err := importT(t, writeTemp(t, "oci.tar", f.tar(t)), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dest, "which")); string(b) != "mine" {
		t.Errorf("platform %s/%s: got %q", runtime.GOOS, runtime.GOARCH, b)
	}
	if res.Image != "multi:1" {
		t.Errorf("name %q", res.Image)
	}
	// Without a manifest for this machine: a clear error.
	nested.Manifests = nested.Manifests[:2]
	nb = mustJSON(t, nested)
	f.add(blobPath(digestOf(nb)), nb)
	top.Manifests[0].Digest, top.Manifests[0].Size = digestOf(nb), int64(len(nb))
	f.add("index.json", mustJSON(t, top))
	if _, _, err := importT(t, writeTemp(t, "oci.tar", f.tar(t)), Options{}); err == nil ||
		!strings.Contains(err.Error(), "no image for "+runtime.GOOS+"/"+runtime.GOARCH) {
		t.Errorf("no manifest for this platform: %v", err)
	}
}

func TestDestination(t *testing.T) {
	src := writeTemp(t, "r.tar", rootfsEntries(t))
	parent := t.TempDir()
	full := filepath.Join(parent, "full")
	os.Mkdir(full, 0o755)
	os.WriteFile(filepath.Join(full, "x"), nil, 0o644)
	file := filepath.Join(parent, "file")
	os.WriteFile(file, nil, 0o644)
	for dest, want := range map[string]string{
		full:                                    "exists and is not empty",
		file:                                    "exists and is not a directory",
		filepath.Join(parent, "missing", "sub"): "no such file or directory",
	} {
		if _, err := Import(context.Background(), src, dest, Options{}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want %q", dest, err, want)
		}
	}
	empty := filepath.Join(parent, "empty")
	os.Mkdir(empty, 0o755)
	if _, err := Import(context.Background(), src, empty+"/", Options{}); err != nil {
		t.Errorf("into an empty directory: %v", err)
	}
	sameTree(t, tree(t, empty), rootfsWant)
	ents, _ := os.ReadDir(parent)
	if len(ents) != 3 {
		t.Errorf("parent holds %d entries, want full, file, empty", len(ents))
	}
}

// Progress is told about each layer and every byte of them.
func TestProgress(t *testing.T) {
	img := stackImage(t, "gzip", "zstd", "")
	f := ociFiles(t, false, img)
	var total int64
	for _, l := range img.blobs(t).layers {
		total += int64(len(l))
	}
	p := &recorder{}
	if _, _, err := importT(t, writeTemp(t, "oci.tar", f.tar(t)), Options{Progress: p}); err != nil {
		t.Fatal(err)
	}
	if p.starts != 1 || p.layers != 3 || p.total != total || p.bytes != total || p.last != 3 || !p.done || p.err != nil {
		t.Errorf("progress %+v, want 3 layers of %d bytes", p, total)
	}
	// The bar ends its line with the stage complete.
	var out strings.Builder
	bar := NewBar(&out)
	if _, _, err := importT(t, writeTemp(t, "oci.tar", f.tar(t)), Options{Progress: bar}); err != nil {
		t.Fatal(err)
	}
	if s := out.String(); !strings.HasSuffix(s, "\x1b[K\n") || !strings.Contains(s, "layer 3/3") ||
		!strings.Contains(s, "["+strings.Repeat("=", 32)+"]") {
		t.Errorf("bar drew %q", s)
	}
}

type recorder struct {
	starts, layers, last int
	total, bytes         int64
	done                 bool
	err                  error
}

func (r *recorder) Start(layers int, total int64) { r.starts++; r.layers, r.total = layers, total }
func (r *recorder) Layer(i int)                   { r.last = i }
func (r *recorder) Add(n int)                     { r.bytes += int64(n) }
func (r *recorder) Done(err error)                { r.done, r.err = true, err }
