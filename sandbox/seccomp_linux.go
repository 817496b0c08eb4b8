package sandbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"unsafe"

	seccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"
)

// SeccompOptions selects the filter.
type SeccompOptions struct {
	// AllowNesting keeps the mount family, setns and new user namespaces
	// available, because an inner selfdock needs them inside its own user
	// namespace, where they cannot touch the host. When false: the mount
	// family and setns fail with EPERM, unshare(CLONE_NEWUSER) and clone with
	// CLONE_NEWUSER fail with EPERM, and clone3 fails with ENOSYS so that libc
	// falls back to clone, whose flags seccomp can see (clone3 passes them in
	// memory, which a seccomp filter cannot read).
	AllowNesting bool
}

// seccompDenied fails with EPERM in every sandbox, in the spirit of Docker's
// default profile: each call reaches kernel state that namespaces do not
// isolate (keyrings, BPF, perf, modules, kexec, swap, the clock, process
// accounting, the kernel log, I/O ports, quotas) or is a well-known source of
// kernel exploits with no use inside a sandbox (userfaultfd,
// open_by_handle_at, vm86). Most already need a capability the sandbox has
// dropped; denying them anyway keeps the claim independent of that drop.
// Names that libseccomp does not know on an architecture are skipped there.
var seccompDenied = []string{
	"acct", "add_key", "bpf", "clock_settime", "create_module",
	"delete_module", "finit_module", "get_kernel_syms", "init_module",
	"ioperm", "iopl", "kexec_file_load", "kexec_load", "keyctl",
	"lookup_dcookie", "nfsservctl", "open_by_handle_at", "perf_event_open",
	"query_module", "quotactl", "quotactl_fd", "reboot", "request_key",
	"settimeofday", "stime", "swapoff", "swapon", "syslog", "uselib",
	"userfaultfd", "vhangup", "vm86", "vm86old",
}

// seccompDeniedIoctls are ioctl requests that fail with EPERM: TIOCSTI pushes
// bytes into a terminal's input queue (a sandboxed program would type
// commands into the user's shell after it exits) and TIOCLINUX can do the
// same through the console's selection buffer.
var seccompDeniedIoctls = []uint64{unix.TIOCSTI, unix.TIOCLINUX}

// seccompNestingDenied fails with EPERM when nesting is forbidden: without
// them no process in the sandbox can build a mount tree or enter another
// namespace, even inside a user namespace of its own.
var seccompNestingDenied = []string{
	"fsconfig", "fsmount", "fsopen", "fspick", "mount", "mount_setattr",
	"move_mount", "open_tree", "pivot_root", "setns", "umount", "umount2",
}

// seccompCompatArches are the other system call entry points a process on
// the native architecture can use (int 0x80 and x32 on amd64): the same rules
// must apply there, or a 32-bit ioctl(TIOCSTI) would slip through.
var seccompCompatArches = map[string][]seccomp.ScmpArch{
	"amd64": {seccomp.ArchX86, seccomp.ArchX32},
}

// seccompProgram builds the filter selected by o and returns it as classic
// BPF, ready for loadSeccompThread, so that loading costs one system call and
// no libseccomp code runs between fork and exec. Build it once per process:
// libseccomp takes 0.3-0.9 ms (more on the first call), a tenth of a whole
// sandbox start; startSeccompProgram hides that behind other work.
func seccompProgram(o SeccompOptions) ([]unix.SockFilter, error) {
	f, err := newSeccompFilter(o)
	if err != nil {
		return nil, err
	}
	defer f.Release()
	return exportSeccompFilter(f)
}

// startSeccompProgram starts seccompProgram(o) on another goroutine and
// returns a function that waits for its result (and returns the same result
// on every call). Started first thing, the build runs on the other core while
// the locked thread unshares and builds the mount tree, so it costs the start
// nothing. libseccomp touches no file system and no namespace state, so it
// may run on any thread.
func startSeccompProgram(o SeccompOptions) func() ([]unix.SockFilter, error) {
	type result struct {
		prog []unix.SockFilter
		err  error
	}
	c := make(chan result, 1)
	go func() {
		prog, err := seccompProgram(o)
		c <- result{prog, err}
	}()
	return sync.OnceValues(func() ([]unix.SockFilter, error) {
		r := <-c
		return r.prog, r.err
	})
}

