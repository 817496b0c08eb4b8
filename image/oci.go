package image

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Annotations that name an image in an OCI layout's index.json.
const (
	annotRefName       = "org.opencontainers.image.ref.name"
	annotContainerName = "io.containerd.image.name"
)

// ociSpec reads an OCI image layout (directory or tarball): index.json
// names manifests by digest, possibly through nested indexes (one per
// platform); every blob is read from blobs/ALG/HEX and checked against its
// digest.
func ociSpec(s store, pick string) (*spec, error) {
	idx, err := readIndex(s, "index.json", v1.Hash{})
	if err != nil {
		return nil, err
	}
	desc, ref, err := pickOCI(idx.Manifests, pick)
	if err != nil {
		return nil, err
	}
	desc, err = platformManifest(s, desc, 0)
	if err != nil {
		return nil, err
	}
	b, err := readBlob(s, blobPath(desc.Digest), desc.Digest)
	if err != nil {
		return nil, fmt.Errorf("manifest %w", err)
	}
	m, err := v1.ParseManifest(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", desc.Digest, err)
	}
	cf, err := readConfigFile(s, blobPath(m.Config.Digest), m.Config.Digest, len(m.Layers))
	if err != nil {
		return nil, err
	}
	sp := &spec{format: "oci", ref: ref, config: imageConfig(cf, ref)}
	for i, l := range m.Layers {
		sp.layers = append(sp.layers, layerRef{
			name: blobPath(l.Digest), digest: l.Digest, diffID: cf.RootFS.DiffIDs[i], size: l.Size,
		})
	}
	return sp, nil
}

func readIndex(s store, name string, want v1.Hash) (*v1.IndexManifest, error) {
	b, err := readBlob(s, name, want)
	if err != nil {
		return nil, err
	}
	idx, err := v1.ParseIndexManifest(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%q: %w", name, err)
	}
	return idx, nil
}

// refNames are the names an index gives a manifest.
func refNames(d v1.Descriptor) []string {
	var out []string
	for _, k := range []string{annotContainerName, annotRefName} {
		if v := d.Annotations[k]; v != "" {
			out = append(out, v)
		}
	}
	return out
}

// pickOCI chooses the manifest named pick, or the only one. A bare
// org.opencontainers.image.ref.name ("latest") matches pick's tag.
func pickOCI(descs []v1.Descriptor, pick string) (v1.Descriptor, string, error) {
	var names []string
	for _, d := range descs {
		if n := refNames(d); len(n) > 0 {
			names = append(names, n[0])
		}
	}
	if pick == "" {
		switch len(descs) {
		case 0:
			return v1.Descriptor{}, "", errors.New("index.json lists no image")
		case 1:
			ref := ""
			if n := refNames(descs[0]); len(n) > 0 {
				ref = n[0]
			}
			return descs[0], ref, nil
		}
		return v1.Descriptor{}, "", fmt.Errorf("the archive holds %d images (%s): pick one with --image NAME:TAG",
			len(descs), listNames(names))
	}
	want := normalizeRef(pick)
	for _, d := range descs {
		for _, n := range refNames(d) {
			bare := !strings.ContainsAny(n, ":/@")
			if normalizeRef(n) == want || (bare && n == tagOf(pick)) {
				return d, pick, nil
			}
		}
	}
	return v1.Descriptor{}, "", fmt.Errorf("no image %q in the archive (it has: %s)", pick, listNames(names))
}

// platformManifest follows nested indexes down to the manifest for this
// machine's OS and architecture (attestation manifests, whose platform is
// unknown/unknown, never match).
func platformManifest(s store, d v1.Descriptor, depth int) (v1.Descriptor, error) {
	if !d.MediaType.IsIndex() {
		return d, nil
	}
	if depth > 4 {
		return d, errors.New("indexes nested too deep")
	}
	idx, err := readIndex(s, blobPath(d.Digest), d.Digest)
	if err != nil {
		return d, fmt.Errorf("index %w", err)
	}
	var have []string
	for _, m := range idx.Manifests {
		p := m.Platform
		if p == nil || (p.OS == runtime.GOOS && p.Architecture == runtime.GOARCH) {
			if m.MediaType.IsImage() || m.MediaType.IsIndex() || m.MediaType == "" {
				return platformManifest(s, m, depth+1)
			}
		}
		if p != nil {
			have = append(have, p.String())
		}
	}
	return d, fmt.Errorf("no image for %s/%s in index %s (it has: %s)", runtime.GOOS, runtime.GOARCH, d.Digest,
		strings.Join(have, ", "))
}
