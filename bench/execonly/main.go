// Command execonly is the benchmark's floor for a setuid Go program. Installed setuid root by
// bench/run.sh, it starts the Go runtime, gives up root and execs its arguments, nothing else:
// timed beside `selfdock run true`, it shows what the sandbox costs on top of the Go runtime's own
// start. It is never installed outside the benchmark's scratch directory.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: execonly CMD [ARG...]")
		os.Exit(124)
	}
	// execve gives the new program the credentials of the calling thread (the other threads
	// die with the old image), so dropping root on this locked thread alone is enough: a setuid
	// copy of execonly never runs CMD, nor the PATH lookup, as root. One raw system call per id,
	// unlike syscall.Setresuid, which signals every thread of the runtime.
	runtime.LockOSThread()
	uid, gid := uintptr(os.Getuid()), uintptr(os.Getgid())
	if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESGID, gid, gid, gid); e != 0 {
		fail(124, "setresgid", e)
	}
	if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESUID, uid, uid, uid); e != 0 {
		fail(124, "setresuid", e)
	}
	path, err := exec.LookPath(os.Args[1])
	if err != nil {
		fail(127, "", err)
	}
	err = syscall.Exec(path, os.Args[1:], os.Environ())
	fail(126, "exec "+path, err)
}

func fail(code int, op string, err error) {
	if op != "" {
		fmt.Fprintf(os.Stderr, "execonly: %s: %v\n", op, err)
	} else {
		fmt.Fprintf(os.Stderr, "execonly: %v\n", err)
	}
	os.Exit(code)
}
