// Package sandbox carries out a policy.Plan under the setuid bit: new
// namespaces, a read-only mount tree built with the new mount API from file
// descriptors opened with the caller's own file access, pivot_root, the drop
// to the caller's ids with no capabilities, no_new_privs and seccomp, and the
// wait for the command, which is PID 1 of its namespace.
//
// Everything privileged happens on one locked OS thread: the Go runtime starts
// once, no re-exec of the binary. Namespaces, no_new_privs, the capability
// bounding set and a thread-only seccomp filter set on that thread are
// inherited by the command it forks. The new PID namespace's /proc is mounted
// by file descriptor (procfs's pidns option) while the command is stopped by
// ptrace right after its execve, so it never runs without its /proc.
//
// When the binary runs without privilege (not setuid, or no_new_privs already
// set, as inside another sandbox), a cgo constructor has already moved the
// process into a user namespace that maps the caller to itself before the Go
// runtime started its threads, and the same code runs there.
package sandbox
