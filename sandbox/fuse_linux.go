package sandbox

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// squashfuse is the FUSE server for images the kernel may not mount; a
// fixed, root-controlled path, never the caller's PATH.
const squashfuse = "/usr/bin/squashfuse"

// fuseUsable says why squashfuse cannot serve an image, or "" if it can:
// it must be installed and the caller must be able to open /dev/fuse (the
// check runs with the caller's file access).
func fuseUsable() string {
	if _, err := os.Stat(squashfuse); err != nil {
		return squashfuse + " is not installed (Debian package squashfuse)"
	}
	if err := unix.Faccessat2(unix.AT_FDCWD, "/dev/fuse", unix.R_OK|unix.W_OK, unix.AT_EACCESS); err != nil {
		return "you may not open /dev/fuse (" + err.Error() + ")"
	}
	return ""
}

// fuseRoot mounts a FUSE file system, read-only, nosuid, nodev, and starts
// squashfuse as the caller to serve the image behind fd from it. The caller
// could mount it with squashfuse themselves; the content is theirs anyway.
func (t *tree) fuseRoot(img int, off uint64) (int, error) {
	dev, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("fuse: %w", err)
	}
	defer unix.Close(dev)
	fs, err := unix.Fsopen("fuse", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("fuse: %w", err)
	}
	defer unix.Close(fs)
	opts := [][2]string{{"fd", strconv.Itoa(dev)}, {"rootmode", "40000"},
		{"user_id", strconv.Itoa(int(t.id.uid))}, {"group_id", strconv.Itoa(int(t.id.gid))}, {"source", "squashfuse"}}
	for _, o := range opts {
		if err := unix.FsconfigSetString(fs, o[0], o[1]); err != nil {
			return -1, fmt.Errorf("fuse %s: %w", o[0], err)
		}
	}
	// The kernel checks permissions; allow_other lets this privileged
	// thread reach the mount too (it lives in our private namespace only).
	for _, flag := range []string{"default_permissions", "allow_other"} {
		if err := unix.FsconfigSetFlag(fs, flag); err != nil && !t.userns {
			return -1, fmt.Errorf("fuse %s: %w", flag, err)
		}
	}
	if err := unix.FsconfigCreate(fs); err != nil {
		return -1, fmt.Errorf("fuse: %w", err)
	}
	m, err := unix.Fsmount(fs, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV)
	if err != nil {
		return -1, fmt.Errorf("fuse: %w", err)
	}
	if err := t.startSquashfuse(dev, img, off); err != nil {
		unix.Close(m)
		return -1, err
	}
	return m, nil
}

// startSquashfuse runs squashfuse as the caller, outside the sandbox's
// namespaces (from a thread other than the locked one), on the FUSE
// descriptor, in the foreground; it ends when the mount goes away or
// selfdock dies.
func (t *tree) startSquashfuse(dev, img int, off uint64) error {
	null, err := unix.Open("/dev/null", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(null)
	args := []string{"squashfuse", "-f", "-o", "offset=" + strconv.FormatUint(off, 10), "/dev/fd/4", "/dev/fd/3"}
	pid, err := t.spawnHelper(squashfuse, args, []uintptr{uintptr(null), uintptr(null), 2, uintptr(dev), uintptr(img)})
	if err != nil {
		return fmt.Errorf("squashfuse: %w", err)
	}
	t.fusePid = pid
	return nil
}

// stopSquashfuse ends and reaps squashfuse once the command is done, so
// that nothing is left behind (not even a zombie for init to reap).
func (t *tree) stopSquashfuse() {
	if t.fusePid > 0 {
		unix.Kill(t.fusePid, unix.SIGKILL)
		var ws unix.WaitStatus
		unix.Wait4(t.fusePid, &ws, 0, nil)
	}
}
