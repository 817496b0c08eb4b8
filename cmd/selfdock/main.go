//go:debug containermaxprocs=0
//go:debug updatemaxprocs=0

package main

// The go:debug lines above: the runtime would otherwise keep re-reading
// cgroup files to resize GOMAXPROCS. (It still reads them once at start:
// kernel files the caller cannot steer.)

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/alecthomas/kong"
	"github.com/selfdock/selfdock/policy"
	"github.com/selfdock/selfdock/sandbox"
)

// version is set at build time with -ldflags -X main.version=...
var version = "dev"

// cli is selfdock's whole command line. Sandbox options are accepted before
// the subcommand, as selfdock (C) has them, and between run/build and CMD.
type cli struct {
	sandboxFlags
	Version kong.VersionFlag `help:"Print the version and the privilege mode, then exit."`

	Run        runCmd        `cmd:"" help:"Run CMD as yourself on a read-only view of the root file system."`
	Build      buildCmd      `cmd:"" help:"Like run, with the root writable where you could write it anyway."`
	Import     importCmd     `cmd:"" help:"Unpack a container image into DIR, as yourself."`
	Pack       packCmd       `cmd:"" help:"Make a squashfs image (or, with --bundle, an executable file) of DIR, as yourself."`
	Enter      enterCmd      `cmd:"" help:"Run a command inside one of your running instances."`
	Ps         psCmd         `cmd:"" help:"List your running instances."`
	State      stateCmd      `cmd:"" help:"Print the OCI state (JSON) of your instance NAME."`
	Kill       killCmd       `cmd:"" help:"Send a signal to your instance NAME (default TERM)."`
	Policy     policyCmd     `cmd:"" help:"Administer the policy file."`
	Boot       bootCmd       `cmd:"" help:"Replace the running system with IMAGE in RAM (real root only)."`
	BootInit   bootInitCmd   `cmd:"" name:"boot-init" hidden:"" help:"What PID 1 runs during boot."`
	Completion completionCmd `cmd:"" help:"Print a shell completion script (bash, zsh, fish)."`
	Man        manCmd        `cmd:"" help:"Print the man page selfdock(1) in roff."`
}

func main() {
	if len(os.Args) == 0 {
		os.Exit(fail(errors.New("no arguments at all (not even a program name)")))
	}
	if len(os.Args) > 2 && os.Args[1] == "boot-init" && os.Getpid() == 1 {
		os.Exit(bootInit(os.Args[2:])) // PID 1: nothing else may run first
	}
	if len(os.Args) == 3 && os.Args[1] == sandbox.UnpackArg {
		os.Exit(unpackImage(os.Args[2])) // drops every privilege first
	}
	sandbox.Trace("main")
	sandbox.Harden()
	args := os.Args[1:]
	e, err := sandbox.SelfContained()
	if err != nil {
		os.Exit(fail(err))
	}
	if e != nil {
		embedded = e
		var ok bool
		if args, ok = selfContainedArgs(args); !ok {
			os.Exit(0)
		}
	} else {
		args = bundleArgs(args)
	}
	os.Exit(run(args))
}

// run parses args and runs the subcommand; it returns the exit status.
func run(args []string) int {
	if c, mode, ok := fastParse(args); ok {
		sandbox.Trace("parsed")
		cmd := c.Run.Cmd
		m := policy.Run
		if mode == "build" {
			cmd, m = c.Build.Cmd, policy.Build
		}
		return status(sandboxed(c, m, cmd))
	}
	var c cli
	exit := -1
	parser, err := kong.New(&c,
		kong.Name("selfdock"),
		kong.Description("A setuid sandbox: run commands as yourself in a read-only, private view of a root file system."),
		kong.UsageOnError(),
		kong.Vars{"version": fmt.Sprintf("selfdock %s\n%s", version, sandbox.Why())},
		kong.Exit(func(code int) { exit = code; panic(exitPanic{}) }),
	)
	if err != nil {
		return fail(err)
	}
	ctx, err := parse(parser, args, &exit)
	if exit >= 0 {
		return exit
	}
	if err != nil {
		return fail(err)
	}
	if err := gate(ctx.Command()); err != nil {
		return fail(err)
	}
	// CMD is the tail of args, taken verbatim: kong replaces invalid UTF-8.
	for _, cmd := range []*[]string{&c.Run.Cmd, &c.Build.Cmd} {
		if n := len(*cmd); n > 0 && n <= len(args) {
			*cmd = args[len(args)-n:]
		}
	}
	return status(ctx.Run())
}

// gate is the privilege gate: only run and build keep the setuid privilege
// (the sandbox drops it itself), and policy check, which reads the fixed,
// root-owned policy file; every other subcommand runs as the caller from its
// first instruction.
func gate(command string) error {
	switch strings.Fields(command + " x")[0] {
	case "run", "build", "enter":
		return nil
	case "boot", "boot-init":
		if os.Getuid() == 0 {
			return nil // real root only: they check further themselves
		}
	}
	if command == "policy check" {
		return nil
	}
	return sandbox.DropPrivileges()
}

// status turns a subcommand's result into the exit status.
func status(err error) int {
	var st exitStatus
	switch {
	case err == nil:
		return 0
	case errors.As(err, &st):
		return int(st)
	}
	return fail(err)
}

type exitPanic struct{}

// parse runs kong's parser, turning its exit calls (help, version) into a
// status instead of leaving the process.
func parse(p *kong.Kong, args []string, exit *int) (ctx *kong.Context, err error) {
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(exitPanic); !ok {
				panic(r)
			}
		}
	}()
	return p.Parse(args)
}

// exitStatus is the command's own exit status, passed through.
type exitStatus int

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// fail prints one line and returns selfdock's status for err.
func fail(err error) int {
	code := sandbox.CodeFailed
	var se *sandbox.Error
	var xe exitStatusErr
	if errors.As(err, &se) {
		code = se.Code
	} else if errors.As(err, &xe) {
		code = xe.code
	}
	msg := strings.ReplaceAll(err.Error(), "\n", " ")
	fmt.Fprintf(os.Stderr, "selfdock: %s\n", msg)
	return code
}
