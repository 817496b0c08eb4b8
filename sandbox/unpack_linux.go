package sandbox

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// UnpackArg, as selfdock's only argument before an offset, makes it the
// child that unpacks a squashfs image for a sandbox's root (cmd/selfdock's
// unpackImage): descriptor UnpackImageFd is the image, UnpackRootFd the
// empty root to fill. That child drops every privilege before anything
// else, so a caller who runs it by hand gets nothing they could not do.
const (
	UnpackArg     = "__unpack-image"
	UnpackImageFd = 3
	UnpackRootFd  = 4
)

// unpackRoot unpacks the squashfs image behind img (size bytes from off)
// into a fresh tmpfs, at most eight times the image's size (64 MiB at
// least), which becomes the root. A child does it as the caller, with no
// privilege (works without FUSE; costs time and memory).
func (t *tree) unpackRoot(img int, off, size uint64) (int, error) {
	m, err := t.tmpfs(max(64<<20, 8*size), 0o755, t.id.uid, t.id.gid)
	if err != nil {
		return -1, fmt.Errorf("tmpfs: %w", err)
	}
	if err := t.runUnpack(img, off, m); err != nil {
		unix.Close(m)
		return -1, err
	}
	return m, nil
}

// runUnpack runs this selfdock as UnpackArg's child, as the caller, on img
// and root, outside the sandbox's namespaces (from a thread other than the
// locked one), and waits for it; its last line of errors becomes ours.
func (t *tree) runUnpack(img int, off uint64, root int) error {
	null, err := unix.Open("/dev/null", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(null)
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return err
	}
	defer unix.Close(p[0])
	files := make([]uintptr, 5)
	files[0], files[1], files[2] = uintptr(null), uintptr(null), uintptr(p[1])
	files[UnpackImageFd], files[UnpackRootFd] = uintptr(img), uintptr(root)
	// Safe: the child gets the caller's ids (it is setuid again after its
	// execve, and drops every privilege before reading a byte), only the
	// image the caller could open and the caller-owned empty tmpfs.
	pid, err := t.spawnHelper("/proc/self/exe", []string{"selfdock", UnpackArg, strconv.FormatUint(off, 10)}, files)
	unix.Close(p[1])
	if err != nil {
		return fmt.Errorf("unpack: %w", err)
	}
	var msg []byte
	buf := make([]byte, 4096)
	for {
		n, err := unix.Read(p[0], buf)
		if err == unix.EINTR {
			continue
		}
		if n <= 0 {
			break
		}
		msg = append(msg, buf[:n]...)
		if len(msg) > 1<<16 {
			msg = msg[len(msg)-4096:]
		}
	}
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(pid, &ws, 0, nil)
		if err != unix.EINTR {
			break
		}
	}
	if ws.Exited() && ws.ExitStatus() == 0 {
		return nil
	}
	lines := strings.Split(strings.TrimSpace(string(msg)), "\n")
	why := strings.TrimPrefix(strings.TrimSpace(lines[len(lines)-1]), "selfdock: ")
	if why == "" {
		why = "the unpacking process failed (" + ws.Signal().String() + ")"
	}
	return fmt.Errorf("unpack: %s", why)
}

// spawnHelper starts path with args as the caller, with files as its
// descriptors, outside the sandbox's namespaces: any thread but the locked
// one is in the host's. The runtime keeps its threads, so the parent death
// signal fires only when selfdock itself goes.
func (t *tree) spawnHelper(path string, args []string, files []uintptr) (int, error) {
	attr := &syscall.ProcAttr{Files: files, Env: []string{"PATH=/usr/bin:/bin"},
		Sys: &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setsid: true, Credential: t.credential()}}
	type started struct {
		pid int
		err error
	}
	done := make(chan started, 1)
	go func() {
		pid, err := syscall.ForkExec(path, args, attr)
		done <- started{pid, err}
	}()
	st := <-done
	return st.pid, st.err
}

// credential is the caller's ids for a helper process (squashfuse, the
// unpacking child); nil in a user namespace, where this process has them.
func (t *tree) credential() *syscall.Credential {
	if t.userns {
		return nil
	}
	g := make([]uint32, len(t.id.groups))
	copy(g, t.id.groups)
	return &syscall.Credential{Uid: t.id.uid, Gid: t.id.gid, Groups: g}
}
