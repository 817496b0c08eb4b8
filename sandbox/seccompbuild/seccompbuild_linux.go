//go:build linux && cgo

package seccompbuild

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"runtime"

	seccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"
)

// Options selects one filter. It mirrors sandbox.SeccompOptions, whose doc
// comment says when the sandbox uses which.
type Options struct {
	// AllowNesting keeps the mount family, setns and new user namespaces
	// available, because an inner selfdock needs them inside its own user
	// namespace, where they cannot touch the host. When false: setns fails
	// with EPERM, unshare(CLONE_NEWUSER) and clone with CLONE_NEWUSER fail
	// with EPERM, clone3 fails with ENOSYS so that libc falls back to clone,
	// whose flags seccomp can see (clone3 passes them in memory, which a
	// seccomp filter cannot read), and the mount family (MountCalls) fails
	// with EPERM unless ParentMounts is set.
	AllowNesting bool
	// ParentMounts leaves MountCalls out of a filter that denies nesting,
	// for a filter loaded on a thread that still has to mount after it
	// forks the command (the sandbox mounts the command's /proc that way).
	// The rest of the nesting rules keep the command from ever holding the
	// right to mount: it has no capability in the initial user namespace and
	// can neither create a user namespace nor enter one. Without effect when
	// AllowNesting is set.
	ParentMounts bool
}

// Denied fails with EPERM in every sandbox, in the spirit of Docker's
// default profile: each call reaches kernel state that namespaces do not
// isolate (keyrings, BPF, perf, modules, kexec, swap, the clock, process
// accounting, the kernel log, I/O ports, quotas) or is a well-known source of
// kernel exploits with no use inside a sandbox (userfaultfd,
// open_by_handle_at, vm86), or runs other calls out of the filter's sight
// (io_uring, whose operations seccomp never sees). Most already need a capability the sandbox has
// dropped; denying them anyway keeps the claim independent of that drop.
// Names that libseccomp does not know on an architecture are skipped there.
var Denied = []string{
	"acct", "add_key", "bpf", "clock_settime", "create_module",
	"delete_module", "finit_module", "get_kernel_syms", "init_module",
	"ioperm", "iopl", "kexec_file_load", "kexec_load", "keyctl",
	"lookup_dcookie", "nfsservctl", "open_by_handle_at", "perf_event_open",
	"query_module", "quotactl", "quotactl_fd", "reboot", "request_key",
	"settimeofday", "stime", "swapoff", "swapon", "syslog", "uselib",
	"userfaultfd", "vhangup", "vm86", "vm86old", "clock_settime64",
	"io_uring_enter", "io_uring_register", "io_uring_setup",
}

// DeniedIoctls are ioctl requests that fail with EPERM: TIOCSTI pushes bytes
// into a terminal's input queue (a sandboxed program would type commands
// into the user's shell after it exits) and TIOCLINUX can do the same
// through the console's selection buffer.
var DeniedIoctls = []uint64{unix.TIOCSTI, unix.TIOCLINUX}

// DeniedSocketFamilies are socket(2) domains that fail with EPERM: vsock
// talks to the hypervisor and other virtual machines, outside any network
// namespace, so a sandbox without --net could reach past its loopback.
// (i386's socketcall passes the domain in memory, out of the filter's
// sight, as Docker's profile also leaves it.)
var DeniedSocketFamilies = []uint64{unix.AF_VSOCK}

// NamespaceCalls fail with EPERM when nesting is forbidden, with or without
// ParentMounts: no process in the sandbox may enter another namespace.
var NamespaceCalls = []string{"setns"}

// MountCalls are the mount family. They fail with EPERM when nesting is
// forbidden and ParentMounts is not set: then no process in the sandbox can
// build a mount tree, even inside a user namespace of its own.
var MountCalls = []string{
	"fsconfig", "fsmount", "fsopen", "fspick", "mount", "mount_setattr",
	"move_mount", "open_tree", "pivot_root", "umount", "umount2",
}

// CompatArches are the other system call entry points a process on the
// native architecture can use (int 0x80 and x32 on amd64): the same rules
// must apply there, or a 32-bit ioctl(TIOCSTI) would slip through.
var CompatArches = map[string][]seccomp.ScmpArch{
	"amd64": {seccomp.ArchX86, seccomp.ArchX32},
}

