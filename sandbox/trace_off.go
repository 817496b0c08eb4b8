//go:build !sdtrace

package sandbox

// Trace is a no-op unless built with -tags sdtrace.
func Trace(string) {}
