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
		if c, _, ok := fastParse(tail(in.Selfdock)); ok {
			if c.Rootfs != "" {
				rootfs = c.Rootfs
			} else if c.Bundle != "" {
				rootfs = c.Bundle + " (bundle)"
			}
			if c.Name != "" {
				name = c.Name
			}
		}
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\n", in.PID, name, in.Age.Round(time.Second), rootfs, strings.Join(in.Args, " "))
	}
	return w.Flush()
}

func tail(args []string) []string {
	if len(args) == 0 {
		return nil
	}
	return args[1:]
}
