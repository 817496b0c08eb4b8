package main

import "strings"

// fastParse reads the common `run`/`build` command lines without building
// kong's model, which costs more than half a millisecond at every start:
// start-up time is part of the product. It accepts only a strict subset of
// the grammar kong defines (separate option values, none starting with '-')
// and returns ok=false for anything else (help, --version, other
// subcommands, attached values, errors), which then goes to kong. FuzzFast
// checks that whatever it accepts, kong parses the same way.
func fastParse(args []string) (c *cli, mode string, ok bool) {
	c = &cli{sandboxFlags: sandboxFlags{Seccomp: "on"}}
	f := &c.sandboxFlags
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "run" || a == "build" {
			rest := append([]string(nil), args[i+1:]...)
			if rest, ok = fastFlags(f, rest); !ok {
				return nil, "", false
			}
			if a == "run" {
				c.Run.Cmd = rest
			} else {
				c.Build.Cmd = rest
			}
			return c, a, true
		}
		if !strings.HasPrefix(a, "-") {
			return nil, "", false
		}
		n, good := fastFlag(f, args[i:])
		if !good {
			return nil, "", false
		}
		i += n - 1
	}
	return nil, "", false
}

// fastFlags consumes the options between run/build and CMD; the first word
// that is not an option starts CMD, as does "--" (kept, as kong keeps it).
func fastFlags(f *sandboxFlags, args []string) ([]string, bool) {
	for len(args) > 0 && strings.HasPrefix(args[0], "-") && args[0] != "--" {
		n, ok := fastFlag(f, args)
		if !ok {
			return nil, false
		}
		args = args[n:]
	}
	return args, true
}

// fastFlag applies the option at args[0] and says how many words it took.
func fastFlag(f *sandboxFlags, args []string) (int, bool) {
	val := func(n int) bool {
		if len(args) <= n {
			return false
		}
		for _, v := range args[1 : n+1] {
			if v == "" || strings.HasPrefix(v, "-") {
				return false
			}
		}
		return true
	}
	switch args[0] {
	case "-r", "--rootfs", "-C", "--chdir", "-E", "--unset", "--seccomp", "--hostname", "--overlay-size", "--image", "--bundle", "--name":
		if !val(1) {
			return 0, false
		}
		switch args[0] {
		case "-r", "--rootfs":
			f.Rootfs = args[1]
		case "-C", "--chdir":
			f.Chdir = args[1]
		case "-E", "--unset":
			f.Unset = append(f.Unset, args[1])
		case "--hostname":
			f.Hostname = args[1]
		case "--overlay-size":
			f.OverlaySize = args[1]
		case "--image":
			f.Image = args[1]
		case "--bundle":
			f.Bundle = args[1]
		case "--name":
			f.Name = args[1]
		default:
			if args[1] != "on" && args[1] != "off" {
				return 0, false
			}
			f.Seccomp = args[1]
		}
		return 2, true
	case "-m", "--map", "-v", "--vol", "-t", "--tmpfs", "-e", "--env":
		if !val(2) {
			return 0, false
		}
		p := [2]string{args[1], args[2]}
		switch args[0] {
		case "-m", "--map":
			f.Map = append(f.Map, p)
		case "-v", "--vol":
			f.Vol = append(f.Vol, p)
		case "-t", "--tmpfs":
			f.Tmpfs = append(f.Tmpfs, p)
		default:
			f.Env = append(f.Env, p)
		}
		return 3, true
	case "--net":
		f.Net = true
		return 1, true
	case "--overlay":
		f.Overlay = true
		return 1, true
	case "--fakeroot":
		f.Fakeroot = true
		return 1, true
	case "--seccomp=on", "--seccomp=off":
		f.Seccomp = strings.TrimPrefix(args[0], "--seccomp=")
		return 1, true
	}
	return 0, false
}
