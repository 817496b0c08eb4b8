//go:build sdfallback

package sandbox

// forceFallback: built with -tags sdfallback (the benchmark's way to time
// the path of kernels without procfs's pidns option). Never settable at run
// time.
const forceFallback = true
