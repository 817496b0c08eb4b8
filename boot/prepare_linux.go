package boot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/selfdock/selfdock/image"
	"golang.org/x/sys/unix"
)

// reserve is the RAM left free beside the new root: the new system must
// still be able to run something.
const reserve = 64 << 20

// Options say what to boot.
type Options struct {
	Image    string   // IMAGE as the user named it
	Argv     []string // CMD; empty: the image's entrypoint and cmd, else /sbin/init
	TTY      int      // virtual console; 0: none
	KeepSwap bool
	Grace    time.Duration
	Target   *Target
	Progress image.Progress // nil: none
}

// Prepare mounts a tmpfs at RootDir, sized to the RAM available, unpacks
// the image into ImageDir and writes Meta at MetaPath. On error, nothing is
// left: the tmpfs is unmounted and the files are removed.
func Prepare(ctx context.Context, o Options) (m *Meta, err error) {
	avail, err := memAvailable()
	if err != nil {
		return nil, err
	}
	need, err := estimate(o.Image)
	if err != nil {
		return nil, err
	}
	if need+reserve > avail {
		return nil, fmt.Errorf("image %q needs at least %d MiB of RAM (and %d MiB kept free); %d MiB are available",
			o.Image, need>>20, reserve>>20, avail>>20)
	}
	if err := mountRoot(avail - reserve); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			Cleanup()
		}
	}()
	iopt := image.Options{Preserve: true, Progress: o.Progress}
	if _, err := image.Import(ctx, o.Image, ImageDir, iopt); err != nil {
		if errors.Is(err, syscall.ENOSPC) {
			return nil, fmt.Errorf("image %q does not fit in RAM (%d MiB available): %w", o.Image, (avail-reserve)>>20, err)
		}
		return nil, err
	}
	if m, err = plan(o, ImageDir); err != nil {
		return nil, err
	}
	if err := copyExe(); err != nil {
		return nil, err
	}
	if err := m.write(); err != nil {
		return nil, fmt.Errorf("write %s: %w", MetaPath, err)
	}
	return m, nil
}

// mountRoot mounts the tmpfs that will hold the new root. It is not
// nosuid/nodev: it becomes the whole system's root. Only the real root
// gets here (cmd checks the real uid), and the path is fixed.
//
// Dir is first bound onto itself and made private: the tmpfs then appears
// in no other mount namespace (/run is shared on most systems), and its
// later unmount here (Release) cannot reach the new PID 1's copy.
func mountRoot(size uint64) error {
	if err := os.MkdirAll(Dir, 0o700); err != nil {
		return err
	}
	if mounted(RootDir) || mounted(Dir) {
		return fmt.Errorf("%s is already a mount point: a boot was prepared and not finished (umount it)", Dir)
	}
	// Safe: fixed paths under /run, which only root may write, for the
	// real root (checked by the caller); a private bind of a directory
	// onto itself changes nothing but propagation.
	if err := unix.Mount(Dir, Dir, "", unix.MS_BIND, ""); err != nil {
		return &os.PathError{Op: "bind", Path: Dir, Err: err}
	}
	if err := unix.Mount("", Dir, "", unix.MS_PRIVATE, ""); err != nil {
		Cleanup()
		return &os.PathError{Op: "make private", Path: Dir, Err: err}
	}
	if err := os.Mkdir(RootDir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		Cleanup()
		return err
	}
	data := "mode=0755,size=" + strconv.FormatUint(size, 10)
	// Safe: as above.
	if err := unix.Mount("selfdock-boot", RootDir, "tmpfs", 0, data); err != nil {
		Cleanup()
		return &os.PathError{Op: "mount tmpfs", Path: RootDir, Err: err}
	}
	return nil
}

// copyExe copies selfdock's executable to ExePath, which PID 1 execs: a
// path that names selfdock whatever happens to this process (its
// /proc/PID/exe would name another process once its pid is reused).
func copyExe() error {
	src, err := os.Open("/proc/self/exe")
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(ExePath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|unix.O_NOFOLLOW, 0o700)
	if err != nil {
		return err
	}
	_, err = io.Copy(dst, src)
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("copy selfdock to %s: %w", ExePath, err)
	}
	return nil
}

// Cleanup undoes Prepare: the tmpfs is detached and the files removed. It is
// what --dry-run and every failure before the takeover end with.
func Cleanup() {
	// Safe: fixed paths; lazy unmounts of what Prepare mounted.
	_ = unix.Unmount(RootDir, unix.MNT_DETACH)
	_ = os.Remove(RootDir)
	_ = os.Remove(MetaPath)
	_ = os.Remove(ExePath)
	_ = unix.Unmount(Dir, unix.MNT_DETACH)
	_ = os.Remove(Dir)
	_ = os.Remove(filepath.Dir(Dir))
}

// mounted tells whether path is a mount point (another device than its
// parent's).
func mounted(path string) bool {
	var a, b unix.Stat_t
	if unix.Lstat(path, &a) != nil || unix.Lstat(filepath.Dir(path), &b) != nil {
		return false
	}
	return a.Dev != b.Dev
}

// memAvailable reads MemAvailable from /proc/meminfo, in bytes.
func memAvailable() (uint64, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "MemAvailable:" {
			kb, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/meminfo: %w", err)
			}
			return kb << 10, nil
		}
	}
	return 0, errors.New("/proc/meminfo: no MemAvailable line")
}

// estimate is a lower bound of the RAM the unpacked image takes: the size
// of a file (a compressed one unpacks to more: the tmpfs's size bounds that),
// or the sum of the regular files of a directory.
func estimate(src string) (uint64, error) {
	fi, err := os.Stat(src)
	if err != nil {
		return 0, fmt.Errorf("image %q: %w", src, unwrap(err))
	}
	if !fi.IsDir() {
		return uint64(fi.Size()), nil
	}
	var n uint64
	err = filepath.WalkDir(src, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			if i, err := d.Info(); err == nil {
				n += uint64(i.Size())
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("image %q: %w", src, unwrap(err))
	}
	return n, nil
}

func unwrap(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Path, pe.Err)
	}
	return err
}

// Release is for the init of a PID namespace, once taken over: when the new
// PID 1 has moved into a mount namespace of its own (which holds its own
// copy of the prepared root), selfdock's view of the tmpfs is detached, so
// that it does not stay mounted in the namespace selfdock ran in. The empty
// directories stay: removing a directory that is a mount point in another
// namespace detaches that mount there too, and there it is the new root.
// Release gives up after a while; it is never used for the real PID 1.
func Release(pid int) bool {
	deadline := time.Now().Add(2 * time.Second)
	for !movedOut(pid) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Safe: the fixed paths, private mounts, in selfdock's own mount
	// namespace only.
	err := unix.Unmount(RootDir, unix.MNT_DETACH)
	return errors.Join(err, unix.Unmount(Dir, unix.MNT_DETACH)) == nil
}

// movedOut tells whether a thread of pid is in another mount namespace than
// selfdock's.
func movedOut(pid int) bool {
	tasks, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	if err != nil {
		return false
	}
	for _, t := range tasks {
		if same, err := sameNS("/proc/"+strconv.Itoa(pid)+"/task/"+t.Name(), "mnt"); err == nil && !same {
			return true
		}
	}
	return false
}
