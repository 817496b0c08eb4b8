package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/selfdock/selfdock/oci"
	"github.com/selfdock/selfdock/policy"
	"github.com/selfdock/selfdock/sandbox"
	"golang.org/x/sys/unix"
)

// fromBundle fills the request from an OCI bundle's config.json, read with
// the caller's rights. A command given on the command line wins over
// process.args; process.env replaces the environment.
func fromBundle(req *policy.Request, dir string) error {
	// getcwd(2), not filepath.Abs: that stats the caller's $PWD, as root here.
	abs := filepath.Clean(dir)
	if !filepath.IsAbs(abs) {
		wd, err := unix.Getwd()
		if err != nil {
			return fmt.Errorf("bundle %q: %w", dir, err)
		}
		abs = filepath.Join(wd, abs)
	}
	b, err := sandbox.ReadAsCaller(req.Caller, filepath.Join(abs, "config.json"), 1<<20)
	if err != nil {
		return fmt.Errorf("bundle %q: %w", dir, err)
	}
	bu, err := oci.Parse(b, abs, req.Caller.Uid, req.Caller.Gid)
	if err != nil {
		return err
	}
	if len(bu.Warnings) > 0 {
		fmt.Fprintf(os.Stderr, "selfdock: bundle %q: ignored: %s\n", dir, strings.Join(bu.Warnings, ", "))
	}
	if req.Rootfs != "" || req.Image != "" {
		return fmt.Errorf("--bundle gives the root: no --rootfs or --image")
	}
	req.Rootfs = bu.Root
	if !bu.Readonly {
		req.Mode = policy.Build
	}
	if len(req.Argv) == 0 {
		req.Argv = bu.Args
	}
	req.Environ = bu.Env
	if req.Dir == "" {
		req.Dir = bu.Cwd
	}
	if req.Hostname == "" {
		req.Hostname = bu.Hostname
	}
	for _, m := range bu.Binds {
		if m.ReadOnly {
			req.Maps = append(req.Maps, [2]string{m.Source, m.Dest})
		} else {
			req.Vols = append(req.Vols, [2]string{m.Source, m.Dest})
		}
	}
	for _, t := range bu.Tmpfs {
		req.Tmpfs = append(req.Tmpfs, [2]string{t.Options, t.Dest})
	}
	return nil
}

// nameRE is compiled on first use, off run's hot path.
var nameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`) })

// holdName reserves the instance's name for the life of this process.
func holdName(uid uint32, name string) error {
	if !nameRE().MatchString(name) {
		return fmt.Errorf("--name %q: letters, digits, '.', '_' and '-', at most 64", name)
	}
	taken, err := sandbox.HoldName(uid, name)
	if err != nil {
		return err
	}
	if taken {
		return fmt.Errorf("--name %q: you have a running instance of that name", name)
	}
	return nil
}

// instanceNamed finds the caller's running instance called name.
func instanceNamed(name string) (*sandbox.Instance, error) {
	list, err := sandbox.Instances(os.Getuid())
	if err != nil {
		return nil, err
	}
	for i := range list {
		if c, ok := instanceFlags(&list[i]); ok && c.Name == name {
			return &list[i], nil
		}
	}
	return nil, nil
}

type stateCmd struct {
	Name string `arg:"" help:"The instance's --name."`
}

// Run prints the OCI state of the instance (runtime-spec's state.json).
func (s *stateCmd) Run() error {
	in, err := instanceNamed(s.Name)
	if err != nil {
		return err
	}
	st := map[string]any{"ociVersion": "1.0.2", "id": s.Name, "status": "running"}
	switch {
	case in != nil:
		st["pid"] = in.PID
		if c, ok := instanceFlags(in); ok && c.Bundle != "" {
			st["bundle"] = c.Bundle
		}
	case sandbox.NameHeld(uint32(os.Getuid()), s.Name):
		st["status"] = "creating"
	default:
		return exitWith(1, fmt.Errorf("state %q: no running instance of yours has that name", s.Name))
	}
	return json.NewEncoder(os.Stdout).Encode(st)
}

type killCmd struct {
	Name   string `arg:"" help:"The instance's --name."`
	Signal string `arg:"" optional:"" default:"TERM" help:"TERM (default), KILL, INT, HUP, QUIT or a number."`
}

// Run signals the instance's selfdock, which passes the signal on as it
// does for any signal it gets (KILL ends the instance at once).
func (k *killCmd) Run() error {
	sig, err := signalNamed(k.Signal)
	if err != nil {
		return err
	}
	in, err := instanceNamed(k.Name)
	if err != nil {
		return err
	}
	gone := exitWith(1, fmt.Errorf("kill %q: no running instance of yours has that name", k.Name))
	if in == nil {
		return gone
	}
	// The pidfd refers to the process it was opened on, whatever happens to
	// its pid number later: checked once more below, it is the instance's
	// monitor that gets the signal, or no process at all.
	pidfd, err := unix.PidfdOpen(in.Monitor, 0)
	if err != nil {
		return gone
	}
	defer unix.Close(pidfd)
	if again, err := instanceNamed(k.Name); err != nil || again == nil || again.Monitor != in.Monitor {
		return gone
	}
	if err := unix.PidfdSendSignal(pidfd, sig, nil, 0); err != nil {
		return fmt.Errorf("kill %q: %w", k.Name, err)
	}
	return nil
}

func signalNamed(s string) (syscall.Signal, error) {
	names := map[string]syscall.Signal{"TERM": syscall.SIGTERM, "KILL": syscall.SIGKILL, "INT": syscall.SIGINT,
		"HUP": syscall.SIGHUP, "QUIT": syscall.SIGQUIT, "USR1": syscall.SIGUSR1, "USR2": syscall.SIGUSR2}
	if n, err := strconv.Atoi(s); err == nil && n > 0 && n < 65 {
		return syscall.Signal(n), nil
	}
	if sig, ok := names[strings.TrimPrefix(strings.ToUpper(s), "SIG")]; ok {
		return sig, nil
	}
	return 0, fmt.Errorf("signal %q: unknown", s)
}

// exitStatusErr is an error with its own exit status.
type exitStatusErr struct {
	code int
	err  error
}

func (e exitStatusErr) Error() string { return e.err.Error() }

func exitWith(code int, err error) error { return exitStatusErr{code, err} }
