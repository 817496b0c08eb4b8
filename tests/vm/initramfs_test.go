package vm

import (
	"fmt"
	"os"
	"sort"
	"strings"
)

// initramfs describes the "old system" the kernel unpacks and runs /init
// of: a busybox with a link in /bin for each applet, /bin/selfdock, /init
// and extra files copied from the host.
type initramfs struct {
	init    string            // /init, a busybox sh script
	busybox string            // the guest's static busybox, on the host
	applets []string          // linked to /bin/busybox
	copies  map[string]string // name in the initramfs -> file on the host
}

// initramfsDirs are those of a small system: its mount points and /bin.
var initramfsDirs = []string{"bin", "dev", "etc", "proc", "root", "run", "sbin", "sys", "tmp"}

// write writes the initramfs to out as an uncompressed newc cpio:
// unpacking it costs the kernel less time under TCG than inflating it.
func (r initramfs) write(out string) error {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	c := newCpio(f)
	for _, d := range initramfsDirs {
		c.dir(d)
	}
	// The kernel opens /dev/console for /init's standard streams before
	// /init can mount devtmpfs: without this node /init has none.
	c.chardev("dev/console", 0o600, 5, 1)
	c.file("init", 0o755, []byte(r.init))
	if err := r.copyFiles(c); err != nil {
		f.Close()
		return err
	}
	for _, a := range r.applets {
		c.symlink("bin/"+a, "busybox")
	}
	err = c.close()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write initramfs %s: %w", out, err)
	}
	return nil
}

// copyFiles adds busybox and each of copies, in name order so that the
// same inputs give the same archive; those in bin/ are executable.
func (r initramfs) copyFiles(c *cpioWriter) error {
	files := map[string]string{"bin/busybox": r.busybox}
	for name, host := range r.copies {
		files[name] = host
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		b, err := os.ReadFile(files[name])
		if err != nil {
			return fmt.Errorf("initramfs file %s: %w", name, err)
		}
		perm := uint32(0o644)
		if strings.HasPrefix(name, "bin/") {
			perm = 0o755
		}
		c.file(name, perm, b)
	}
	return nil
}
