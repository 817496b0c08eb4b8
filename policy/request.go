package policy

import (
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"
)

// Request is what the caller asked for, as the CLI parsed it. Paths are not
// validated yet.
type Request struct {
	Mode        Mode
	Rootfs      string
	Image       string // a squashfs image (unsafePath) as the root
	Embedded    *Embedded
	Dir         string // -C; "" means the caller's cwd, falling back to "/"
	Maps        [][2]string
	Vols        [][2]string
	Tmpfs       [][2]string // OPTS, DST
	SetEnv      [][2]string
	Unset       []string
	Net         bool
	Overlay     bool
	OverlaySize string // size=N[kmg] of the overlay's tmpfs, "" for the default
	// Hostname, if set, names the private UTS namespace.
	Hostname string
	Seccomp  bool // false only when --seccomp=off was asked
	Argv     []string

	// Recorded by the privilege gate at start.
	Caller  Identity
	Cwd     string
	Environ []string
}

// Plan checks the request against the policy and returns the plan.
func (p *Policy) Plan(r *Request) (*Plan, error) {
	if err := p.allowed(r); err != nil {
		return nil, err
	}
	env, err := Environ(r.Environ, r.SetEnv, r.Unset)
	if err != nil {
		return nil, err
	}
	pl := &Plan{
		Mode: r.Mode, Rootfs: r.Rootfs, ShareNet: r.Net, Seccomp: r.Seccomp,
		AllowNesting: p.AllowNesting, Env: env, Argv: r.Argv, User: r.Caller,
		DenyMap: p.DenyMap, DenyRootfs: p.DenyRootfs, RootfsDirs: p.RootfsDirs, Rlimits: p.Rlimits, CgroupMemory: p.CgroupMemory, CgroupPids: p.CgroupPids,
		callerEnv: r.Environ, setEnv: r.SetEnv, unset: r.Unset,
	}
	if pl.Hostname = r.Hostname; len(pl.Hostname) > 64 || strings.ContainsAny(pl.Hostname, "\x00/ ") {
		return nil, fmt.Errorf("hostname %q: at most 64 characters, no spaces or slashes", r.Hostname)
	}
	if pl.Overlay = r.Overlay; r.OverlaySize != "" {
		if !r.Overlay {
			return nil, fmt.Errorf("--overlay-size needs --overlay")
		}
		if pl.OverlaySize, err = parseSize(r.OverlaySize); err != nil {
			return nil, fmt.Errorf("--overlay-size %q: %w", r.OverlaySize, err)
		}
	}
	if pl.Embedded = r.Embedded; r.Embedded != nil && (r.Rootfs != "" || r.Image != "") {
		return nil, fmt.Errorf("a self-contained file runs its own image: no --rootfs or --image")
	}
	if r.Image != "" {
		if r.Rootfs != "" {
			return nil, fmt.Errorf("--image and --rootfs: give one root")
		}
		pl.Image, pl.ImageDirs = r.Image, p.ImageDirs
	}
	if pl.Rootfs == "" {
		pl.Rootfs = "/"
	}
	if pl.Dir, pl.DirFallback = r.Dir, false; r.Dir == "" {
		pl.Dir, pl.DirFallback = r.Cwd, true
		if !path.IsAbs(pl.Dir) {
			pl.Dir = "/"
		}
	} else if pl.Dir, err = cleanDest("-C", r.Dir); err != nil {
		return nil, err
	}
	if pl.Mounts, err = mounts(r); err != nil {
		return nil, err
	}
	return pl, nil
}

// allowed applies the administrator's knobs to the request.
func (p *Policy) allowed(r *Request) error {
	if !p.userAllowed(r.Caller) {
		return fmt.Errorf("uid %d may not use selfdock (policy: users, groups)", r.Caller.Uid)
	}
	if r.Mode == Build && !p.AllowBuild {
		return fmt.Errorf("build is not allowed by the policy")
	}
	if r.Net && !p.AllowNet {
		return fmt.Errorf("--net is not allowed by the policy")
	}
	if !r.Seccomp && !p.AllowSeccompOff {
		return fmt.Errorf("--seccomp=off is not allowed by the policy")
	}
	if !r.Seccomp && !p.AllowNesting {
		// The filter is what denies new user namespaces and mounts.
		return fmt.Errorf("--seccomp=off is not allowed: the policy forbids nesting, which only the seccomp filter enforces")
	}
	return nil
}

