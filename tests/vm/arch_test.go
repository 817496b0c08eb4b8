package vm

import (
	"debug/elf"
	"runtime"
	"sync"
)

// arch is what differs between the guest architectures: the kernel
// package, qemu's board, the console, the cross build. A guest of the
// host's own architecture uses the system's apt lists and busybox; another
// one gets its packages from a private apt state (aptFor) and its selfdock
// from a cross compiler.
type arch struct {
	name     string      // GOARCH, Debian's architecture, the kernel flavour
	qemu     string      // the system emulator
	machine  []string    // its board and CPU flags
	console  string      // the kernel's name for the board's first serial port
	builtIn  []string    // this architecture's kernel options the VM needs =y
	packages []string    // host packages: the emulator
	cross    []string    // host packages to cross-build for it: gcc, libc.a
	cc       string      // cgo's C compiler when cross-building
	binEnv   string      // environment variable naming a prebuilt selfdock
	machineE elf.Machine // the ELF machine a selfdock for it must have

	once sync.Once // makes fix once for all of this architecture's tests
	fix  fixture
	err  error
}

// amd64: ACPI, so that poweroff ends qemu; the 8250 UART is the PC's
// serial port.
var amd64 = &arch{
	name:     "amd64",
	qemu:     "qemu-system-x86_64",
	console:  "ttyS0",
	builtIn:  []string{"SERIAL_8250", "SERIAL_8250_CONSOLE", "ACPI"},
	packages: []string{"qemu-system-x86"},
	cross:    []string{"gcc-x86-64-linux-gnu", "libc6-dev-amd64-cross"},
	cc:       "x86_64-linux-gnu-gcc",
	binEnv:   "SELFDOCK_BIN",
	machineE: elf.EM_X86_64,
}

// arm64: qemu's "virt" board, whose serial port is a PL011 and whose
// power-off and reset go through PSCI (a reset, as after a panic, ends qemu
// with -no-reboot). Its kernel boots from -kernel without firmware: qemu
// loads Debian's vmlinuz, an uncompressed arm64 Image (qemu would also
// inflate a gzip one), with a device tree of its own. The Cortex-A57 is
// the plainest CPU: "max" adds features (pointer authentication, SVE) that
// TCG emulates at a cost (a boot took twice as long) and the test does not
// need.
var arm64 = &arch{
	name:     "arm64",
	qemu:     "qemu-system-aarch64",
	machine:  []string{"-M", "virt", "-cpu", "cortex-a57"},
	console:  "ttyAMA0",
	builtIn:  []string{"SERIAL_AMBA_PL011", "SERIAL_AMBA_PL011_CONSOLE", "ARM_PSCI_FW"},
	packages: []string{"qemu-system-arm"},
	cross:    []string{"gcc-aarch64-linux-gnu", "libc6-dev-arm64-cross"},
	cc:       "aarch64-linux-gnu-gcc",
	binEnv:   "SELFDOCK_BIN_ARM64",
	machineE: elf.EM_AARCH64,
}

// hostPackages are the Debian packages the host needs for a's VM:
// busybox-static, whose applet list serves every architecture, the
// emulator and, for a foreign a, the cross compiler.
func (a *arch) hostPackages() []string {
	p := append([]string{"busybox-static"}, a.packages...)
	if a.foreign() {
		p = append(p, a.cross...)
	}
	return p
}

// foreign: a's binaries do not run on this machine, and apt's lists here
// are not for a.
func (a *arch) foreign() bool { return a.name != runtime.GOARCH }
