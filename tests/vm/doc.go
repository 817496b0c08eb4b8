// Package vm holds the qemu end-to-end tests of `selfdock boot`, the one
// command that must never run on the development machine itself: it
// replaces the running system. Each test boots Debian's own kernel under
// qemu (-accel tcg: there is no KVM) with a small initramfs whose /init is
// a busybox script playing the "old system", and waits for markers on the
// serial console. The tests run for two guest architectures (arch_test.go):
// x86-64 under qemu-system-x86_64, and arm64 under qemu-system-aarch64's
// "virt" board with arm64 builds of the kernel, busybox and selfdock.
//
// TestVMHarness (TestVMHarnessArm64) boots the old system alone and powers
// off, so that a broken VM (qemu, kernel, initramfs) is told apart from a
// broken boot. TestVMBoot (TestVMBootArm64) has the old system run
// `selfdock boot` on its PID 1 and checks, from the new PID 1 inside the
// image, that the root is the image, that its shell is PID 1, that the old
// system's daemon and swap area are gone and that /proc, /sys and /dev were
// moved in.
//
// The tests need root: they install the Debian packages they use
// (qemu-system-x86, qemu-system-arm, busybox-static, and for arm64 on an
// amd64 host gcc-aarch64-linux-gnu and libc6-dev-arm64-cross) when missing
// and download the kernel packages with apt-get (cached, extracted, in
// /var/tmp/selfdock-test-cache/vm). The packages of a foreign architecture
// (the arm64 kernel and busybox-static) come from a private apt state in
// that directory, which reads the system's sources.list but changes none
// of the system's apt or dpkg configuration. Without root they skip with a
// reason; with SELFDOCK_MUST_WORK=1 a skip is a failure. SELFDOCK_BIN and
// SELFDOCK_BIN_ARM64 name statically linked selfdock binaries to test
// instead of building them (the arm64 one with the cross compiler).
package vm
