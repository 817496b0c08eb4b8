package image

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// dockerEntry is one image of a docker save archive's manifest.json.
type dockerEntry struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// dockerSpec reads a docker save archive: manifest.json lists each image's
// config file and layer files (old archives: "ID/layer.tar"; Docker 25 and
// later: "blobs/sha256/HEX", an OCI layout in the same tar).
func dockerSpec(s store, pick string) (*spec, error) {
	b, err := readBlob(s, "manifest.json", v1.Hash{})
	if err != nil {
		return nil, err
	}
	var entries []dockerEntry
	if err := json.Unmarshal(b, &entries); err != nil {
		return nil, fmt.Errorf("manifest.json: %w", err)
	}
	e, ref, err := pickDocker(entries, pick)
	if err != nil {
		return nil, err
	}
	cf, err := readConfigFile(s, e.Config, nameDigest(e.Config, true), len(e.Layers))
	if err != nil {
		return nil, err
	}
	sp := &spec{format: "docker-save", ref: ref, config: imageConfig(cf, ref)}
	for i, name := range e.Layers {
		rc, size, err := s.open(name)
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", i+1, err)
		}
		rc.Close()
		sp.layers = append(sp.layers, layerRef{
			name: name, digest: nameDigest(name, false), diffID: cf.RootFS.DiffIDs[i], size: size,
		})
	}
	return sp, nil
}

// pickDocker chooses the image named pick, or the only one.
func pickDocker(entries []dockerEntry, pick string) (dockerEntry, string, error) {
	var names []string
	for _, e := range entries {
		names = append(names, e.RepoTags...)
	}
	if pick == "" {
		switch len(entries) {
		case 0:
			return dockerEntry{}, "", errors.New("manifest.json lists no image")
		case 1:
			ref := ""
			if len(entries[0].RepoTags) > 0 {
				ref = entries[0].RepoTags[0]
			}
			return entries[0], ref, nil
		}
		return dockerEntry{}, "", fmt.Errorf("the archive holds %d images (%s): pick one with --image NAME:TAG",
			len(entries), listNames(names))
	}
	want := normalizeRef(pick)
	for _, e := range entries {
		for _, t := range e.RepoTags {
			if normalizeRef(t) == want {
				return e, t, nil
			}
		}
	}
	return dockerEntry{}, "", fmt.Errorf("no image %q in the archive (it has: %s)", pick, listNames(names))
}

func listNames(names []string) string {
	if len(names) == 0 {
		return "no named image"
	}
	if len(names) > 10 {
		names = append(names[:10:10], "...")
	}
	return strings.Join(names, ", ")
}
