package main

import (
	"context"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/selfdock/selfdock/image"
	"github.com/selfdock/selfdock/sandbox"
	"golang.org/x/sys/unix"
)

type packCmd struct {
	Bundle bool   `help:"Make a single executable file: a #! header naming this selfdock, then the image; ./OUT CMD runs CMD in it."`
	Dir    string `arg:"" name:"DIR" help:"The root file system to pack."`
	Out    string `arg:"" name:"OUT" help:"The squashfs image (or bundle) to write."`
}

// Run packs DIR as the caller (the privilege gate dropped privileges).
func (p *packCmd) Run() error {
	if err := sandbox.DropPrivileges(); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	interp := ""
	if p.Bundle {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		interp = exe
	}
	return image.Pack(ctx, p.Dir, p.Out, interp)
}

// bundleArgs turns `selfdock BUNDLE ARG...`, as the kernel runs a bundle's
// #! line, into `selfdock --image BUNDLE run ARG...`. It reads the first
// bytes of args[0] only when the caller may read the file (access checks
// the real uid), and only to compare them with the bundle's marker.
func bundleArgs(args []string) []string {
	if len(args) == 0 || len(args[0]) == 0 || args[0][0] == '-' || unix.Access(args[0], unix.R_OK) != nil {
		return args
	}
	f, err := os.OpenFile(args[0], os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return args
	}
	defer f.Close()
	head := make([]byte, 512)
	n, _ := f.Read(head)
	head = head[:n]
	if !strings.HasPrefix(string(head), "#!") || !strings.Contains(string(head), "\n"+sandbox.BundleMarker) {
		return args
	}
	return append([]string{"--image", args[0], "run"}, args[1:]...)
}
