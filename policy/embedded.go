package policy

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
)

// A self-contained file (selfdock pack --self-contained) is the selfdock
// binary, then a squashfs image, then a JSON config, then this trailer of
// TrailerLen bytes: TrailerMagic, a little-endian u32 version, the u64
// offsets and lengths of the image and of the config, and the SHA-256 of
// the bytes from the image's start to the config's end. Offsets come from
// the trailer, never from scanning.
const (
	TrailerMagic   = "selfdock-sc\n"
	TrailerVersion = 1
	TrailerLen     = 80
)

// Embedded describes the image of a self-contained file.
type Embedded struct {
	Off, Len         uint64
	ConfOff, ConfLen uint64
	Sum              [32]byte
	// From the config: the default command and environment.
	Cmd []string `json:"Cmd,omitempty"`
	Env []string `json:"Env,omitempty"`
}

// ParseTrailer reads a trailer; ok is false when b is not one (a plain
// binary). size is the whole file's size, to bound the offsets.
func ParseTrailer(b []byte, size uint64) (e *Embedded, ok bool, err error) {
	if len(b) != TrailerLen || string(b[:12]) != TrailerMagic {
		return nil, false, nil
	}
	if v := binary.LittleEndian.Uint32(b[12:]); v != TrailerVersion {
		return nil, true, fmt.Errorf("self-contained file: trailer version %d, this selfdock reads %d", v, TrailerVersion)
	}
	e = &Embedded{Off: binary.LittleEndian.Uint64(b[16:]), Len: binary.LittleEndian.Uint64(b[24:]),
		ConfOff: binary.LittleEndian.Uint64(b[32:]), ConfLen: binary.LittleEndian.Uint64(b[40:])}
	copy(e.Sum[:], b[48:])
	bad := errors.New("self-contained file: its trailer does not describe it (truncated?)")
	if size < TrailerLen {
		return nil, true, bad
	}
	end := size - TrailerLen
	// Overflow-safe: every part lies in [0, end) and they follow each other.
	if e.ConfLen > MaxSidecar || e.ConfLen > end || e.ConfOff != end-e.ConfLen ||
		e.Len == 0 || e.Len > e.ConfOff || e.Off != e.ConfOff-e.Len || e.Off%4096 != 0 {
		return nil, true, bad
	}
	return e, true, nil
}

// Trailer encodes e's trailer.
func (e *Embedded) Trailer() []byte {
	b := make([]byte, TrailerLen)
	copy(b, TrailerMagic)
	binary.LittleEndian.PutUint32(b[12:], TrailerVersion)
	for i, v := range []uint64{e.Off, e.Len, e.ConfOff, e.ConfLen} {
		binary.LittleEndian.PutUint64(b[16+8*i:], v)
	}
	copy(b[48:], e.Sum[:])
	return b
}

// ParseConfig reads the config part.
func (e *Embedded) ParseConfig(b []byte) error {
	if err := json.Unmarshal(b, e); err != nil {
		return fmt.Errorf("self-contained file: config: %w", err)
	}
	return nil
}

// NewSum starts the checksum of the image and the config.
func NewSum() interface {
	Write([]byte) (int, error)
	Sum([]byte) []byte
} {
	return sha256.New()
}
