package image

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Mksquashfs is the squashfs-tools program pack runs, as the caller.
var Mksquashfs = "mksquashfs"

// BundleOffset is where a bundle's squashfs image starts: the header is
// padded to it. selfdock finds it from the header's marker line, never by
// scanning for the magic number.
const BundleOffset = 4096

// bundleMarker must match sandbox.BundleMarker (image may not import
// sandbox); a test in cmd/selfdock checks that they agree.
const bundleMarker = "# selfdock-bundle offset="

// BundleHeader is the header of a bundle run by interpreter: a "#!" line,
// the marker line, and padding to BundleOffset.
func BundleHeader(interpreter string) ([]byte, error) {
	if !filepath.IsAbs(interpreter) || strings.ContainsAny(interpreter, " \t\n") {
		return nil, fmt.Errorf("bundle interpreter %q: must be an absolute path without blanks", interpreter)
	}
	h := fmt.Sprintf("#!%s\n%s%d\n# Run it as a program: ./FILE CMD [ARG...] runs CMD in the image it carries.\n",
		interpreter, bundleMarker, BundleOffset)
	if len("#!"+interpreter) > 255 { // the kernel reads 256 bytes of a #! line
		return nil, fmt.Errorf("bundle interpreter %q: path too long for a #! line", interpreter)
	}
	return append([]byte(h), bytes.Repeat([]byte("\n"), BundleOffset-len(h))...), nil
}

// Pack makes a squashfs image of dir at out with mksquashfs, as the
// caller; with interpreter set, out is a bundle: BundleHeader followed by
// the image, executable. out is written through a temporary sibling and
// renamed at the end, so a failure leaves nothing.
func Pack(ctx context.Context, dir, out, interpreter string) error {
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return fmt.Errorf("pack %q: not a directory", dir)
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".pack-*")
	if err != nil {
		return fmt.Errorf("pack %q: %w", out, err)
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	sq := tmp.Name() + ".sqfs"
	defer os.Remove(sq)
	cmd := exec.CommandContext(ctx, Mksquashfs, dir, sq, "-noappend", "-quiet", "-no-progress")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pack %q: mksquashfs: %v: %s", dir, err, strings.TrimSpace(string(b)))
	}
	if interpreter == "" {
		return rename(sq, out)
	}
	if err := writeBundle(tmp.Name(), sq, interpreter); err != nil {
		return fmt.Errorf("pack %q: %w", out, err)
	}
	return rename(tmp.Name(), out)
}

func writeBundle(path, sq, interpreter string) error {
	head, err := BundleHeader(interpreter)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	defer f.Close()
	in, err := os.Open(sq)
	if err != nil {
		return err
	}
	defer in.Close()
	if _, err := f.Write(head); err != nil {
		return err
	}
	if _, err := io.Copy(f, in); err != nil {
		return err
	}
	if err := f.Chmod(0o755); err != nil {
		return err
	}
	return f.Close()
}

func rename(from, to string) error {
	if err := os.Rename(from, to); err != nil {
		return fmt.Errorf("pack %q: %w", to, err)
	}
	return nil
}