// mounts turns the request's binds into mount steps: the sandbox's own /dev,
// /tmp (unless a bind or tmpfs takes it) and /proc, then the caller's, parents
// before children so that a bind inside another one stays visible.
func mounts(r *Request) ([]Mount, error) {
	var user []Mount
	add := func(kind Kind, src, dst, opt string) error {
		d, err := cleanDest(dst, dst)
		if err != nil {
			return err
		}
		m := Mount{Kind: kind, Source: src, Dest: d}
		if kind == Tmpfs {
			if m.Size, m.Mode, err = TmpfsOptions(opt); err != nil {
				return err
			}
		} else if src == "" {
			return fmt.Errorf("bind source for %q is empty", dst)
		}
		user = append(user, m)
		return nil
	}
	for _, b := range r.Maps {
		if err := add(BindRO, b[0], b[1], ""); err != nil {
			return nil, err
		}
	}
	for _, b := range r.Vols {
		if err := add(BindRW, b[0], b[1], ""); err != nil {
			return nil, err
		}
	}
	for _, t := range r.Tmpfs {
		if err := add(Tmpfs, "", t[1], t[0]); err != nil {
			return nil, err
		}
	}
	seen := map[string]bool{}
	for _, m := range user {
		if seen[m.Dest] {
			return nil, fmt.Errorf("destination %q is given twice", m.Dest)
		}
		seen[m.Dest] = true
	}
	sort.SliceStable(user, func(i, j int) bool { return depth(user[i].Dest) < depth(user[j].Dest) })
	out := []Mount{{Kind: Dev, Dest: "/dev"}}
	if !seen["/tmp"] {
		out = append(out, Mount{Kind: Tmpfs, Dest: "/tmp", Mode: 01777})
	}
	out = append(out, user...)
	return append(out, Mount{Kind: Proc, Dest: "/proc"}), nil
}

func depth(p string) int { return strings.Count(p, "/") }

// cleanDest checks that a destination is absolute, clean and not the root.
func cleanDest(what, dst string) (string, error) {
	if !path.IsAbs(dst) {
		return "", fmt.Errorf("destination %q must be an absolute path", what)
	}
	for _, part := range strings.Split(dst, "/") {
		if part == ".." {
			return "", fmt.Errorf("destination %q must not contain \"..\"", what)
		}
	}
	c := path.Clean(dst)
	if c == "/" && what != "-C" {
		return "", fmt.Errorf("destination %q: the root is --rootfs", what)
	}
	return c, nil
}

// TmpfsOptions parses --tmpfs options: size=N[kmg], mode=OCTAL. An empty
// string (or "defaults") takes the kernel's default size and mode 0755.
func TmpfsOptions(opts string) (size uint64, mode uint32, err error) {
	mode = 0755
	for _, o := range strings.Split(opts, ",") {
		k, v, _ := strings.Cut(o, "=")
		switch k {
		case "", "defaults":
		case "size":
			if size, err = parseSize(v); err != nil {
				return 0, 0, fmt.Errorf("tmpfs option %q: %w", o, err)
			}
		case "mode":
			m, err := strconv.ParseUint(v, 8, 32)
			if err != nil || m > 07777 {
				return 0, 0, fmt.Errorf("tmpfs option %q: want an octal mode", o)
			}
			mode = uint32(m)
		default:
			return 0, 0, fmt.Errorf("tmpfs option %q: only size= and mode= are known", o)
		}
	}
	return size, mode, nil
}

func parseSize(v string) (uint64, error) {
	mult := uint64(1)
	switch {
	case strings.HasSuffix(v, "k"), strings.HasSuffix(v, "K"):
		mult = 1 << 10
	case strings.HasSuffix(v, "m"), strings.HasSuffix(v, "M"):
		mult = 1 << 20
	case strings.HasSuffix(v, "g"), strings.HasSuffix(v, "G"):
		mult = 1 << 30
	}
	if mult > 1 {
		v = v[:len(v)-1]
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n == 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("want a positive size like 64m")
	}
	return n * mult, nil
}
