package boot

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// privateMounts keeps what follows from propagating anywhere else. The init
// of a PID namespace first moves into a mount namespace of its own: even a
// namespace that shares the host's mounts (no --mount given to unshare)
// cannot make the switch below change the host's tree.
//
// The calling goroutine must be locked to its thread (Init does it): the
// mount namespace and the root belong to that thread once it unshares,
// and every later mount, the switch and the exec must happen there.
func privateMounts(real bool) error {
	if !real {
		// Safe: a new mount namespace for this process only.
		if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
			return &os.PathError{Op: "unshare", Path: "mount namespace", Err: err}
		}
	}
	// Safe: propagation of this namespace's own mounts, nothing mounted.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return &os.PathError{Op: "make private", Path: "/", Err: err}
	}
	return nil
}

// killAll sends SIGTERM to every other process of the PID namespace, waits
// for them (reaping) up to the grace period, then SIGKILLs the rest. The
// new root's /proc, mounted first, tells who is left: it shows this PID
// namespace whatever the old /proc showed.
func killAll(lg *logger, m *Meta) {
	proc := filepath.Join(m.Root, "proc")
	_ = os.MkdirAll(proc, 0o555)
	// Safe: a fresh procfs inside the new root; PID 1 is root.
	if err := unix.Mount("proc", proc, "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		lg.printf("mount proc on %s: %v", proc, err)
	}
	grace := time.Duration(m.Grace) * time.Millisecond
	// Safe: sent by a PID namespace's init, kill(-1) reaches that
	// namespace only (the whole machine only from the real PID 1).
	_ = unix.Kill(-1, unix.SIGTERM)
	if n := waitGone(proc, grace); n > 0 {
		lg.printf("%d processes still there after %v: SIGKILL", n, grace)
		_ = unix.Kill(-1, unix.SIGKILL)
		if n := waitGone(proc, 5*time.Second); n > 0 {
			lg.printf("%d processes did not die (uninterruptible?): going on", n)
		}
	}
}

// waitGone reaps until no other process is left or d has passed; it
// returns how many are left.
func waitGone(proc string, d time.Duration) int {
	deadline := time.Now().Add(d)
	for {
		reap()
		n := others(proc)
		if n == 0 || time.Now().After(deadline) {
			return n
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func reap() {
	for {
		var st unix.WaitStatus
		if pid, err := unix.Wait4(-1, &st, unix.WNOHANG, nil); pid <= 0 || err != nil {
			return
		}
	}
}

// others counts the processes in proc other than PID 1 and kernel threads.
// Without a readable proc it says 0: the wait then is the SIGKILL alone.
func others(proc string) int {
	ents, err := os.ReadDir(proc)
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == 1 || kernelThread(filepath.Join(proc, e.Name(), "stat")) {
			continue
		}
		n++
	}
	return n
}

// kernelThread reads the flags of /proc/PID/stat: PF_KTHREAD.
func kernelThread(stat string) bool {
	b, err := os.ReadFile(stat)
	if err != nil {
		return false
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		s = s[i+1:]
	}
	f := strings.Fields(s) // state ppid pgrp session tty tpgid flags ...
	if len(f) < 7 {
		return false
	}
	flags, _ := strconv.ParseUint(f[6], 10, 64)
	return flags&0x00200000 != 0
}

// switchRoot makes root the root of everything left: /dev and /sys move
// into it (or are mounted anew), /run is a fresh tmpfs, the old root is
// detached. On an initramfs, whose rootfs cannot be pivoted away
// (EINVAL), the new root is moved over / and chrooted into, as
// switch_root does.
func switchRoot(lg *logger, root string, real bool) error {
	// Safe: PID 1 binds the prepared root onto itself, so that it is a
	// mount point, as pivot_root and MS_MOVE need.
	if err := unix.Mount(root, root, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return &os.PathError{Op: "bind", Path: root, Err: err}
	}
	carry(lg, root, "/dev", "devtmpfs")
	carry(lg, root, "/sys", "sysfs")
	run := filepath.Join(root, "run")
	_ = os.MkdirAll(run, 0o755)
	// Safe: a fresh tmpfs inside the new root.
	if err := unix.Mount("tmpfs", run, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
		lg.printf("mount tmpfs on %s: %v", run, err)
	}
	if err := os.Chdir(root); err != nil {
		return err
	}
	// Safe: PID 1, all other processes gone, in its own mount namespace
	// unless it is the machine's init.
	err := unix.PivotRoot(".", ".")
	if err == nil {
		return detachOld()
	}
	if !errors.Is(err, unix.EINVAL) {
		return &os.PathError{Op: "pivot_root", Path: root, Err: err}
	}
	lg.printf("pivot_root: %v (an initramfs): moving the new root over / instead", err)
	// Safe: as switch_root(8) on an initramfs.
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return &os.PathError{Op: "move mount", Path: root, Err: err}
	}
	if err := unix.Chroot("."); err != nil {
		return &os.PathError{Op: "chroot", Path: root, Err: err}
	}
	return os.Chdir("/")
}

// detachOld unmounts the old root, stacked under the new one by
// pivot_root(".", "."), lazily: what still uses it keeps it until done.
func detachOld() error {
	// Safe: the old root, now mounted on top of "." by pivot_root.
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return &os.PathError{Op: "unmount", Path: "old root", Err: err}
	}
	return os.Chdir("/")
}

// carry moves the mount at dir into the new root, or mounts a fresh file
// system of type fstype there when dir is no mount point.
func carry(lg *logger, root, dir, fstype string) {
	dst := filepath.Join(root, dir)
	_ = os.MkdirAll(dst, 0o755)
	// Safe: moves one of the old root's own mounts into the new root.
	err := unix.Mount(dir, dst, "", unix.MS_MOVE, "")
	if err == nil {
		return
	}
	// Safe: a fresh instance in the new root.
	if err2 := unix.Mount(fstype, dst, fstype, unix.MS_NOSUID, ""); err2 != nil {
		lg.printf("move %s: %v; mount %s: %v", dir, err, fstype, err2)
	}
}
