//go:build !cgo

package sandbox

import (
	"errors"

	"github.com/selfdock/selfdock/policy"
)

// userNamespace without cgo: no constructor ran, so the unprivileged mode is
// not available in this build.
func userNamespace() (bool, error) {
	return false, errors.New("this selfdock was built without cgo, which the unprivileged mode needs")
}

// raisedLimits: without the constructor nothing was raised.
func raisedLimits() []policy.Rlimit { return nil }

// InUserNamespace: without the constructor, never.
func InUserNamespace() bool { return false }

// InFakeroot: without the constructor, never.
func InFakeroot() bool { return false }
