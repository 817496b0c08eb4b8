package main

import (
	"context"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/selfdock/selfdock/image"
	"github.com/selfdock/selfdock/sandbox"
)

type packCmd struct {
	Bundle        bool     `help:"Make a single executable file: a #! header naming this selfdock, then the image; ./OUT CMD runs CMD in it."`
	SelfContained bool     `help:"Make OUT a copy of this selfdock carrying the image: it runs anywhere, without selfdock installed."`
	Cmd           []string `placeholder:"ARG" help:"--self-contained: the default command, one --cmd per word (default: the image's)."`
	SetEnv        []string `name:"set-env" placeholder:"NAME=VALUE" help:"--self-contained: an environment variable of the default run."`
	Dir           string   `arg:"" name:"DIR" help:"The root file system to pack."`
	Out           string   `arg:"" name:"OUT" help:"The squashfs image (or bundle) to write."`
}

// Run packs DIR as the caller (the privilege gate dropped privileges).
func (p *packCmd) Run() error {
	if err := sandbox.DropPrivileges(); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	if p.SelfContained {
		return packSelfContained(ctx, p.Dir, p.Out, p.Cmd, p.SetEnv)
	}
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
// #! line, into `selfdock --image BUNDLE run ARG...`. The kernel passes the
// bundle as a path with a slash; no subcommand or option has one. The file
// is not opened here, as root: the sandbox opens it as the caller and reads
// the image's offset from its header.
func bundleArgs(args []string) []string {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") || !strings.Contains(args[0], "/") {
		return args
	}
	return append([]string{"--image", args[0], "run"}, args[1:]...)
}
