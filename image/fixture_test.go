package image

// Test fixture generators: tar layers, docker save archives (old and
// Docker 25 forms), OCI layouts (directory and tarball), written by hand,
// without Docker, so that every byte is known.

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

var epoch = time.Date(2020, 2, 3, 4, 5, 6, 0, time.UTC)

// ent is one tar entry.
type ent struct {
	name         string
	typ          byte
	mode         int64
	body         string
	link         string
	uid, gid     int
	major, minor int64
	xattrs       map[string]string
}

func dirE(name string, mode int64) ent { return ent{name: name, typ: tar.TypeDir, mode: mode} }
func fileE(name, body string, mode int64) ent {
	return ent{name: name, typ: tar.TypeReg, mode: mode, body: body}
}
func symE(name, target string) ent {
	return ent{name: name, typ: tar.TypeSymlink, mode: 0o777, link: target}
}
func hardE(name, target string) ent {
	return ent{name: name, typ: tar.TypeLink, mode: 0o644, link: target}
}
func charE(name string, mode, major, minor int64) ent {
	return ent{name: name, typ: tar.TypeChar, mode: mode, major: major, minor: minor}
}
func fifoE(name string, mode int64) ent { return ent{name: name, typ: tar.TypeFifo, mode: mode} }
func owned(e ent, uid, gid int) ent     { e.uid, e.gid = uid, gid; return e }

