package policy

import (
	"fmt"
	"strings"
)

// Mode says whether the root file system is read-only (Run) or writable
// where the caller could write it anyway (Build).
type Mode int

const (
	Run Mode = iota
	Build
)

func (m Mode) String() string {
	if m == Build {
		return "build"
	}
	return "run"
}

// Kind is the type of a mount step.
type Kind int

const (
	// BindRO is a recursive read-only bind of a caller-supplied source.
	BindRO Kind = iota
	// BindRW is a recursive read-write bind; the sandbox checks that the
	// caller may write the source.
	BindRW
	// Tmpfs is a fresh tmpfs (nosuid, nodev) with the given options.
	Tmpfs
	// Proc is a fresh procfs of the new PID namespace.
	Proc
	// Dev is the sandbox's minimal /dev: a tmpfs with binds of the host's
	// harmless device nodes, a private devpts and /dev/shm.
	Dev
)

// Mount is one mount step. Dest is absolute and clean and is resolved inside
// the new root; Source is a path not yet validated, resolved by the sandbox
// with the caller's file access.
type Mount struct {
	Kind   Kind
	Source string // BindRO, BindRW: unsafePath as the caller gave it
	Dest   string
	Size   uint64 // Tmpfs: bytes, 0 = kernel default
	Mode   uint32 // Tmpfs: permission bits of the root
}

// Identity is who runs the command.
type Identity struct {
	Uid    uint32
	Gid    uint32
	Groups []uint32
}

// Plan is a validated request, ready for the sandbox.
type Plan struct {
	Mode Mode
	// Rootfs is the caller's root file system (unsafePath); "/" by default.
	Rootfs string
	// Image, when set, is a squashfs image (unsafePath) mounted as the root
	// instead; the kernel mounts it only when it is root-owned, writable by
	// root alone and in one of ImageDirs.
	Image     string
	ImageDirs []string
	// Embedded, when set, is the image this self-contained executable
	// carries, the root instead of Rootfs.
	Embedded *Embedded
	// Mounts are applied in order after the root is in place.
	Mounts []Mount
	// ShareNet keeps the host's network namespace; otherwise a private one
	// with only the loopback interface.
	ShareNet bool
	// Overlay makes the root and each directory --map writable, with the
	// writes in a tmpfs of OverlaySize bytes (0: the kernel's default)
	// that vanishes with the instance.
	Overlay     bool
	OverlaySize uint64
	// Hostname is set in the private UTS namespace when not empty.
	Hostname string
	// Seccomp enables the default filter; AllowNesting lets the command
	// create user namespaces and mount inside them.
	Seccomp      bool
	AllowNesting bool
	// Dir is the working directory inside; DirFallback allows "/" when Dir
	// does not exist inside (the default: the caller's cwd).
	Dir         string
	DirFallback bool
	Env         []string
	Argv        []string
	User        Identity
	Rlimits     []Rlimit
	// CgroupMemory and CgroupPids: the policy's cgroup v2 limits, 0 for none.
	CgroupMemory, CgroupPids uint64
	// DenyMap and DenyRootfs are host directories whose contents may not be
	// bound; RootfsDirs, when not empty, are the only allowed root file
	// systems. The sandbox checks them against the resolved paths.
	DenyMap    []string
	DenyRootfs []string
	RootfsDirs []string

	// What the environment was made of, for ApplyImage.
	callerEnv []string
	setEnv    [][2]string
	unset     []string
}

// Rlimit is one resource limit applied to the command.
type Rlimit struct {
	Resource int
	Name     string
	Cur, Max uint64
}

// String prints the plan like the shell commands that would do the same.
func (p *Plan) String() string {
	var b strings.Builder
	ro := "ro,"
	if p.Mode == Build {
		ro = ""
	}
	switch {
	case p.Embedded != nil:
		fmt.Fprintf(&b, "mount -t squashfs -o %snosuid,nodev <the image this file carries> /\n", ro)
	case p.Image != "":
		fmt.Fprintf(&b, "mount -t squashfs -o %snosuid,nodev %s /  # the kernel only for root's images in image_dirs, else squashfuse\n", ro, shellQuote(p.Image))
	default:
		fmt.Fprintf(&b, "mount --rbind -o %snosuid,nodev %s /\n", ro, shellQuote(p.Rootfs))
	}
	if p.Overlay {
		fmt.Fprintf(&b, "mount -t overlay -o upperdir=<tmpfs of %d bytes> overlay /  # and over each --map; submounts bound again\n", p.OverlaySize)
	}
	for _, m := range p.Mounts {
		switch m.Kind {
		case BindRO:
			fmt.Fprintf(&b, "mount --rbind -o ro,nosuid,nodev %s %s\n", shellQuote(m.Source), shellQuote(m.Dest))
		case BindRW:
			fmt.Fprintf(&b, "mount --rbind -o rw,nosuid,nodev %s %s\n", shellQuote(m.Source), shellQuote(m.Dest))
		case Tmpfs:
			fmt.Fprintf(&b, "mount -t tmpfs -o nosuid,nodev,mode=%04o,size=%d tmpfs %s\n", m.Mode, m.Size, shellQuote(m.Dest))
		case Proc:
			fmt.Fprintf(&b, "mount -t proc -o nosuid,nodev,noexec proc %s\n", shellQuote(m.Dest))
		case Dev:
			fmt.Fprintf(&b, "mount -t tmpfs -o nosuid,mode=0755 dev %s  # null zero full random urandom tty pts shm\n", shellQuote(m.Dest))
		}
	}
	if !p.ShareNet {
		b.WriteString("unshare --net  # loopback only\n")
	}
	if p.Hostname != "" {
		fmt.Fprintf(&b, "hostname %s\n", shellQuote(p.Hostname))
	}
	for _, l := range p.Rlimits {
		fmt.Fprintf(&b, "prlimit --%s=%d:%d\n", l.Name, l.Cur, l.Max)
	}
	if p.CgroupMemory > 0 || p.CgroupPids > 0 {
		fmt.Fprintf(&b, "cgroup memory.max=%d pids.max=%d  # where the caller's cgroup is delegated\n", p.CgroupMemory, p.CgroupPids)
	}
	switch {
	case !p.Seccomp:
		b.WriteString("# no seccomp filter\n")
	case p.AllowNesting:
		b.WriteString("seccomp default  # nesting allowed: user namespaces and mounts inside them\n")
	default:
		b.WriteString("seccomp default,no-nesting  # no new user namespaces, no mounts\n")
	}
	fmt.Fprintf(&b, "cd %s\n", shellQuote(p.Dir))
	fmt.Fprintf(&b, "exec setpriv --reuid=%d --regid=%d --groups=%s --no-new-privs --bounding-set=-all", p.User.Uid, p.User.Gid, groupList(p.User.Groups))
	for _, a := range p.Argv {
		b.WriteString(" " + shellQuote(a))
	}
	b.WriteString("\n")
	return b.String()
}

func groupList(g []uint32) string {
	if len(g) == 0 {
		return "-"
	}
	s := make([]string, len(g))
	for i, v := range g {
		s[i] = fmt.Sprint(v)
	}
	return strings.Join(s, ",")
}

func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-=:,+@%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
