//go:build linux && !amd64 && !arm64

package boot

import (
	"errors"
	"runtime"
)

// Inject is implemented for x86-64 and arm64 only: the takeover writes registers.
func Inject(pid int, path string, argv []string) error {
	return errors.New("taking over PID 1 is implemented on x86-64 and arm64 only, not " + runtime.GOARCH)
}
