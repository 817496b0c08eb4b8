package sandbox

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"

	"golang.org/x/sys/unix"
)

// BundleMarker is the line of a bundle's header (made by selfdock pack
// --bundle) that gives the offset of its squashfs image; the header is a
// "#!" line naming selfdock, this line, and padding.
const BundleMarker = "# selfdock-bundle offset="

// squashfsMagic starts every squashfs image.
var squashfsMagic = []byte("hsqs")

// imageRoot mounts the plan's squashfs image (or bundle) as the new root,
// read-only, nosuid, nodev. A user-supplied image is never given to the
// kernel's squashfs driver: only one owned by root, writable by root alone,
// in a directory the root-owned policy lists (image_dirs). Any other is
// served by squashfuse as the caller where the caller may use FUSE, or else
// unpacked into a tmpfs by a child running as the caller.
func (t *tree) imageRoot() (int, string, error) {
	if t.plan.Embedded != nil {
		return t.embeddedRoot()
	}
	fd, err := unix.Openat2(unix.AT_FDCWD, t.plan.Image, &unix.OpenHow{
		Flags: unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NONBLOCK, Resolve: unix.RESOLVE_NO_MAGICLINKS})
	if err != nil {
		return -1, "", errorf("image", t.plan.Image, err)
	}
	defer unix.Close(fd)
	real := fdPath(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return -1, "", fmt.Errorf("image %q: not a regular file", t.plan.Image)
	}
	off, err := imageOffset(fd)
	if err != nil {
		return -1, "", fmt.Errorf("image %q: %w", t.plan.Image, err)
	}
	var m int
	switch {
	case !t.userns && st.Uid == 0 && st.Mode&0o022 == 0 && anyUnder(real, t.plan.ImageDirs):
		m, err = mountSquashfs(fd, off, 0)
	case len(t.plan.RootfsDirs) > 0:
		// Not for the kernel: served or unpacked as the caller, which
		// makes the caller's own file the root, which a policy that lists
		// the allowed roots (rootfs_dirs) does not allow.
		return -1, "", fmt.Errorf("image %q: the policy allows only the roots in rootfs_dirs %q and the images in image_dirs %q, and this one (%s, owner %d, mode %04o) is neither", t.plan.Image, t.plan.RootfsDirs, t.plan.ImageDirs, real, st.Uid, st.Mode&0o7777)
	case fuseUsable() == "":
		m, err = t.fuseRoot(fd, off)
	case uint64(st.Size) <= off:
		return -1, "", fmt.Errorf("image %q: no squashfs image after its header", t.plan.Image)
	default:
		m, err = t.unpackRoot(fd, off, uint64(st.Size)-off)
	}
	if err != nil {
		return -1, "", fmt.Errorf("image %q: %w", t.plan.Image, err)
	}
	return m, real, nil
}

// imageOffset finds where the squashfs image starts: 0, or the offset a
// bundle's header states. It never scans for the magic number.
func imageOffset(fd int) (uint64, error) {
	head := make([]byte, 4096)
	n, err := unix.Pread(fd, head, 0)
	if err != nil {
		return 0, err
	}
	head = head[:n]
	var off uint64
	if bytes.HasPrefix(head, []byte("#!")) {
		i := bytes.Index(head, []byte("\n"+BundleMarker))
		if i < 0 {
			return 0, errors.New("a #! file that is not a selfdock bundle")
		}
		rest := head[i+1+len(BundleMarker):]
		end := bytes.IndexByte(rest, '\n')
		if end < 0 {
			return 0, errors.New("bundle header: no end of line after the offset")
		}
		if off, err = strconv.ParseUint(string(rest[:end]), 10, 63); err != nil || off%4096 != 0 {
			return 0, fmt.Errorf("bundle header: bad offset %q", rest[:end])
		}
	}
	magic := make([]byte, 4)
	if n, _ := unix.Pread(fd, magic, int64(off)); n != 4 || !bytes.Equal(magic, squashfsMagic) {
		return 0, fmt.Errorf("no squashfs image at offset %d", off)
	}
	return off, nil
}

// mountSquashfs attaches the image to a free loop device (read-only,
// cleared automatically when the mount goes away, so nothing is left behind
// on any error) and mounts it.
func mountSquashfs(fd int, off, limit uint64) (int, error) {
	// Our own loop device and superblock; no path of the caller's is used.
	prev, _ := unix.SetfsuidRetUid(0)
	defer unix.SetfsuidRetUid(prev)
	dev, name, err := loopAttach(fd, off, limit)
	if err != nil {
		return -1, err
	}
	defer unix.Close(dev)
	fs, err := unix.Fsopen("squashfs", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("squashfs: %w", err)
	}
	defer unix.Close(fs)
	if err := unix.FsconfigSetString(fs, "source", name); err != nil {
		return -1, fmt.Errorf("squashfs source %s: %w", name, err)
	}
	// A read-only superblock: the loop device refuses to be opened for writing.
	if err := unix.FsconfigSetFlag(fs, "ro"); err != nil {
		return -1, fmt.Errorf("squashfs ro: %w", err)
	}
	if err := unix.FsconfigCreate(fs); err != nil {
		return -1, fmt.Errorf("squashfs on %s: %w (a damaged image?)", name, err)
	}
	// Safe: a read-only, nosuid, nodev mount of a root-owned image that only
	// root can write, from a directory the administrator listed.
	m, err := unix.Fsmount(fs, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV)
	if err != nil {
		return -1, fmt.Errorf("squashfs: %w", err)
	}
	return m, nil
}

// loopAttach configures a free loop device on fd from off, retrying when
// another process takes the device first.
func loopAttach(fd int, off, limit uint64) (int, string, error) {
	ctl, err := unix.Open("/dev/loop-control", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, "", fmt.Errorf("loop: %w", err)
	}
	defer unix.Close(ctl)
	for try := 0; try < 8; try++ {
		n, err := unix.IoctlRetInt(ctl, unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return -1, "", fmt.Errorf("loop: %w", err)
		}
		name := "/dev/loop" + strconv.Itoa(n)
		dev, err := unix.Open(name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return -1, "", fmt.Errorf("loop %s: %w", name, err)
		}
		cfg := unix.LoopConfig{Fd: uint32(fd)}
		cfg.Info.Offset = off
		cfg.Info.Sizelimit = limit
		cfg.Info.Flags = unix.LO_FLAGS_READ_ONLY | unix.LO_FLAGS_AUTOCLEAR
		// Safe: a free loop device, read-only, on the descriptor we checked.
		if err := unix.IoctlLoopConfigure(dev, &cfg); err == nil {
			return dev, name, nil
		} else if !errors.Is(err, unix.EBUSY) {
			unix.Close(dev)
			return -1, "", fmt.Errorf("loop %s: %w", name, err)
		}
		unix.Close(dev)
	}
	return -1, "", errors.New("loop: no free device")
}
