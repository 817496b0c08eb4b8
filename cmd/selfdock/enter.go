package main

import (
	"fmt"
	"os"
	"strconv"

	"github.com/selfdock/selfdock/policy"
	"github.com/selfdock/selfdock/sandbox"
)

type enterCmd struct {
	Instance string   `arg:"" help:"The instance: the host PID of its PID 1, as selfdock ps shows it."`
	Cmd      []string `arg:"" optional:"" passthrough:"" help:"The command (default: your $SHELL, else /bin/sh)."`
}

// Run joins the instance's namespaces and runs the command there.
func (e *enterCmd) Run(c *cli) error {
	pid, err := strconv.Atoi(e.Instance)
	if err != nil || pid <= 0 {
		return fmt.Errorf("enter %q: give the PID that selfdock ps shows", e.Instance)
	}
	argv := e.Cmd
	if len(argv) > 0 && argv[0] == "--" {
		argv = argv[1:]
	}
	if len(argv) == 0 {
		sh := os.Getenv("SHELL")
		if sh == "" {
			sh = "/bin/sh"
		}
		argv = []string{sh}
	}
	f := c.sandboxFlags
	pol, err := loadPolicy()
	if err != nil {
		return err
	}
	plan, err := pol.Plan(&policy.Request{Argv: argv, Dir: "/", SetEnv: f.Env, Unset: f.Unset,
		Seccomp: f.Seccomp != "off", Caller: caller(), Environ: os.Environ()})
	if err != nil {
		return err
	}
	status, err := sandbox.Enter(pid, plan)
	if err != nil {
		return err
	}
	return exitStatus(status)
}
