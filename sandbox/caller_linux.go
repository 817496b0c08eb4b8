package sandbox

import (
	"fmt"
	"runtime"

	"github.com/selfdock/selfdock/policy"
	"golang.org/x/sys/unix"
)

// ReadAsCaller reads a small file with the caller's file access (an OCI
// bundle's config.json, for instance): on a thread of its own whose groups,
// fsuid and fsgid are the caller's, and which ends with the read.
func ReadAsCaller(id policy.Identity, unsafePath string, max int) ([]byte, error) {
	type result struct {
		b   []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread goes with the goroutine
		if Detect() != Unprivileged {
			if err := actAs(identity{id.Uid, id.Gid, id.Groups}); err != nil {
				done <- result{nil, err}
				return
			}
		}
		b, err := readSmall(unsafePath, max)
		done <- result{b, err}
	}()
	r := <-done
	return r.b, r.err
}

func readSmall(unsafePath string, max int) ([]byte, error) {
	fd, err := unix.Openat2(unix.AT_FDCWD, unsafePath, &unix.OpenHow{
		Flags: unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NONBLOCK, Resolve: unix.RESOLVE_NO_MAGICLINKS})
	if err != nil {
		return nil, errorf("read", unsafePath, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size > int64(max) {
		return nil, fmt.Errorf("read %q: not a regular file of at most %d bytes", unsafePath, max)
	}
	b := make([]byte, st.Size)
	n, err := unix.Pread(fd, b, 0)
	if err != nil {
		return nil, errorf("read", unsafePath, err)
	}
	return b[:n], nil
}

// HoldName reserves an instance name for uid while this process lives: an
// abstract unix socket in selfdock's own network namespace (the host's),
// released by the kernel when the process ends, so no state is ever left
// on disk. Taken means another instance of uid runs with that name.
func HoldName(uid uint32, name string) (taken bool, err error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return false, err
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: nameAddr(uid, name)}); err != nil {
		unix.Close(fd)
		if err == unix.EADDRINUSE {
			return true, nil
		}
		return false, fmt.Errorf("name %q: %w", name, err)
	}
	return false, nil // fd stays open for the process's life
}

// NameHeld tells whether some selfdock of uid holds name.
func NameHeld(uid uint32, name string) bool {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	return unix.Bind(fd, &unix.SockaddrUnix{Name: nameAddr(uid, name)}) == unix.EADDRINUSE
}

func nameAddr(uid uint32, name string) string {
	return fmt.Sprintf("@selfdock/%d/%s", uid, name)
}
