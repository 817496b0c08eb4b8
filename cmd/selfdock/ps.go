package main

import (
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/selfdock/selfdock/sandbox"
)

type psCmd struct{}

// Run lists the caller's running instances, found in /proc.
func (psCmd) Run() error {
	list, err := sandbox.Instances(os.Getuid())
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(w, "PID\tNAME\tAGE\tROOTFS\tCOMMAND")
	for _, in := range list {
		rootfs, name := "/", "-"
		if c, ok := instanceFlags(&in); ok {
			switch {
			case c.Rootfs != "":
				rootfs = c.Rootfs
			case c.Bundle != "":
				rootfs = c.Bundle + " (bundle)"
			case c.Image != "":
				rootfs = c.Image + " (image)"
			}
			if c.Name != "" {
				name = c.Name
			}
		}
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\n", in.PID, name, in.Age.Round(time.Second), rootfs, strings.Join(in.Args, " "))
	}
	return w.Flush()
}

// instanceFlags parses the options an instance's selfdock was started with,
// as main did: a bundle's command line (`selfdock ./BUNDLE ARG...`, from its
// #! line) reads as `--image ./BUNDLE run ARG...`.
func instanceFlags(in *sandbox.Instance) (*cli, bool) {
	if len(in.Selfdock) == 0 {
		return nil, false
	}
	c, _, ok := fastParse(bundleArgs(in.Selfdock[1:]))
	return c, ok
}