// LibraryVersion is the version of the libseccomp this binary runs with,
// "2.5.4" for instance.
func LibraryVersion() string {
	major, minor, micro := seccomp.GetLibraryVersion()
	return fmt.Sprintf("%d.%d.%d", major, minor, micro)
}

// Program builds the filter selected by o for the running architecture and
// returns it as classic BPF, as the kernel loads it.
func Program(o Options) ([]unix.SockFilter, error) {
	f, err := NewFilter(o)
	if err != nil {
		return nil, err
	}
	defer f.Release()
	prog, err := export(f)
	if err != nil {
		return nil, err
	}
	return append(guard(o), prog...), nil
}

// NewFilter builds the libseccomp filter: allow by default, deny the lists
// above with EPERM. Tests print it in libseccomp's readable form.
func NewFilter(o Options) (*seccomp.ScmpFilter, error) {
	if _, ok := CompatArches[runtime.GOARCH]; !ok {
		return nil, fmt.Errorf("no rules for GOARCH %s: list its compat entry points in CompatArches", runtime.GOARCH)
	}
	f, err := seccomp.NewFilter(seccomp.ActAllow)
	if err != nil {
		return nil, fmt.Errorf("new filter: %w", err)
	}
	if err := configure(f, o); err != nil {
		f.Release()
		return nil, err
	}
	return f, nil
}

// configure sets the filter's attributes and adds every rule.
func configure(f *seccomp.ScmpFilter, o Options) error {
	// The program is exported and loaded by the sandbox, so libseccomp's
	// load-time attributes never act: neither TSYNC, which NewFilter turns
	// on (and v0.11.1 has no setter to turn off), nor setting no_new_privs,
	// which the sandbox does on its own thread. Turn the latter off so the
	// filter object says what happens.
	if err := f.SetNoNewPrivsBit(false); err != nil {
		return fmt.Errorf("no_new_privs attribute: %w", err)
	}
	// A binary search over the system call numbers (libseccomp's level 2
	// optimisation, from 2.5.0) instead of one comparison after another:
	// the same verdicts in fewer instructions per call, and the kernel,
	// which runs the program for every number of every entry point when it
	// is loaded to fill its per-call cache, loads it several times faster.
	if err := f.SetOptimize(2); err != nil {
		return fmt.Errorf("optimize attribute: %w", err)
	}
	// A system call from an architecture the filter does not list cannot be
	// judged: end the whole process rather than one thread of it.
	if err := f.SetBadArchAction(seccomp.ActKillProcess); err != nil {
		return fmt.Errorf("bad arch action: %w", err)
	}
	for _, arch := range CompatArches[runtime.GOARCH] {
		if err := f.AddArch(arch); err != nil {
			return fmt.Errorf("arch %s: %w", arch, err)
		}
	}
	eperm := seccomp.ActErrno.SetReturnCode(int16(unix.EPERM))
	if err := denyCalls(f, eperm, Denied); err != nil {
		return err
	}
	if err := denyIoctls(f, eperm); err != nil {
		return err
	}
	if err := denyArg0(f, eperm, "socket", DeniedSocketFamilies); err != nil {
		return err
	}
	if o.AllowNesting {
		return nil
	}
	if err := denyCalls(f, eperm, NamespaceCalls); err != nil {
		return err
	}
	if !o.ParentMounts {
		if err := denyCalls(f, eperm, MountCalls); err != nil {
			return err
		}
	}
	return denyUserns(f, eperm)
}

// denyCalls makes each named call fail with act on every architecture of
// the filter that has it.
func denyCalls(f *seccomp.ScmpFilter, act seccomp.ScmpAction, names []string) error {
	for _, name := range names {
		if err := addRule(f, name, act); err != nil {
			return err
		}
	}
	return nil
}

// denyIoctls denies the requests in DeniedIoctls. The kernel reads ioctl's
// request as a 32-bit unsigned int, so the rule compares only the low 32
// bits: a 64-bit equality would let ioctl(fd, 1<<32|TIOCSTI) through, which
// the kernel still runs as TIOCSTI.
func denyIoctls(f *seccomp.ScmpFilter, act seccomp.ScmpAction) error {
	for _, req := range DeniedIoctls {
		c, err := seccomp.MakeCondition(1, seccomp.CompareMaskedEqual, 0xFFFFFFFF, req)
		if err != nil {
			return fmt.Errorf("ioctl condition %#x: %w", req, err)
		}
		if err := addRule(f, "ioctl", act, c); err != nil {
			return err
		}
	}
	return nil
}

