package sandbox

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// pendingNet is the sandbox's private network namespace, made on a thread
// of its own and joined by the locked thread (setns) before the command is
// started: by the C constructor's thread while the Go runtime starts, or by
// one started when Run begins (earlynet_linux.go). A new network namespace
// is the largest single step of a run (about half a millisecond of kernel
// work: the loopback device, its sysctl tables); off the critical path, a
// run takes about that much less on the benchmark machine (bench/REPORT.md).
type pendingNet struct{}

// newNet makes sure the namespace is being made. The thread that makes it
// is started by selfdock's own code with selfdock's own credentials (euid 0
// with its capabilities under the setuid bit, or every capability in
// selfdock's user namespace on the unprivileged path): no user input
// reaches it.
func newNet() *pendingNet {
	startNet()
	return &pendingNet{}
}

// dropEarlyNet closes the namespace the constructor made, when the plan
// keeps the host's network after all.
func dropEarlyNet() {
	takeNet(false)
}

// join waits for the namespace and moves the calling thread into it; a nil
// n keeps the host's network.
func (n *pendingNet) join() error {
	if n == nil {
		return nil
	}
	fd, err := takeNet(true)
	if err != nil {
		return err
	}
	if fd < 0 {
		// No thread could be started: make it on this thread itself.
		return netHere()
	}
	defer unix.Close(fd)
	// Safe: the namespace the thread made, holding only its loopback;
	// setns moves this thread alone.
	if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("join network namespace: %w", err)
	}
	return nil
}
