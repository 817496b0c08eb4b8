package image

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// Sqfs2tar is the program that turns a squashfs image into a tar stream
// (Debian: squashfs-tools-ng), looked up in PATH. It runs with the
// process's own rights, as everything in this package: selfdock has
// dropped its privileges for good before Import runs.
var Sqfs2tar = "sqfs2tar"

// squashfs unpacks a squashfs image through sqfs2tar, whose tar stream
// goes through the same applier as every layer: the same checks, the
// same ownership rules. The image is handed over as an open descriptor,
// never re-opened by name.
func (im *importer) squashfs(f *os.File) (*Result, error) {
	bin, err := exec.LookPath(Sqfs2tar)
	if err != nil {
		return nil, fmt.Errorf("squashfs image: needs %s (Debian package squashfs-tools-ng): %w", Sqfs2tar, errors.Unwrap(err))
	}
	// --root-becomes . keeps the root directory's own metadata; --no-skip
	// fails on what tar cannot hold instead of leaving it out silently.
	cmd := exec.CommandContext(im.ctx, bin, "--root-becomes", ".", "--no-skip", "/dev/fd/3")
	cmd.ExtraFiles = []*os.File{f}
	stderr := &tailBuffer{max: 4096}
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", Sqfs2tar, err)
	}
	im.prog.Start(0, 0)
	err = im.a.applyTar(im.ctx, &counter{r: out, p: im.prog})
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, err
	}
	_ = drain(out)
	if err := cmd.Wait(); err != nil {
		return nil, fmt.Errorf("%s: %v: %s", Sqfs2tar, err, stderr.lastLine())
	}
	return &Result{Format: "squashfs", Layers: 1}, nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = t.b[len(t.b)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) lastLine() string {
	lines := strings.Split(strings.TrimSpace(string(bytes.ToValidUTF8(t.b, nil))), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}
