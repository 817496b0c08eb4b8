//go:build sdtrace

package sandbox

import (
	"fmt"
	"os"
	"time"
)

var traceStart = time.Now()

// Trace prints how long after the runtime's start a phase ended; only in
// binaries built with -tags sdtrace (bench/REPORT.md's phase table).
func Trace(phase string) {
	fmt.Fprintf(os.Stderr, "trace %-12s %6.0fµs\n", phase, float64(time.Since(traceStart).Microseconds()))
}
