package image

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// ConfigDir and ConfigPath are where Import keeps the image's config,
// relative to the directory it made: one JSON file, apart from the
// image's own files. Whatever an image itself has at ConfigDir is replaced.
const (
	ConfigDir  = ".selfdock"
	ConfigPath = ConfigDir + "/image.json"
)

// MaxConfig bounds the size of the config file, written and read.
const MaxConfig = 1 << 20

// Config is the part of an image's config that a run uses, as the image
// says it (docker's names). Image is the name it was imported as, for
// information.
type Config struct {
	Entrypoint []string `json:"Entrypoint,omitempty"`
	Cmd        []string `json:"Cmd,omitempty"`
	Env        []string `json:"Env,omitempty"`
	WorkingDir string   `json:"WorkingDir,omitempty"`
	User       string   `json:"User,omitempty"`
	Image      string   `json:"Image,omitempty"`
}

// ReadConfig reads the config that Import saved in dir. It never follows a
// symlink out of dir. An error wraps fs.ErrNotExist when dir was not made
// by Import.
func ReadConfig(dir string) (*Config, error) {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(fd)
	c, err := readConfigAt(fd)
	if err != nil {
		return nil, &os.PathError{Op: "read", Path: dir + "/" + ConfigPath, Err: err}
	}
	return c, nil
}

func readConfigAt(root int) (*Config, error) {
	fd, err := openBeneath(root, ConfigPath, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), ConfigPath)
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, errors.New("not a regular file")
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxConfig+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxConfig {
		return nil, fmt.Errorf("larger than %d bytes", MaxConfig)
	}
	var c Config
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// sidecar writes the config file. A rootfs or squashfs has no config of
// its own: one that an earlier import left in it is kept, else an empty
// one is written.
func (im *importer) sidecar() error {
	c := im.cfg
	if c == nil {
		if _, err := readConfigAt(im.st.root); err == nil {
			return nil
		}
		c = &Config{}
	}
	b, err := json.MarshalIndent(c, "", "\t")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if len(b) > MaxConfig {
		return fmt.Errorf("image config: larger than %d bytes", MaxConfig)
	}
	if err := im.writeSidecar(b); err != nil {
		return fmt.Errorf("write %q: %w", ConfigPath, err)
	}
	return nil
}

func (im *importer) writeSidecar(b []byte) error {
	root := im.st.root
	if err := im.a.clear(root, ConfigDir, ConfigDir); err != nil {
		return err
	}
	if err := unix.Mkdirat(root, ConfigDir, 0o700); err != nil {
		return err
	}
	dfd, err := openBeneath(root, ConfigDir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW)
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	if err := unix.Fchmod(dfd, 0o755); err != nil {
		return err
	}
	fd, err := unix.Openat(dfd, "image.json", unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), ConfigPath)
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		return err
	}
	return unix.Fchmod(fd, 0o644)
}
