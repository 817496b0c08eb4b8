package image

import (
	"bytes"
	"io"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// ggcrImage builds the stack image with go-containerregistry, an
// independent writer of both formats.
func ggcrImage(t testing.TB) v1.Image {
	t.Helper()
	var layers []v1.Layer
	for _, l := range stackLayers(t) {
		b := l
		layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
		if err != nil {
			t.Fatal(err)
		}
		layers = append(layers, layer)
	}
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	if img, err = mutate.Config(img, stackConfig); err != nil {
		t.Fatal(err)
	}
	return img
}

func TestGGCRWritten(t *testing.T) {
	img := ggcrImage(t)
	ref := name.MustParseReference("example.org/ggcr/stack:1")
	var buf bytes.Buffer
	if err := tarball.Write(ref, img, &buf); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err == nil {
		err = p.AppendImage(img, layout.WithAnnotations(map[string]string{annotRefName: ref.String()}))
	}
	if err != nil {
		t.Fatal(err)
	}
	for what, src := range map[string]string{"tarball.Write": writeTemp(t, "ggcr.tar", buf.Bytes()), "layout.Write": dir} {
		for _, pick := range []string{"", "example.org/ggcr/stack:1"} {
			dest, res, err := importT(t, src, Options{Image: pick})
			if err != nil {
				t.Fatalf("%s --image %q: %v", what, pick, err)
			}
			if res.Layers != 3 || res.Dropped != (Dropped{Devices: 2, Setid: 2, Xattrs: 1}) {
				t.Errorf("%s: result %+v", what, res)
			}
			sameTree(t, tree(t, dest), stackWant)
			stackDetails(t, dest)
		}
	}
}
