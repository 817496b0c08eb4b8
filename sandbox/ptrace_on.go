//go:build sdptrace

package sandbox

// ptracePath: built with -tags sdptrace, the start-up path that mounts /proc
// with procfs's pidns option while the command is stopped by ptrace. Never
// settable at run time.
const ptracePath = true