// mkTar writes the entries as a PAX tar, every entry dated epoch.
func mkTar(t testing.TB, ents ...ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		hdr := &tar.Header{
			Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link, Uid: e.uid, Gid: e.gid,
			Devmajor: e.major, Devminor: e.minor, ModTime: epoch, Format: tar.FormatPAX,
		}
		if e.typ == tar.TypeReg {
			hdr.Size = int64(len(e.body))
		}
		for k, v := range e.xattrs {
			if hdr.PAXRecords == nil {
				hdr.PAXRecords = map[string]string{}
			}
			hdr.PAXRecords["SCHILY.xattr."+k] = v
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatalf("tar header %q: %v", e.name, err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func compress(t testing.TB, kind string, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	switch kind {
	case "":
		return b
	case "gzip":
		w := gzip.NewWriter(&buf)
		w.Write(b)
		w.Close()
	case "gzip-named": // same content, other bytes: another blob digest
		w := gzip.NewWriter(&buf)
		w.Name = "other"
		w.Write(b)
		w.Close()
	case "zstd":
		w, _ := zstd.NewWriter(&buf)
		w.Write(b)
		w.Close()
	case "xz":
		w, err := xz.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(b)
		w.Close()
	default:
		t.Fatalf("compression %q", kind)
	}
	return buf.Bytes()
}

func digestOf(b []byte) v1.Hash {
	s := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(s[:])}
}

// fixImage is an image to write: its layers (uncompressed tars), how each
// is compressed in the archive, its config.
type fixImage struct {
	tags   []string
	layers [][]byte
	comp   []string // per layer: "", "gzip", "zstd"; missing means ""
	config v1.Config
	// tamper hooks, for the corruption tests
	diffIDs   func([]v1.Hash) []v1.Hash // replaces the config's diff_ids
	configRaw func([]byte) []byte
}

// blobs are an image's config and layer blobs, as stored.
type blobs struct {
	config  []byte
	layers  [][]byte
	diffIDs []v1.Hash
}

func (im fixImage) blobs(t testing.TB) blobs {
	t.Helper()
	var b blobs
	for i, l := range im.layers {
		kind := ""
		if i < len(im.comp) {
			kind = im.comp[i]
		}
		b.layers = append(b.layers, compress(t, kind, l))
		b.diffIDs = append(b.diffIDs, digestOf(l))
	}
	ids := b.diffIDs
	if im.diffIDs != nil {
		ids = im.diffIDs(ids)
	}
	cf := v1.ConfigFile{Architecture: "amd64", OS: "linux", Config: im.config,
		RootFS: v1.RootFS{Type: "layers", DiffIDs: ids}}
	var err error
	if b.config, err = json.Marshal(cf); err != nil {
		t.Fatal(err)
	}
	return b
}

// files is an ordered set of named files: an archive's or a directory's.
type files struct {
	names []string
	data  map[string][]byte
}

func (f *files) add(name string, b []byte) {
	if f.data == nil {
		f.data = map[string][]byte{}
	}
	if _, ok := f.data[name]; !ok {
		f.names = append(f.names, name)
	}
	f.data[name] = b
}

func (f *files) tar(t testing.TB) []byte {
	var ents []ent
	for _, n := range f.names {
		ents = append(ents, fileE(n, string(f.data[n]), 0o644))
	}
	return mkTar(t, ents...)
}

// tarOfDir is the archive `tar -C DIR -cf - .` would make of the files:
// "./" first, every name with a "./" prefix.
func (f *files) tarOfDir(t testing.TB) []byte {
	ents := []ent{dirE("./", 0o755)}
	for _, n := range f.names {
		ents = append(ents, fileE("./"+n, string(f.data[n]), 0o644))
	}
	return mkTar(t, ents...)
}

func (f *files) writeDir(t testing.TB, dir string) {
	for _, n := range f.names {
		p := filepath.Join(dir, n)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, f.data[n], 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func mustJSON(t testing.TB, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// dockerSaveOld is the docker save form before Docker 25: ID/layer.tar
// (uncompressed, as docker writes them), HEX.json configs, manifest.json
// last, as docker writes it.
func dockerSaveOld(t testing.TB, imgs ...fixImage) []byte {
	var f files
	var manifest []dockerEntry
	for _, im := range imgs {
		b := im.blobs(t)
		e := dockerEntry{RepoTags: im.tags}
		for i, l := range b.layers {
			id := digestOf(append([]byte(fmt.Sprint(i)), l...)).Hex
			f.add(id+"/VERSION", []byte("1.0"))
			f.add(id+"/json", []byte(`{"id":"`+id+`"}`))
			f.add(id+"/layer.tar", l)
			e.Layers = append(e.Layers, id+"/layer.tar")
		}
		cfg := b.config
		name := digestOf(cfg).Hex + ".json"
		if im.configRaw != nil {
			cfg = im.configRaw(cfg)
		}
		f.add(name, cfg)
		e.Config = name
		manifest = append(manifest, e)
	}
	f.add("manifest.json", mustJSON(t, manifest))
	f.add("repositories", []byte("{}"))
	return f.tar(t)
}

// ociFiles lays out images as an OCI image layout; with docker set, it
// adds docker save's manifest.json, as Docker 25 and later write it.
func ociFiles(t testing.TB, docker bool, imgs ...fixImage) *files {
	f := &files{}
	f.add("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`))
	var index v1.IndexManifest
	index.SchemaVersion = 2
	index.MediaType = types.OCIImageIndex
	var manifest []dockerEntry
	for _, im := range imgs {
		b := im.blobs(t)
		m := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1}
		e := dockerEntry{RepoTags: im.tags}
		for _, l := range b.layers {
			d := digestOf(l)
			f.add(blobPath(d), l)
			m.Layers = append(m.Layers, v1.Descriptor{MediaType: types.OCILayer, Size: int64(len(l)), Digest: d})
			e.Layers = append(e.Layers, blobPath(d))
		}
		cd := digestOf(b.config)
		cfg := b.config
		if im.configRaw != nil {
			cfg = im.configRaw(cfg)
		}
		f.add(blobPath(cd), cfg)
		m.Config = v1.Descriptor{MediaType: types.OCIConfigJSON, Size: int64(len(cfg)), Digest: cd}
		e.Config = blobPath(cd)
		mb := mustJSON(t, m)
		md := digestOf(mb)
		f.add(blobPath(md), mb)
		desc := v1.Descriptor{MediaType: types.OCIManifestSchema1, Size: int64(len(mb)), Digest: md}
		if len(im.tags) > 0 {
			desc.Annotations = map[string]string{annotContainerName: "docker.io/library/" + im.tags[0],
				annotRefName: tagOf(im.tags[0])}
		}
		index.Manifests = append(index.Manifests, desc)
		manifest = append(manifest, e)
	}
	f.add("index.json", mustJSON(t, index))
	if docker {
		f.add("manifest.json", mustJSON(t, manifest))
	}
	return f
}

func dockerSaveOCI(t testing.TB, imgs ...fixImage) []byte { return ociFiles(t, true, imgs...).tar(t) }
func ociArchive(t testing.TB, imgs ...fixImage) []byte    { return ociFiles(t, false, imgs...).tar(t) }
func ociDir(t testing.TB, dir string, imgs ...fixImage)   { ociFiles(t, false, imgs...).writeDir(t, dir) }
