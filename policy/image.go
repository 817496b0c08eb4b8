package policy

import (
	"encoding/json"
	"fmt"
	"path"
)

// ImageSidecar is where `selfdock import` keeps an image's config inside the
// root file system it made, apart from the image's own files.
const ImageSidecar = "/.selfdock/image.json"

// MaxSidecar bounds what is read of the sidecar file.
const MaxSidecar = 1 << 20

// ImageConfig is the part of an image's config a run uses.
type ImageConfig struct {
	Entrypoint []string `json:"Entrypoint,omitempty"`
	Cmd        []string `json:"Cmd,omitempty"`
	Env        []string `json:"Env,omitempty"`
	WorkingDir string   `json:"WorkingDir,omitempty"`
	User       string   `json:"User,omitempty"`
}

// ParseImageConfig reads a sidecar file's contents.
func ParseImageConfig(b []byte) (*ImageConfig, error) {
	var c ImageConfig
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("image config %s: %w", ImageSidecar, err)
	}
	return &c, nil
}

// ApplyImage completes the plan with the image's config, as Docker and
// Apptainer users expect: the image's Env over the caller's (then -e and -E),
// its Entrypoint and Cmd when no command was given, and its WorkingDir
// unless -C was given.
func (p *Plan) ApplyImage(c *ImageConfig) error {
	base := append(append([]string(nil), p.callerEnv...), c.Env...)
	env, err := Environ(base, p.setEnv, p.unset)
	if err != nil {
		return err
	}
	p.Env = env
	if len(p.Argv) == 0 {
		p.Argv = append(append([]string(nil), c.Entrypoint...), c.Cmd...)
	}
	if p.DirFallback && c.WorkingDir != "" && path.IsAbs(c.WorkingDir) {
		p.Dir = path.Clean(c.WorkingDir)
	}
	return nil
}
