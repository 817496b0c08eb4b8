// Package seccompbuild builds selfdock's seccomp filters with libseccomp
// (cgo, libseccomp-golang) and renders them as Go source. It runs at build
// time only: `go generate ./sandbox` writes the programs into
// sandbox/seccomp_bpf_linux_amd64.go, and sandbox's tests check that the
// embedded programs are still what this package builds. The sandbox itself
// never imports it, so selfdock neither links libseccomp nor spends the
// ~0.5 ms libseccomp needs to build a filter on every start.
//
// The rule lists live here, the single source of the filters: edit them,
// then run `go generate ./sandbox` on a machine with libseccomp-dev.
package seccompbuild
