package boot

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/selfdock/selfdock/image"
	"golang.org/x/sys/unix"
)

// plan decides what the new PID 1 runs: the user's CMD, else the image's
// entrypoint and cmd, else /sbin/init; with the image's environment and
// working directory. The program must exist in the new root now: finding
// out after the old system is gone would be too late.
func plan(o Options, root string) (*Meta, error) {
	cfg, err := image.ReadConfig(root)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if cfg == nil {
		cfg = &image.Config{}
	}
	m := &Meta{Root: root, Argv: o.Argv, Env: cfg.Env, WorkDir: cfg.WorkingDir,
		TTY: o.TTY, KeepSwap: o.KeepSwap, Grace: int(o.Grace.Milliseconds())}
	if len(m.Argv) == 0 {
		m.Argv = append(append([]string{}, cfg.Entrypoint...), cfg.Cmd...)
	}
	if len(m.Argv) == 0 {
		m.Argv = []string{initPath}
	}
	if len(m.Env) == 0 {
		m.Env = []string{defPath}
	}
	if m.WorkDir == "" {
		m.WorkDir = "/"
	}
	if o.Target != nil {
		m.RealInit, m.OldExe, m.OldArgv, m.OldEnv = o.Target.RealInit, o.Target.Exe, o.Target.Argv, o.Target.Env
	}
	if m.Path, err = lookPath(root, m.Argv[0], m.Env); err != nil {
		return nil, err
	}
	return m, nil
}

// lookPath finds the program name in the new root as execve will there: a
// name with a slash as it is, else in the image's PATH. Symlinks resolve
// inside the root (RESOLVE_IN_ROOT), as they will after the switch.
func lookPath(root, name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		p := path.Join("/", name)
		return p, executable(root, p)
	}
	dirs := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			dirs = v
		}
	}
	for _, d := range strings.Split(dirs, ":") {
		p := path.Join("/", d, name)
		if executable(root, p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("command %q: not found in the image's PATH %q", name, dirs)
}

// executable checks that p, a path in root, is an executable regular file.
func executable(root, p string) error {
	rfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", root, err)
	}
	defer unix.Close(rfd)
	fd, err := unix.Openat2(rfd, strings.TrimPrefix(p, "/"), &unix.OpenHow{
		Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT})
	if err != nil {
		return fmt.Errorf("command %q in the image: %w", p, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("command %q in the image: %w", p, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Mode&0o111 == 0 {
		return fmt.Errorf("command %q in the image: not an executable file", p)
	}
	return nil
}
