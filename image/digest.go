package image

import (
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"regexp"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// verifier hashes what is read through it, to compare with a digest at
// the end (the content is unpacked as it streams, into the temporary tree
// that a mismatch removes).
type verifier struct {
	r    io.Reader
	h    hash.Hash // nil when no digest is known
	want v1.Hash
}

func newVerifier(r io.Reader, want v1.Hash) *verifier {
	v := &verifier{r: r, want: want}
	if want.Algorithm != "" {
		v.h, _ = v1.Hasher(want.Algorithm) // nil for an algorithm v1.Hash would not parse
	}
	return v
}

func (v *verifier) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	if v.h != nil {
		v.h.Write(p[:n])
	}
	return n, err
}

// check compares the digest of everything read with the one wanted.
func (v *verifier) check() error {
	if v.h == nil {
		return nil
	}
	got := hex.EncodeToString(v.h.Sum(nil))
	if got != v.want.Hex {
		return fmt.Errorf("digest mismatch: got %s:%s, want %s", v.want.Algorithm, got, v.want)
	}
	return nil
}

// drain reads r to its end, so that a verifier has seen everything.
func drain(r io.Reader) error {
	_, err := io.Copy(io.Discard, r)
	return err
}

// Compiled on first use: every selfdock start (run's hot path included)
// would otherwise pay for them in package initialisation.
var (
	blobName   = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^blobs/([a-z0-9]+)/([0-9a-f]+)$`) })
	configName = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^(?:sha256:)?([0-9a-f]{64})(?:\.json)?$`)
	})
)

// nameDigest is the digest that a docker save archive's file name states
// for its content: "blobs/ALG/HEX" (Docker 25 and later, OCI layouts), and
// for a config also "HEX.json" (older docker save, where HEX is the image
// ID) or "sha256:HEX" (go-containerregistry). Layer names of older
// archives ("ID/layer.tar", "HEX.tar") name no digest of their bytes:
// those layers are checked against the config's diff_ids only.
func nameDigest(name string, config bool) v1.Hash {
	name = archiveName(name)
	if m := blobName().FindStringSubmatch(name); m != nil {
		if h, err := v1.NewHash(m[1] + ":" + m[2]); err == nil {
			return h
		}
	}
	if m := configName().FindStringSubmatch(name); config && m != nil && (strings.Contains(name, ":") || strings.HasSuffix(name, ".json")) {
		if h, err := v1.NewHash("sha256:" + m[1]); err == nil {
			return h
		}
	}
	return v1.Hash{}
}
