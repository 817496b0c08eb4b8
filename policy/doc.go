// Package policy turns a user's request into a Plan: the list of typed steps
// (bind read-only, bind read-write, tmpfs, proc, dev, chdir, exec) that the
// sandbox package carries out under the setuid bit.
//
// It validates what it can without touching the file system: destinations
// must be absolute and clean, options must parse, the request must be allowed
// by the administrator's policy. Everything that depends on the file system
// (does the source exist, may the caller write it) is checked by the sandbox
// package with the caller's own file access, by file descriptor.
package policy
