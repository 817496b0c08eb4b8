package main

import (
	"github.com/alecthomas/kong"
)

// sandboxFlags are the options of run and build, selfdock (C) compatible.
type sandboxFlags struct {
	Rootfs      string   `short:"r" placeholder:"DIR" help:"Root file system (default /), seen read-only."`
	Bundle      string   `placeholder:"DIR" help:"Run the OCI runtime bundle in DIR (config.json): its root, process, mounts (Slurm's srun --container)."`
	Name        string   `placeholder:"NAME" help:"Name the instance (unique among yours), for selfdock ps, state and kill."`
	Image       string   `placeholder:"FILE" help:"run/build: a squashfs image (or a bundle made by pack --bundle) as the root. import: the NAME:TAG to pick from an archive that holds several."`
	Chdir       string   `short:"C" placeholder:"DIR" help:"Working directory inside (default: the current one if it exists inside, else /)."`
	Map         pairs    `short:"m" placeholder:"SRC DST" help:"Bind SRC read-only at DST (recursive). Repeatable; two separate arguments."`
	Vol         pairs    `short:"v" placeholder:"SRC DST" help:"Bind SRC read-write at DST (only where you may write SRC). Repeatable."`
	Tmpfs       pairs    `short:"t" placeholder:"OPTS DST" help:"Mount a fresh tmpfs at DST; OPTS: size=N[kmg],mode=OCTAL or defaults. Repeatable."`
	Env         pairs    `short:"e" placeholder:"NAME VALUE" help:"Set NAME to VALUE in the command's environment. Repeatable."`
	Unset       []string `short:"E" name:"unset" sep:"none" placeholder:"NAME" help:"Remove NAME from the command's environment. Repeatable."`
	Net         bool     `help:"Share the host's network (default: a private network with loopback only)."`
	Hostname    string   `placeholder:"NAME" help:"Host name inside (default: the host's)."`
	Fakeroot    bool     `help:"Run CMD as root of a user namespace of yours: your uid and gid are 0 inside, your subordinate ids (/etc/subuid, /etc/subgid) 1..N; capabilities only inside it."`
	Overlay     bool     `help:"Make the root and each --map directory writable; the writes go to a tmpfs that vanishes with the sandbox."`
	OverlaySize string   `placeholder:"SIZE" help:"Size of --overlay's tmpfs, like 512m (default: half the RAM)."`
	Seccomp     string   `default:"on" enum:"on,off" help:"The seccomp filter: on (default) or off, if the policy allows it."`
}

// pairs is a repeatable option that takes two separate arguments, as
// selfdock's --map SRC DST.
type pairs [][2]string

// Decode pops the two values of one occurrence.
func (p *pairs) Decode(ctx *kong.DecodeContext) error {
	var v [2]string
	for i := range v {
		t, err := ctx.Scan.PopValue(ctx.Value.Name)
		if err != nil {
			return err
		}
		s, ok := t.Value.(string)
		if !ok {
			return &kong.ParseError{}
		}
		v[i] = s
	}
	*p = append(*p, v)
	return nil
}
