package main

import (
	"context"
	"fmt"
	"os"
	"strconv"

	"github.com/selfdock/selfdock/image"
	"github.com/selfdock/selfdock/sandbox"
	"golang.org/x/sys/unix"
)

// unpackImage is the child a sandbox starts to unpack a squashfs image that
// neither the kernel nor squashfuse may serve (sandbox.UnpackArg): the image
// at offset in descriptor sandbox.UnpackImageFd goes into the empty root
// behind sandbox.UnpackRootFd. Every privilege goes first, for good, before
// a byte of the image is read; anyone may run this by hand, as themselves.
// Mount points the root lacks (/dev, /proc, /tmp) are made.
func unpackImage(offset string) int {
	if err := sandbox.DropPrivileges(); err != nil {
		return fail(err)
	}
	off, err := strconv.ParseInt(offset, 10, 64)
	if err != nil || off < 0 {
		return fail(fmt.Errorf("unpack: bad offset %q", offset))
	}
	root, err := unix.Openat(sandbox.UnpackRootFd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fail(fmt.Errorf("unpack: the root to fill: %w", err))
	}
	img := os.NewFile(sandbox.UnpackImageFd, "image")
	fi, err := img.Stat()
	if err != nil {
		return fail(fmt.Errorf("unpack: the image: %w", err))
	}
	if _, err := image.ExtractSquashfs(context.Background(), img, off, fi.Size(), root); err != nil {
		return fail(err)
	}
	// The sandbox mounts on these and cannot make them in a read-only
	// root; this tmpfs is private to it and goes with it.
	for _, d := range []string{"dev", "proc", "tmp"} {
		if err := unix.Mkdirat(root, d, 0o755); err != nil && err != unix.EEXIST {
			return fail(fmt.Errorf("unpack: /%s: %w", d, err))
		}
	}
	return 0
}
