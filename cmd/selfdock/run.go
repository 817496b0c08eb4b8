package main

import (
	"golang.org/x/sys/unix"
	"os"
	"syscall"

	"github.com/selfdock/selfdock/policy"
	"github.com/selfdock/selfdock/sandbox"
)

type runCmd struct {
	Cmd []string `arg:"" optional:"" passthrough:"" help:"The command and its arguments."`
}

type buildCmd struct {
	Cmd []string `arg:"" optional:"" passthrough:"" help:"The command and its arguments."`
}

func (r *runCmd) Run(c *cli) error   { return sandboxed(c, policy.Run, r.Cmd) }
func (b *buildCmd) Run(c *cli) error { return sandboxed(c, policy.Build, b.Cmd) }

// sandboxed builds the request, checks it against the policy and runs it.
func sandboxed(c *cli, mode policy.Mode, argv []string) error {
	if len(argv) > 0 && argv[0] == "--" {
		argv = argv[1:]
	}
	f := c.sandboxFlags
	req := &policy.Request{
		Mode: mode, Rootfs: f.Rootfs, Image: f.Image, Embedded: embedded, Dir: f.Chdir, Maps: f.Map, Vols: f.Vol, Tmpfs: f.Tmpfs,
		SetEnv: f.Env, Unset: f.Unset, Net: f.Net, Hostname: f.Hostname, Overlay: f.Overlay, OverlaySize: f.OverlaySize, Seccomp: f.Seccomp != "off", Argv: argv,
		Caller: caller(), Environ: os.Environ(),
	}
	// getcwd(2), not os.Getwd: that stats the caller's $PWD, as root here.
	req.Cwd, _ = unix.Getwd()
	if f.Bundle != "" {
		if err := fromBundle(req, f.Bundle); err != nil {
			return err
		}
	}
	pol, err := loadPolicy()
	if err != nil {
		return err
	}
	plan, err := pol.Plan(req)
	if err != nil {
		return err
	}
	// The name is held by this process, outside any user namespace: with
	// --fakeroot, the launcher, for as long as its copy runs.
	if f.Name != "" && !sandbox.InFakeroot() {
		if err := holdName(req.Caller.Uid, f.Name); err != nil {
			return err
		}
	}
	if f.Fakeroot && !sandbox.InFakeroot() {
		// The plan was checked here; the copy started in the user namespace
		// checks it again and carries it out.
		status, err := sandbox.LaunchFakeroot(req.Caller)
		if err != nil {
			return err
		}
		return exitStatus(status)
	}
	status, err := sandbox.Run(plan)
	if err != nil {
		return err
	}
	return exitStatus(status)
}

// caller is the invoking user: the real ids, which the setuid bit leaves
// untouched.
func caller() policy.Identity {
	id := policy.Identity{Uid: uint32(syscall.Getuid()), Gid: uint32(syscall.Getgid())}
	groups, _ := syscall.Getgroups()
	for _, g := range groups {
		id.Groups = append(id.Groups, uint32(g))
	}
	return id
}

// loadPolicy reads the policy file as the privilege mode requires.
func loadPolicy() (*policy.Policy, error) {
	if sandbox.Detect() == sandbox.Unprivileged {
		return policy.LoadUnprivileged()
	}
	return policy.Load()
}
