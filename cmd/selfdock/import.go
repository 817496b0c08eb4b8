package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/selfdock/selfdock/image"
	"github.com/selfdock/selfdock/sandbox"
	"golang.org/x/sys/unix"
)

// importCmd is `selfdock import [--image NAME:TAG] [--quiet] SRC DIR`.
type importCmd struct {
	Quiet bool   `short:"q" help:"No progress bar and no summary of what was dropped."`
	Src   string `arg:"" name:"SRC" help:"A docker save tarball, an OCI layout (directory or tarball), a rootfs tarball (gzip, zstd, xz or none) or a squashfs image; - reads standard input."`
	Dir   string `arg:"" name:"DIR" help:"Where to unpack; must not exist, or be an empty directory."`
}

// Run imports SRC into DIR as the caller. Privilege goes first, for good,
// before any byte of SRC is read: an image is hostile input, and the
// caller may only read what they could read and write where they could
// write without selfdock. (The privilege gate in main has dropped it
// already; a second call is a no-op, kept so that this command never
// depends on the order of things in main.) Only the machine's real root
// keeps owners, setuid bits and device nodes, for boot.
func (c *importCmd) Run(g *cli) error {
	ctx, stop, err := asCaller()
	if err != nil {
		return err
	}
	defer stop()
	// --image is the one global option: a squashfs root for run, NAME:TAG here.
	o := image.Options{Image: g.Image, Preserve: realRoot()}
	if !c.Quiet && isTerminal(os.Stderr) {
		o.Progress = image.NewBar(os.Stderr)
	}
	res, err := image.Import(ctx, c.Src, c.Dir, o)
	if err != nil {
		return err
	}
	if s := res.Dropped.String(); s != "" && !c.Quiet {
		fmt.Fprintf(os.Stderr, "selfdock: import: %s\n", s)
	}
	return nil
}

// realRoot tells whether the caller is the machine's root, who keeps the
// image's owners, setuid bits and device nodes (for boot). Root of a user
// namespace (inside selfdock --fakeroot) could not make them: it imports
// as a plain user does.
func realRoot() bool {
	if os.Getuid() != 0 {
		return false
	}
	b, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		return true // no /proc to tell: chown and mknod will say
	}
	return strings.Join(strings.Fields(string(b)), " ") == "0 0 4294967295"
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// asCaller drops privileges for good (a no-op when the gate has) and gives
// a context that ends on Ctrl-C, SIGTERM or SIGHUP, for the subcommands that
// read hostile files (import, pack) and must clean up when interrupted.
func asCaller() (context.Context, context.CancelFunc, error) {
	if err := sandbox.DropPrivileges(); err != nil {
		return nil, nil, err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	return ctx, stop, nil
}
