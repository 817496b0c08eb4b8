package main

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/selfdock/selfdock/policy"
)

type policyCmd struct {
	Check policyCheckCmd `cmd:"" help:"Check the policy file and print the effective policy."`
}

type policyCheckCmd struct{}

func (policyCheckCmd) Run() error {
	p, err := loadPolicy()
	if err != nil {
		return err
	}
	// The file may name what the administrator hides: a user sees it only
	// where they could read it themselves.
	var st syscall.Stat_t
	if os.Getuid() != 0 && syscall.Stat(policy.Path, &st) == nil && st.Mode&0o004 == 0 {
		return exitWith(124, fmt.Errorf("policy check: %s is valid, and readable by root only", policy.Path))
	}
	fmt.Print(p)
	warnSymlinks(p)
	return nil
}

// warnSymlinks says which path entries go through a symlink: a source is
// checked against them by the kernel's name for it, which never does.
func warnSymlinks(p *policy.Policy) {
	for _, list := range [][]string{p.DenyMap, p.RootfsDirs, p.ImageDirs} {
		for _, d := range list {
			if r, err := filepath.EvalSymlinks(d); err == nil && r != d {
				fmt.Fprintf(os.Stderr, "selfdock: policy: %q goes through a symlink: sources are checked by their real path, write %q\n", d, r)
			}
		}
	}
}
