// Package testenv is what every test package under tests/ shares about its
// environment.
package testenv

import (
	"os"
	"testing"
)

// mustWork turns every skip into a failure (set in CI).
var mustWork = os.Getenv("SELFDOCK_MUST_WORK") == "1"

// SkipOrFail skips the test, unless SELFDOCK_MUST_WORK=1 asks that
// everything runs, in which case the skip is a failure.
func SkipOrFail(t testing.TB, reason string) {
	t.Helper()
	if mustWork {
		t.Fatalf("SELFDOCK_MUST_WORK=1, cannot skip: %s", reason)
	}
	t.Skip(reason)
}
