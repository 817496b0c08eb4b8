//go:build linux && !(amd64 && cgo)

package sandbox

import (
	"runtime"
	"testing"
)

// TestSeccompRules stands in for seccomp_rules_test.go, which needs cgo,
// libseccomp and amd64, so that its absence shows in the test output.
func TestSeccompRules(t *testing.T) {
	seccompSkip(t, "the rule and generator tests need cgo and libseccomp on amd64; this build: GOARCH=%s, cgo off or another architecture", runtime.GOARCH)
}
