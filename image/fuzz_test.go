package image

import (
	"bytes"
	"context"
	"os"
	"runtime/debug"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// FuzzApplyTar feeds arbitrary bytes to the layer applier: it must never
// panic, never write outside its directory, and always leave a tree that
// the clean-up of a failed import can remove. The arena puts the target
// of a "../outside" escape right next to the directory.
func FuzzApplyTar(f *testing.F) {
	for _, l := range stackLayers(f) {
		f.Add(l)
	}
	for _, m := range maliciousLayers(f, "/outside") {
		f.Add(m.layer)
	}
	f.Add(rootfsEntries(f))
	f.Add(mkTar(f, symE("evil", "../outside"), fileE("evil/x", "x", 0o644), hardE("h", "evil/sentinel")))
	f.Add(mkTar(f, dirE("d/", 0o000), fileE("d/f", "f", 0o000), dirE("d/e/", 0o000), fileE("d/.wh..wh..opq", "", 0)))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		// A hang is a failure too: crash with every goroutine's stack, so
		// that the fuzzer keeps the input.
		watchdog := time.AfterFunc(10*time.Second, func() {
			debug.SetTraceback("all")
			panic("FuzzApplyTar: one input took more than 10s")
		})
		defer watchdog.Stop()
		a := newArena(t)
		if err := os.Mkdir(a.dest, 0o700); err != nil {
			t.Fatal(err)
		}
		fd, err := unix.Open(a.dest, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		ap := newApplier(fd, false, 1000)
		if ap.applyTar(context.Background(), bytes.NewReader(data)) == nil {
			_ = ap.finish()
		}
		unix.Close(fd)
		if err := removeTree(a.dest); err != nil {
			t.Fatalf("clean-up: %v", err)
		}
		a.untouched(t)
	})
}
