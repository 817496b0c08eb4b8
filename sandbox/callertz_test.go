//go:build cgo

package sandbox

import (
	"testing"

	"github.com/selfdock/selfdock/policy"
)

// TestCallerTZName: the constructor's name for the hidden TZ is the one
// policy.Environ turns back into TZ.
func TestCallerTZName(t *testing.T) {
	if got := callerTZ(); got != policy.CallerTZ+"=" {
		t.Errorf("constructor %q, policy %q", got, policy.CallerTZ+"=")
	}
}
