package sandbox

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/selfdock/selfdock/policy"
	"golang.org/x/sys/unix"
)

// SelfContained reads this executable's trailer: nil when it is a plain
// selfdock, the embedded image's description when it carries one.
func SelfContained() (*policy.Embedded, error) {
	fd, err := unix.Open("/proc/self/exe", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || st.Size < policy.TrailerLen {
		return nil, nil
	}
	b := make([]byte, policy.TrailerLen)
	if n, _ := unix.Pread(fd, b, st.Size-policy.TrailerLen); n != len(b) {
		return nil, nil
	}
	e, ok, err := policy.ParseTrailer(b, uint64(st.Size))
	if err != nil {
		return nil, err
	}
	if !ok {
		if end := elfEnd(fd); end > 0 && st.Size > end {
			// Bytes after the program but no trailer: a self-contained
			// file cut short, or changed at its end.
			return nil, errors.New("self-contained file: damaged or truncated (no valid trailer); nothing was run")
		}
		return nil, nil
	}
	conf := make([]byte, e.ConfLen)
	if n, _ := unix.Pread(fd, conf, int64(e.ConfOff)); n != len(conf) {
		return nil, errors.New("self-contained file: cannot read its config (truncated?)")
	}
	if len(conf) > 0 {
		if err := e.ParseConfig(conf); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// embeddedRoot mounts the image this executable carries: checked against
// its checksum first, then loop-mounted when real root runs it, served by
// squashfuse where the caller may use FUSE, else unpacked into a private
// tmpfs by a child, as the caller, with a pure-Go squashfs reader.
func (t *tree) embeddedRoot() (int, string, error) {
	e := t.plan.Embedded
	fd, err := unix.Open("/proc/self/exe", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, "", fmt.Errorf("self-contained file: %w", err)
	}
	defer unix.Close(fd)
	if err := verifyEmbedded(fd, e); err != nil {
		return -1, "", err
	}
	var m int
	switch {
	case t.root0:
		m, err = mountSquashfs(fd, e.Off, e.Len)
	case fuseUsable() == "":
		m, err = t.fuseRoot(fd, e.Off)
	default:
		m, err = t.unpackRoot(fd, e.Off, e.Len)
	}
	if err != nil {
		return -1, "", fmt.Errorf("self-contained file: %w", err)
	}
	return m, "(the embedded image)", nil
}

// verifyEmbedded checks the SHA-256 of the image and the config.
func verifyEmbedded(fd int, e *policy.Embedded) error {
	h := policy.NewSum()
	buf := make([]byte, 1<<20)
	for off, end := e.Off, e.ConfOff+e.ConfLen; off < end; {
		n := min(uint64(len(buf)), end-off)
		got, err := unix.Pread(fd, buf[:n], int64(off))
		if err != nil || got == 0 {
			return errors.New("self-contained file: cannot read its image (truncated?)")
		}
		h.Write(buf[:got])
		off += uint64(got)
	}
	if !bytes.Equal(h.Sum(nil), e.Sum[:]) {
		return errors.New("self-contained file: checksum mismatch: it is damaged or was changed; nothing was run")
	}
	return nil
}

// elfEnd is where a 64-bit ELF file's section header table ends, the end
// of a plain selfdock binary; 0 if it cannot tell.
func elfEnd(fd int) int64 {
	h := make([]byte, 64)
	if n, _ := unix.Pread(fd, h, 0); n != 64 || string(h[:4]) != "\x7fELF" || h[4] != 2 || h[5] != 1 {
		return 0
	}
	le := func(b []byte) uint64 {
		var v uint64
		for i := len(b) - 1; i >= 0; i-- {
			v = v<<8 | uint64(b[i])
		}
		return v
	}
	shoff, shentsize, shnum := le(h[40:48]), le(h[58:60]), le(h[60:62])
	return int64(shoff + shentsize*shnum)
}