// newSeccompFilter builds the libseccomp filter: allow by default, deny the
// lists above with EPERM. It is separate from seccompProgram so tests can
// print it in libseccomp's readable form.
func newSeccompFilter(o SeccompOptions) (*seccomp.ScmpFilter, error) {
	f, err := seccomp.NewFilter(seccomp.ActAllow)
	if err != nil {
		return nil, fmt.Errorf("seccomp filter: %w", err)
	}
	if err := configureSeccompFilter(f, o); err != nil {
		f.Release()
		return nil, err
	}
	return f, nil
}

// configureSeccompFilter sets the filter's attributes and adds every rule.
func configureSeccompFilter(f *seccomp.ScmpFilter, o SeccompOptions) error {
	// We export the program and load it ourselves, so libseccomp's load-time
	// attributes never act: neither TSYNC, which NewFilter turns on (and
	// v0.11.1 has no setter to turn off), nor setting no_new_privs, which the
	// caller does on its own thread. Turn the latter off so the filter object
	// says what we do.
	if err := f.SetNoNewPrivsBit(false); err != nil {
		return fmt.Errorf("seccomp no_new_privs attribute: %w", err)
	}
	// A system call from an architecture the filter does not list cannot be
	// judged: end the whole process rather than one thread of it.
	if err := f.SetBadArchAction(seccomp.ActKillProcess); err != nil {
		return fmt.Errorf("seccomp bad arch action: %w", err)
	}
	for _, arch := range seccompCompatArches[runtime.GOARCH] {
		if err := f.AddArch(arch); err != nil {
			return fmt.Errorf("seccomp arch %s: %w", arch, err)
		}
	}
	eperm := seccomp.ActErrno.SetReturnCode(int16(unix.EPERM))
	if err := denySeccompCalls(f, eperm, seccompDenied); err != nil {
		return err
	}
	if err := denySeccompIoctls(f, eperm); err != nil {
		return err
	}
	if o.AllowNesting {
		return nil
	}
	if err := denySeccompCalls(f, eperm, seccompNestingDenied); err != nil {
		return err
	}
	return denySeccompUserns(f, eperm)
}

// denySeccompCalls makes each named call fail with act on every architecture
// of the filter that has it.
func denySeccompCalls(f *seccomp.ScmpFilter, act seccomp.ScmpAction, names []string) error {
	for _, name := range names {
		if err := addSeccompRule(f, name, act); err != nil {
			return err
		}
	}
	return nil
}

// denySeccompIoctls denies the requests in seccompDeniedIoctls. The kernel
// reads ioctl's request as a 32-bit unsigned int, so the rule compares only
// the low 32 bits: a 64-bit equality would let ioctl(fd, 1<<32|TIOCSTI)
// through, which the kernel still runs as TIOCSTI.
func denySeccompIoctls(f *seccomp.ScmpFilter, act seccomp.ScmpAction) error {
	for _, req := range seccompDeniedIoctls {
		c, err := seccomp.MakeCondition(1, seccomp.CompareMaskedEqual, 0xFFFFFFFF, req)
		if err != nil {
			return fmt.Errorf("seccomp ioctl condition %#x: %w", req, err)
		}
		if err := addSeccompRule(f, "ioctl", act, c); err != nil {
			return err
		}
	}
	return nil
}

