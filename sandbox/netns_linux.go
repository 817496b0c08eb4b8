package sandbox

import (
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// pendingNet is the sandbox's private network namespace, made on a thread
// of its own and joined by the locked thread (setns) before the command is
// started: by the C constructor's thread while the Go runtime starts
// (earlynet_linux.go), or else by a goroutine while the locked thread builds
// the mount tree. A new network namespace is the largest single step of a
// run (about half a millisecond of kernel work: the loopback device, its
// sysctl tables); off the critical path, a run takes about that much less
// on the benchmark machine (bench/REPORT.md).
type pendingNet struct {
	early bool // the constructor's thread makes it (earlyNet)
	done  chan struct{}
	fd    int // nsfs file of the namespace, once done and err is nil
	err   error
}

// newNet takes the namespace the C constructor started making before the
// runtime (earlynet_linux.go), or else starts making it here. The goroutine
// runs on one of the runtime's threads, which have selfdock's own
// credentials (euid 0 with its capabilities under the setuid bit, or every
// capability in selfdock's user namespace on the unprivileged path): no
// user input reaches it.
func newNet() *pendingNet {
	if earlyNetStarted() {
		return &pendingNet{early: true, fd: -1}
	}
	n := &pendingNet{done: make(chan struct{}), fd: -1}
	go n.make()
	return n
}

// dropEarlyNet closes the namespace the constructor made, when the plan
// keeps the host's network after all.
func dropEarlyNet() {
	earlyNet(false)
}

func (n *pendingNet) make() {
	// Never unlocked: the thread, now in the new namespace, ends with this
	// goroutine instead of going back to the runtime for other work.
	runtime.LockOSThread()
	defer close(n.done)
	// Safe: a new, empty network namespace for this thread only.
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		n.err = fmt.Errorf("unshare network namespace: %w", err)
		return
	}
	if err := loopbackUp(); err != nil {
		n.err = err
		return
	}
	// This thread is still in selfdock's own mount namespace: /proc is the
	// one selfdock started with, and thread-self names this very thread.
	fd, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		n.err = fmt.Errorf("open network namespace: %w", err)
		return
	}
	n.fd = fd
}

// join waits for the namespace and moves the calling thread into it; a nil
// n keeps the host's network.
func (n *pendingNet) join() error {
	if n == nil {
		return nil
	}
	if n.early {
		n.fd, n.err = earlyNet(true)
	} else {
		<-n.done
	}
	if n.err != nil {
		return n.err
	}
	defer unix.Close(n.fd)
	// Safe: the namespace newNet made, holding only its loopback; setns
	// moves this thread alone.
	if err := unix.Setns(n.fd, unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("join network namespace: %w", err)
	}
	return nil
}

// loopbackUp brings up lo in the calling thread's new network namespace.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("loopback: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return fmt.Errorf("loopback: %w", err)
	}
	ifr.SetUint16(unix.IFF_UP | unix.IFF_LOOPBACK | unix.IFF_RUNNING)
	// Safe: lo of the sandbox's own, fresh network namespace.
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("loopback up: %w", err)
	}
	return nil
}
