package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/selfdock/selfdock/boot"
	"github.com/selfdock/selfdock/image"
	"github.com/selfdock/selfdock/sandbox"
)

// bootCmd is `selfdock boot [flags] IMAGE [CMD...]`: real root only.
type bootCmd struct {
	Pid      int           `default:"1" help:"The process to replace: the init (PID 1) of a PID namespace, in selfdock's mount namespace."`
	TTY      int           `name:"tty" default:"3" help:"Virtual console to switch to and run CMD on (0: /dev/console). Real PID 1 only."`
	KeepSwap bool          `help:"Leave swap on (default: swapoff everything first). Real PID 1 only."`
	Grace    time.Duration `default:"2s" help:"How long processes get between SIGTERM and SIGKILL."`
	Yes      bool          `short:"y" help:"Do not ask for confirmation."`
	DryRun   bool          `help:"Prepare the new root, say what would happen, remove it again."`
	IKnow    bool          `name:"i-know-this-replaces-the-running-system" help:"Needed to replace this machine's real PID 1."`
	Image    string        `arg:"" name:"IMAGE" help:"A docker save tarball, an OCI layout, a rootfs tarball or directory, or a squashfs image."`
	Cmd      []string      `arg:"" optional:"" passthrough:"" help:"What the new PID 1 runs (default: the image's entrypoint and cmd, else /sbin/init)."`
}

// Run prepares the new root in RAM and hands PID 1 over to boot-init.
func (b *bootCmd) Run() error {
	if err := realRootOnly("boot"); err != nil {
		return err
	}
	t, err := boot.FindTarget(b.Pid, b.IKnow)
	if err != nil {
		return fmt.Errorf("boot: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	o := boot.Options{Image: b.Image, Argv: b.Cmd, TTY: b.TTY, KeepSwap: b.KeepSwap, Grace: b.Grace, Target: t}
	if isTerminal(os.Stderr) {
		o.Progress = image.NewBar(os.Stderr)
	}
	m, err := boot.Prepare(ctx, o)
	if err != nil {
		return fmt.Errorf("boot: %w", err)
	}
	describe(t, m)
	if b.DryRun {
		boot.Cleanup()
		fmt.Fprintln(os.Stderr, "selfdock: boot: dry run: nothing was replaced, and the prepared root is removed")
		return nil
	}
	if !b.Yes {
		if err := confirm(t); err != nil {
			boot.Cleanup()
			return err
		}
	}
	// From here an interrupt, or a stop from the terminal, would leave the
	// target half taken over.
	signal.Ignore(os.Interrupt, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT,
		syscall.SIGTSTP, syscall.SIGTTIN, syscall.SIGTTOU)
	if err := boot.Inject(t, boot.ExePath, boot.InitArgs(t)); err != nil {
		boot.Cleanup()
		return fmt.Errorf("boot: take over PID %d: %w; the old system keeps running", t.Pid, err)
	}
	fmt.Fprintf(os.Stderr, "selfdock: boot: PID %d runs selfdock boot-init now\n", t.Pid)
	if !t.RealInit && !boot.Release(t.Pid) {
		fmt.Fprintf(os.Stderr, "selfdock: boot: %s stays mounted here: PID %d did not move to a mount namespace of its own in time\n", boot.RootDir, t.Pid)
	}
	return nil
}

// describe says what is about to happen.
func describe(t *boot.Target, m *boot.Meta) {
	what := "the init of a PID namespace"
	if t.RealInit {
		what = "THIS MACHINE'S INIT: every process of the running system will be ended"
	}
	fmt.Fprintf(os.Stderr, "selfdock: boot: PID %d (%s, %s) becomes selfdock boot-init, then runs %q in the new root %s\n",
		t.Pid, t.Exe, what, m.Argv, m.Root)
}

// confirm asks on the terminal; anything but "yes" cancels.
func confirm(t *boot.Target) error {
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return errors.New("boot: confirmation needs a terminal (/dev/tty); add --yes")
	}
	defer tty.Close()
	fmt.Fprintf(tty, "Replace PID %d and end every process it has? Type yes to go on: ", t.Pid)
	line, _ := bufio.NewReader(tty).ReadString('\n')
	if strings.TrimSpace(line) != "yes" {
		return errors.New("boot: cancelled; nothing was replaced")
	}
	return nil
}

// bootInitCmd is `selfdock boot-init META -- OLDEXE OLDARGV...`, what PID 1
// is made to run. As PID 1 it never gets here (main calls bootInit before
// anything else); reached otherwise, it refuses.
type bootInitCmd struct {
	Meta string   `arg:"" name:"META"`
	Old  []string `arg:"" optional:"" passthrough:"" name:"OLD"`
}

// Run refuses: boot-init runs as PID 1 only.
func (b *bootInitCmd) Run() error {
	if err := realRootOnly("boot-init"); err != nil {
		return err
	}
	return &sandbox.Error{Code: sandbox.CodeFailed, Err: errors.New("boot-init: only selfdock boot runs this, as the new PID 1")}
}

// bootInit runs boot.Init for PID 1, from the raw arguments: no flag
// parsing, no hardening step of the other commands (the old init's
// descriptors must survive until the point of no return) and nothing that
// could end the process first. boot.Init returns only when it is sure not
// to be the machine's init.
func bootInit(args []string) int {
	meta, old := args[0], args[1:]
	if len(old) > 0 && old[0] == "--" {
		old = old[1:]
	}
	if err := boot.Init(meta, old); err != nil {
		return fail(err)
	}
	return 0
}

// realRootOnly refuses anyone but the machine's real root: the setuid bit
// never allows boot, nor does root of a user namespace; unable to tell, it
// refuses.
func realRootOnly(cmd string) error {
	if !boot.InitialRoot() {
		return &sandbox.Error{Code: sandbox.CodeFailed,
			Err: fmt.Errorf("%s: only the real root may replace the running system (the setuid bit does not allow it)", cmd)}
	}
	return nil
}
