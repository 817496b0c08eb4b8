// Package testimage writes small root file system images for the tests:
// Debian's statically linked busybox with its applet symlinks, the
// directories a system mounts things on, and whatever files a test adds
// (a marker, a script). Such an image boots as PID 1 or runs as a sandbox's
// root with nothing else installed, so a test does not depend on a registry
// or on mmdebstrap. Busybox uses the host's busybox; BusyboxFrom takes
// another one, such as an arm64 busybox for a VM, with its applet list.
//
// Every entry is owned by root (uid and gid 0) whoever runs the test, and
// entries come in a fixed order with a fixed time, so the same arguments
// give the same bytes.
package testimage
