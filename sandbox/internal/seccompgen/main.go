//go:build linux && cgo

// Command seccompgen writes the sandbox's seccomp programs as Go source,
// built with libseccomp from the rules in sandbox/seccompbuild. It is run by
// the go:generate line in sandbox/seccomp_linux.go:
//
//	go generate ./sandbox
//
// which needs linux/amd64, cgo and libseccomp-dev (Debian: apt-get install
// gcc libseccomp-dev). The programs are generated for the architecture
// seccompgen runs on, so -goarch must name it: it guards the output file
// name against a program for the wrong architecture.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"

	"github.com/selfdock/selfdock/sandbox/seccompbuild"
)

func main() {
	out := flag.String("o", "", "output `file`")
	goarch := flag.String("goarch", "amd64", "architecture the output file is for; must be the running one")
	pkg := flag.String("pkg", "sandbox", "package `name` of the output file")
	flag.Parse()
	if *out == "" || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: seccompgen -o FILE [-goarch amd64] [-pkg sandbox]")
		os.Exit(2)
	}
	if *goarch != runtime.GOARCH {
		fmt.Fprintf(os.Stderr, "seccompgen: generating for %s needs linux/%s; this is linux/%s\n", *goarch, *goarch, runtime.GOARCH)
		os.Exit(1)
	}
	src, err := seccompbuild.GenerateGo(*pkg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "seccompgen: %v\n", err)
		os.Exit(1)
	}
	if err := os.WriteFile(*out, src, 0o644); err != nil {
		fmt.Fprintf(os.Stderr, "seccompgen: %v\n", err)
		os.Exit(1)
	}
}
