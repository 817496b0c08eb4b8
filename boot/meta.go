package boot

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// Where Prepare leaves the new root and what PID 1 reads. /run is a tmpfs on
// any current distribution, and only root may write /run/selfdock.
const (
	Dir      = "/run/selfdock/boot"
	RootDir  = Dir + "/root"      // the tmpfs
	ImageDir = RootDir + "/image" // the unpacked image: the new root
	MetaPath = Dir + "/boot.json" // Meta
	ExePath  = Dir + "/selfdock"  // the copy of selfdock that PID 1 execs
	maxMeta  = 1 << 20            // bytes of boot.json
	realInit = 0xEFFFFFFC         // inode of the initial PID namespace
	initName = "boot-init"        // the subcommand PID 1 is made to run
	initPath = "/sbin/init"       // CMD when neither the user nor the image name one
	defPath  = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// Meta is what the new PID 1 needs to know, written by Prepare and read by
// Init: nothing else crosses the execve.
type Meta struct {
	Root     string   `json:"root"`      // the new root, a directory on the tmpfs
	Path     string   `json:"path"`      // CMD's program, a path in the new root
	Argv     []string `json:"argv"`      // CMD, resolved in the new root
	Env      []string `json:"env"`       // CMD's environment
	WorkDir  string   `json:"work_dir"`  // CMD's working directory in the new root
	TTY      int      `json:"tty"`       // virtual console to switch to; 0: none
	KeepSwap bool     `json:"keep_swap"` // no swapoff
	Grace    int      `json:"grace_ms"`  // between SIGTERM and SIGKILL
	// RealInit: the target was the machine's real PID 1, and the caller
	// said to replace it. Init runs the steps global to the machine only
	// when this is set and it sees itself as the real PID 1.
	RealInit bool `json:"real_init"`
	// OldArgv is how the old init was started (/proc/PID/cmdline, with
	// /proc/PID/exe as its program): Init execs it again when it must give
	// up before the point of no return, so that the old system keeps running.
	OldExe  string   `json:"old_exe"`
	OldArgv []string `json:"old_argv"`
	OldEnv  []string `json:"old_env"`
}

// write saves m at MetaPath, readable by root only.
func (m *Meta) write() error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	tmp := MetaPath + ".new"
	_ = os.Remove(tmp)
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, MetaPath)
}

// readMeta reads Meta from path, which must be a regular file of root's
// that nobody else may write: PID 1 acts on what it says.
func readMeta(path string) (*Meta, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Uid != 0 || st.Mode&0o022 != 0 {
		return nil, fmt.Errorf("read %s: not a regular file that only root may write", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxMeta+1))
	if err != nil {
		return nil, &os.PathError{Op: "read", Path: path, Err: err}
	}
	if len(b) > maxMeta {
		return nil, fmt.Errorf("read %s: larger than %d bytes", path, maxMeta)
	}
	var m Meta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if m.Root == "" || m.Path == "" || len(m.Argv) == 0 {
		return nil, fmt.Errorf("read %s: %w", path, errors.New("no root or no command"))
	}
	return &m, nil
}
