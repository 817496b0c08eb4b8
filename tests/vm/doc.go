// Package vm holds the qemu end-to-end tests of `selfdock boot`, the one
// command that must never run on the development machine itself: it
// replaces the running system. Each test boots Debian's own kernel under
// qemu-system-x86_64 (-accel tcg: there is no KVM) with a small initramfs
// whose /init is a busybox script playing the "old system", and waits for
// markers on the serial console.
//
// TestVMHarness boots the old system alone and powers off, so that a
// broken VM (qemu, kernel, initramfs) is told apart from a broken boot.
// TestVMBoot has the old system run `selfdock boot` on its PID 1 and checks,
// from the new PID 1 inside the image, that the root is the image, that
// its shell is PID 1, that the old system's daemon is gone and that /proc,
// /sys and /dev were moved in.
//
// The tests need root: they install the Debian packages they use
// (qemu-system-x86, busybox-static) when missing and download the kernel
// package with apt-get (cached, extracted, in /var/tmp/selfdock-test-cache/vm).
// Without root they skip with a reason; with SELFDOCK_MUST_WORK=1 a skip is
// a failure. SELFDOCK_BIN names a statically linked selfdock to test instead
// of building one.
package vm
