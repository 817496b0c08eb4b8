package image

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"
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

// bar draws one status line, redrawn in place every refresh: which layer,
// a bar and the bytes read. It is meant for a terminal; the caller decides
// whether w is one. (A library bar would do, at the price of its package
// initialisation at every start of selfdock, including every run.)
type bar struct {
	w             io.Writer
	mu            sync.Mutex // w, drawn
	drawn         bool       // a line is on the screen, not yet ended
	total, read   atomic.Int64
	layer, layers atomic.Int64
	stop          chan struct{}
	stopped       chan struct{}
}

const refresh = 150 * time.Millisecond

// NewBar returns a Progress that draws on w.
func NewBar(w io.Writer) Progress { return &bar{w: w} }

func (b *bar) Start(layers int, total int64) {
	b.end(nil)
	b.layers.Store(int64(layers))
	b.layer.Store(0)
	b.total.Store(total)
	b.read.Store(0)
	b.stop, b.stopped = make(chan struct{}), make(chan struct{})
	go b.loop(b.stop, b.stopped)
}

func (b *bar) loop(stop, stopped chan struct{}) {
	defer close(stopped)
	t := time.NewTicker(refresh)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			b.draw()
		}
	}
}

// draw writes the line over the previous one.
func (b *bar) draw() {
	b.mu.Lock()
	defer b.mu.Unlock()
	label := "reading"
	if n := b.layers.Load(); n > 0 {
		label = fmt.Sprintf("layer %d/%d", b.layer.Load(), n)
	}
	read, total := b.read.Load(), b.total.Load()
	line := fmt.Sprintf("%s %s", label, mib(read))
	if total > 0 {
		const width = 32
		done := int(min(read, total) * width / total)
		line = fmt.Sprintf("%-11s [%s%s] %s / %s", label, strings.Repeat("=", done), strings.Repeat(" ", width-done), mib(read), mib(total))
	}
	fmt.Fprintf(b.w, "\r%s\x1b[K", line)
	b.drawn = true
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func (b *bar) Layer(i int) { b.layer.Store(int64(i)) }

func (b *bar) Add(n int) {
	if n > 0 {
		b.read.Add(int64(n))
	}
}

func (b *bar) Done(err error) { b.end(err) }

// end stops the current stage's line: drawn once more, complete when the
// stage succeeded (or where it stopped, on error), then ended.
func (b *bar) end(err error) {
	if b.stop == nil {
		return
	}
	close(b.stop)
	<-b.stopped
	b.stop = nil
	if err == nil && b.total.Load() > 0 {
		b.read.Store(b.total.Load())
	}
	b.draw()
	b.mu.Lock()
	if b.drawn {
		fmt.Fprintln(b.w)
		b.drawn = false
	}
	b.mu.Unlock()
}
