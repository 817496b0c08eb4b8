//go:build linux && !amd64

package sandbox

// seccompBPF is empty where `go generate` has written no program (only
// seccomp_bpf_linux_amd64.go exists): seccompProgram returns an error, so a
// sandbox that asks for seccomp refuses to start rather than run without it.
// Supporting another architecture means listing its compat entry points in
// seccompbuild.CompatArches, generating its file on that architecture and
// excluding it from this file's build constraint.
var seccompBPF seccompPrograms
