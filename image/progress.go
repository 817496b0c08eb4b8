package image

import (
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// Progress is told how an import advances. Import calls it from one
// goroutine: Start for each stage (copying a stream aside, then the
// layers), Layer as each layer begins, Add for the bytes read of the
// source, Done once at the end.
type Progress interface {
	// Start begins a stage that reads total bytes (0: unknown) in layers
	// layers (0: the archive itself).
	Start(layers int, total int64)
	Layer(i int)
	Add(n int)
	Done(err error)
}

type nopProgress struct{}

func (nopProgress) Start(int, int64) {}
func (nopProgress) Layer(int)        {}
func (nopProgress) Add(int)          {}
func (nopProgress) Done(error)       {}

// bar draws a progress bar with github.com/vbauerster/mpb: bytes read and,
// for an image, which layer. It is meant for a terminal; the caller
// decides whether w is one (mpb itself also draws nothing elsewhere).
type bar struct {
	p             *mpb.Progress
	b             *mpb.Bar
	layer, layers atomic.Int64
}

// NewBar returns a Progress that draws on w.
func NewBar(w io.Writer) Progress {
	return &bar{p: mpb.New(mpb.WithOutput(w), mpb.WithWidth(32), mpb.WithRefreshRate(150*time.Millisecond))}
}

func (b *bar) Start(layers int, total int64) {
	b.end(nil)
	b.layers.Store(int64(layers))
	b.layer.Store(0)
	counters := decor.CountersKibiByte("% .1f / % .1f")
	if total <= 0 {
		counters = decor.CurrentKibiByte("% .1f")
	}
	b.b = b.p.AddBar(total,
		mpb.PrependDecorators(decor.Any(b.label, decor.WCSyncSpaceR)),
		mpb.AppendDecorators(counters),
	)
}

func (b *bar) label(decor.Statistics) string {
	if n := b.layers.Load(); n > 0 {
		return fmt.Sprintf("layer %d/%d", b.layer.Load(), n)
	}
	return "reading"
}

func (b *bar) Layer(i int) { b.layer.Store(int64(i)) }

func (b *bar) Add(n int) {
	if b.b != nil && n > 0 {
		b.b.IncrBy(n)
	}
}

func (b *bar) Done(err error) {
	b.end(err)
	b.p.Wait()
}

// end completes the current bar, or leaves it where it stopped on error.
func (b *bar) end(err error) {
	if b.b == nil {
		return
	}
	if err != nil {
		b.b.Abort(false)
	} else {
		b.b.SetTotal(-1, true)
	}
	b.b = nil
}