// denyArg0 denies call where its first argument, an int, is one of vals:
// the kernel reads only the low 32 bits, so only those are compared.
func denyArg0(f *seccomp.ScmpFilter, act seccomp.ScmpAction, call string, vals []uint64) error {
	for _, v := range vals {
		c, err := seccomp.MakeCondition(0, seccomp.CompareMaskedEqual, 0xFFFFFFFF, v)
		if err != nil {
			return fmt.Errorf("%s condition %#x: %w", call, v, err)
		}
		if err := addRule(f, call, act, c); err != nil {
			return err
		}
	}
	return nil
}

// denyUserns denies new user namespaces: unshare and clone with
// CLONE_NEWUSER among their flags fail with EPERM. The flags are argument 0
// of both calls on amd64, x86 and x32 (not on s390, which this filter never
// lists). clone3 keeps its flags in memory that seccomp cannot read, so it
// fails with ENOSYS, which glibc answers by falling back to clone.
func denyUserns(f *seccomp.ScmpFilter, eperm seccomp.ScmpAction) error {
	c, err := seccomp.MakeCondition(0, seccomp.CompareMaskedEqual, unix.CLONE_NEWUSER, unix.CLONE_NEWUSER)
	if err != nil {
		return fmt.Errorf("clone flags condition: %w", err)
	}
	for _, name := range []string{"unshare", "clone"} {
		if err := addRule(f, name, eperm, c); err != nil {
			return err
		}
	}
	enosys := seccomp.ActErrno.SetReturnCode(int16(unix.ENOSYS))
	return addRule(f, "clone3", enosys)
}

// addRule adds one rule, silently skipping a name this libseccomp cannot
// resolve: an older libseccomp that has never heard of a call cannot have
// clients that need it denied more than the kernel's ENOSYS does.
// libseccomp itself skips the architectures that lack a call it knows.
func addRule(f *seccomp.ScmpFilter, name string, act seccomp.ScmpAction, conds ...seccomp.ScmpCondition) error {
	nr, err := seccomp.GetSyscallFromName(name)
	if err != nil {
		return nil
	}
	if len(conds) == 0 {
		err = f.AddRule(nr, act)
	} else {
		err = f.AddRuleConditional(nr, act, conds)
	}
	if err != nil {
		return fmt.Errorf("rule %s: %w", name, err)
	}
	return nil
}

// export asks libseccomp for the kernel-ready program. libseccomp 2.5 can
// only write it to a file descriptor (ExportBPFMem needs 2.6), so it goes
// through a memfd.
func export(f *seccomp.ScmpFilter) ([]unix.SockFilter, error) {
	fd, err := unix.MemfdCreate("selfdock-seccomp", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("export: memfd_create: %w", err)
	}
	file := os.NewFile(uintptr(fd), "selfdock-seccomp")
	defer file.Close()
	if err := f.ExportBPF(file); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	raw, err := io.ReadAll(io.NewSectionReader(file, 0, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("export: read: %w", err)
	}
	return parseSockFilters(raw)
}

// parseSockFilters decodes libseccomp's output, an array of struct
// sock_filter (code u16, jt u8, jf u8, k u32) in the host's byte order, and
// rejects what the kernel would refuse anyway, so the error comes early.
func parseSockFilters(raw []byte) ([]unix.SockFilter, error) {
	const size = 8
	if len(raw) == 0 || len(raw)%size != 0 {
		return nil, fmt.Errorf("export: %d bytes is not a filter program", len(raw))
	}
	if len(raw)/size > unix.BPF_MAXINSNS {
		return nil, fmt.Errorf("export: %d instructions, more than the kernel's %d", len(raw)/size, unix.BPF_MAXINSNS)
	}
	prog := make([]unix.SockFilter, len(raw)/size)
	for i := range prog {
		r := raw[i*size:]
		prog[i] = unix.SockFilter{
			Code: binary.NativeEndian.Uint16(r[0:]),
			Jt:   r[2],
			Jf:   r[3],
			K:    binary.NativeEndian.Uint32(r[4:]),
		}
	}
	return prog, nil
}
