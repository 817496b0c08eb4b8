package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/selfdock/selfdock/image"
)

// packCmd is `selfdock pack [--bundle|--self-contained] DIR OUT`. --bundle
// is the global flag that takes a value (--bundle DIR for run), so here
// `pack --bundle DIR OUT` reads DIR as that value and OUT as the argument.
type packCmd struct {
	SelfContained bool     `help:"Make OUT a copy of this selfdock carrying the image: it runs anywhere, without selfdock installed."`
	Cmd           []string `sep:"none" placeholder:"ARG" help:"--self-contained: the default command, one --cmd per word (default: the image's)."`
	SetEnv        []string `sep:"none" name:"set-env" placeholder:"NAME=VALUE" help:"--self-contained: an environment variable of the default run."`
	Args          []string `arg:"" name:"DIR OUT" help:"The root file system to pack and the file to write. With --bundle DIR OUT: a single executable file (a #! header naming this selfdock, then the image; ./OUT CMD runs CMD in it)."`
}

// Run packs DIR as the caller (the privilege gate dropped privileges).
func (p *packCmd) Run(g *cli) error {
	ctx, stop, err := asCaller()
	if err != nil {
		return err
	}
	defer stop()
	bundle := g.Bundle != ""
	args := p.Args
	if bundle {
		args = append([]string{g.Bundle}, args...)
	}
	if len(args) != 2 {
		return fmt.Errorf("pack: give DIR and OUT (pack [--bundle|--self-contained] DIR OUT)")
	}
	dir, out := args[0], args[1]
	if p.SelfContained {
		return packSelfContained(ctx, dir, out, p.Cmd, p.SetEnv)
	}
	interp := ""
	if bundle {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		interp = exe
	}
	return image.Pack(ctx, dir, out, interp)
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