// denySeccompUserns denies new user namespaces: unshare and clone with
// CLONE_NEWUSER among their flags fail with EPERM. The flags are argument 0
// of both calls on amd64, x86 and x32 (not on s390, which this filter never
// lists). clone3 keeps its flags in memory that seccomp cannot read, so it
// fails with ENOSYS, which glibc answers by falling back to clone.
func denySeccompUserns(f *seccomp.ScmpFilter, eperm seccomp.ScmpAction) error {
	c, err := seccomp.MakeCondition(0, seccomp.CompareMaskedEqual, unix.CLONE_NEWUSER, unix.CLONE_NEWUSER)
	if err != nil {
		return fmt.Errorf("seccomp clone flags condition: %w", err)
	}
	for _, name := range []string{"unshare", "clone"} {
		if err := addSeccompRule(f, name, eperm, c); err != nil {
			return err
		}
	}
	enosys := seccomp.ActErrno.SetReturnCode(int16(unix.ENOSYS))
	return addSeccompRule(f, "clone3", enosys)
}

// addSeccompRule adds one rule, silently skipping a name this libseccomp
// cannot resolve: an older libseccomp that has never heard of a call cannot
// have clients that need it denied more than the kernel's ENOSYS does.
// libseccomp itself skips the architectures that lack a call it knows.
func addSeccompRule(f *seccomp.ScmpFilter, name string, act seccomp.ScmpAction, conds ...seccomp.ScmpCondition) error {
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
		return fmt.Errorf("seccomp rule %s: %w", name, err)
	}
	return nil
}

// exportSeccompFilter asks libseccomp for the kernel-ready program. libseccomp
// 2.5 can only write it to a file descriptor (ExportBPFMem needs 2.6), so it
// goes through a memfd: no file system, which may be read-only or not yet
// mounted at this point, and no pipe that could fill up.
func exportSeccompFilter(f *seccomp.ScmpFilter) ([]unix.SockFilter, error) {
	fd, err := unix.MemfdCreate("selfdock-seccomp", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("seccomp export: memfd_create: %w", err)
	}
	file := os.NewFile(uintptr(fd), "selfdock-seccomp")
	defer file.Close()
	if err := f.ExportBPF(file); err != nil {
		return nil, fmt.Errorf("seccomp export: %w", err)
	}
	raw, err := io.ReadAll(io.NewSectionReader(file, 0, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("seccomp export: read: %w", err)
	}
	return parseSockFilters(raw)
}

// parseSockFilters decodes libseccomp's output, an array of struct
// sock_filter (code u16, jt u8, jf u8, k u32) in the host's byte order, and
// rejects what the kernel would refuse anyway, so the error comes early.
func parseSockFilters(raw []byte) ([]unix.SockFilter, error) {
	const size = 8
	if len(raw) == 0 || len(raw)%size != 0 {
		return nil, fmt.Errorf("seccomp export: %d bytes is not a filter program", len(raw))
	}
	if len(raw)/size > unix.BPF_MAXINSNS {
		return nil, fmt.Errorf("seccomp export: %d instructions, more than the kernel's %d", len(raw)/size, unix.BPF_MAXINSNS)
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

// loadSeccompThread loads prog on the CALLING THREAD ONLY, with no TSYNC:
// other threads of the process, including the privileged ones that may still
// mount after the fork, stay unfiltered, while everything this thread forks
// or execs inherits the filter for good. The caller must hold
// runtime.LockOSThread for the rest of the thread's life (never unlock: the
// filtered thread must not run other goroutines) and must have set
// no_new_privs on this thread, or hold CAP_SYS_ADMIN; the kernel refuses
// with EACCES otherwise.
func loadSeccompThread(prog []unix.SockFilter) error {
	if len(prog) == 0 || len(prog) > unix.BPF_MAXINSNS {
		return fmt.Errorf("seccomp load: program of %d instructions", len(prog))
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	// seccomp(2), not prctl(PR_SET_SECCOMP): the same effect, and flags 0
	// means exactly this thread.
	_, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(&fprog)))
	runtime.KeepAlive(prog)
	if errno != 0 {
		if errors.Is(errno, unix.EACCES) {
			return fmt.Errorf("seccomp load: %w (no_new_privs not set on this thread)", errno)
		}
		return fmt.Errorf("seccomp load: %w", errno)
	}
	return nil
}
