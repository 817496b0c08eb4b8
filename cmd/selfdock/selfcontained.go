package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/selfdock/selfdock/image"
	"github.com/selfdock/selfdock/policy"
	"github.com/selfdock/selfdock/sandbox"
)

// embedded is set when this executable is a self-contained file: run then
// uses the image it carries as the root.
var embedded *policy.Embedded

// scHelp explains the self-contained mode; its option name cannot clash with
// the image's own arguments.
const scHelp = `This file is a program and a root file system in one (selfdock pack --self-contained).

  ./FILE                     run the image's default command in a sandbox
  ./FILE CMD [ARG...]        run CMD in it instead
  ./FILE --sd-OPTION... [--] CMD [ARG...]
                             sandbox options, prefixed with --sd-: --sd-map SRC DST,
                             --sd-vol SRC DST, --sd-tmpfs OPTS DST, --sd-env NAME VALUE,
                             --sd-unset NAME, -- sd-chdir DIR, --sd-overlay, --sd-net,
                             --sd-hostname NAME
  ./FILE --selfdock-help     this text

The sandbox is selfdock run's: your uid, a read-only root (the image), a private /tmp,
/proc and /dev, host directories only when mapped. Without privilege it runs in a user
namespace; the image is served by squashfuse where you may use FUSE, else unpacked into
memory. A damaged or changed file is refused (checksum).
`

// selfContainedArgs turns a self-contained file's command line into
// selfdock's: --sd-X options become --X, then run and the command.
func selfContainedArgs(args []string) ([]string, bool) {
	if len(args) > 0 && args[0] == "--selfdock-help" {
		fmt.Print(scHelp)
		return nil, false
	}
	var out []string
	i := 0
	for ; i < len(args) && strings.HasPrefix(args[i], "--sd-"); i++ {
		name := "--" + strings.TrimPrefix(args[i], "--sd-")
		out = append(out, name)
		n := map[string]int{"--map": 2, "--vol": 2, "--tmpfs": 2, "--env": 2, "--unset": 1,
			"--chdir": 1, "--hostname": 1, "--overlay-size": 1, "--seccomp": 1}[name]
		for ; n > 0 && i+1 < len(args); n-- {
			i++
			out = append(out, args[i])
		}
	}
	out = append(out, "run", "--")
	if i < len(args) && args[i] == "--" {
		i++
	}
	return append(out, args[i:]...), true
}

// packSelfContained writes OUT: this selfdock binary (never setuid), padded
// to 4 KiB, the squashfs image of src (a directory, or an image file), the
// config (default command and environment), and the trailer.
func packSelfContained(ctx context.Context, src, out string, cmd, env []string) error {
	if e, _ := sandbox.SelfContained(); e != nil {
		return fmt.Errorf("pack: run it with a plain selfdock, not a self-contained file")
	}
	img := src
	if fi, err := os.Stat(src); err == nil && fi.IsDir() {
		tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".img-*")
		if err != nil {
			return fmt.Errorf("pack %q: %w", out, err)
		}
		tmp.Close()
		defer os.Remove(tmp.Name())
		if err := image.Pack(ctx, src, tmp.Name(), ""); err != nil {
			return err
		}
		img = tmp.Name()
	}
	conf, err := json.Marshal(struct{ Cmd, Env []string }{cmd, env})
	if err != nil {
		return err
	}
	return writeSelfContained(img, out, conf)
}

func writeSelfContained(img, out string, conf []byte) error {
	exe, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		return fmt.Errorf("pack: read selfdock: %w", err)
	}
	data, err := os.ReadFile(img)
	if err != nil || !bytes.HasPrefix(data, []byte("hsqs")) {
		return fmt.Errorf("pack %q: not a squashfs image", img)
	}
	pad := (4096 - len(exe)%4096) % 4096
	e := policy.Embedded{Off: uint64(len(exe) + pad), Len: uint64(len(data))}
	e.ConfOff, e.ConfLen = e.Off+e.Len, uint64(len(conf))
	h := policy.NewSum()
	h.Write(data)
	h.Write(conf)
	copy(e.Sum[:], h.Sum(nil))
	tmp := out + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		return fmt.Errorf("pack %q: %w", out, err)
	}
	defer os.Remove(tmp)
	for _, part := range [][]byte{exe, make([]byte, pad), data, conf, e.Trailer()} {
		if _, err := io.Copy(f, bytes.NewReader(part)); err != nil {
			f.Close()
			return fmt.Errorf("pack %q: %w", out, err)
		}
	}
	if err := f.Chmod(0o755); err != nil { // never setuid
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, out)
}
