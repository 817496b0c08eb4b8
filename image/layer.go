package image

import (
	"bytes"
	"fmt"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// spec is what Import needs of an image: its layers in order and the part
// of its config a run uses.
type spec struct {
	format string
	ref    string
	config Config
	layers []layerRef
}

// layerRef is one layer: where its blob is, and the digests it must have.
type layerRef struct {
	name   string  // path in the store
	digest v1.Hash // of the blob as stored; zero when the archive names none
	diffID v1.Hash // of the uncompressed tar, from the config: always checked
	size   int64
}

// readSpec reads the manifest (docker save's manifest.json, else the OCI
// index.json) and the config it names.
func readSpec(s store, pick string) (*spec, error) {
	switch {
	case s.has("manifest.json"):
		return dockerSpec(s, pick)
	case s.has("index.json"):
		return ociSpec(s, pick)
	}
	return nil, errNotImage
}

// readConfig reads and checks an image config blob.
func readConfigFile(s store, name string, want v1.Hash, layers int) (*v1.ConfigFile, error) {
	b, err := readBlob(s, name, want)
	if err != nil {
		return nil, fmt.Errorf("config %w", err)
	}
	cf, err := v1.ParseConfigFile(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("config %q: %w", name, err)
	}
	if n := len(cf.RootFS.DiffIDs); n != layers {
		return nil, fmt.Errorf("config %q lists %d diff_ids for %d layers", name, n, layers)
	}
	return cf, nil
}

func imageConfig(cf *v1.ConfigFile, ref string) Config {
	c := cf.Config
	return Config{Entrypoint: c.Entrypoint, Cmd: c.Cmd, Env: c.Env, WorkingDir: c.WorkingDir, User: c.User, Image: ref}
}

// layoutDir imports from a directory: an OCI image layout, or a docker
// save archive unpacked.
func (im *importer) layoutDir(path string) (*Result, error) {
	root, err := os.OpenRoot(path)
	if err != nil {
		return nil, unwrapPath(err)
	}
	defer root.Close()
	d := dir{root: root}
	if !isImage(d) {
		return im.rootfsDir(path)
	}
	return im.image(d)
}

// image applies an image's layers in order, the first at the bottom.
func (im *importer) image(s store) (*Result, error) {
	sp, err := readSpec(s, im.o.Image)
	if err != nil {
		return nil, err
	}
	var total int64
	for _, l := range sp.layers {
		total += l.size
	}
	im.prog.Start(len(sp.layers), total)
	for i, l := range sp.layers {
		im.prog.Layer(i + 1)
		if err := im.layer(s, l); err != nil {
			return nil, fmt.Errorf("layer %d/%d %q: %w", i+1, len(sp.layers), l.name, err)
		}
	}
	im.cfg = &sp.config
	return &Result{Format: sp.format, Image: sp.ref, Layers: len(sp.layers)}, nil
}

// layer unpacks one layer as it streams, then checks the blob's digest
// (when known) and the diff_id of its uncompressed tar. A mismatch fails
// the import, which removes everything unpacked.
func (im *importer) layer(s store, l layerRef) error {
	rc, _, err := s.open(l.name)
	if err != nil {
		return err
	}
	defer rc.Close()
	raw := newVerifier(&counter{r: rc, p: im.prog}, l.digest)
	dec, err := decompress(raw)
	if err != nil {
		return err
	}
	diff := newVerifier(dec, l.diffID)
	err = im.a.applyTar(im.ctx, diff)
	if err == nil {
		err = drain(diff)
	}
	dec.Close()
	if err == nil {
		err = drain(raw)
	}
	if err != nil {
		return err
	}
	if err := diff.check(); err != nil {
		return fmt.Errorf("diff_id: %w", err)
	}
	return raw.check()
}
