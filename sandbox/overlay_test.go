package sandbox

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// openStable reaches a submount's destination only through directories that
// no one but root and the caller may rename, and never through a symlink.
func TestOpenStable(t *testing.T) {
	if os.Getuid() != 0 {
		seccompSkip(t, "needs root to make files of other owners")
	}
	const caller, other = 4242, 4343
	top := t.TempDir()
	if err := os.Chmod(top, 0o755); err != nil {
		t.Fatal(err)
	}
	mk := func(p string, mode uint32, uid int) string {
		t.Helper()
		full := filepath.Join(top, p)
		if err := os.Mkdir(full, 0); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(full, uid, 0); err != nil {
			t.Fatal(err)
		}
		if err := unix.Chmod(full, mode); err != nil {
			t.Fatal(err)
		}
		return full
	}
	mk("r", 0o755, 0)
	mk("r/m", 0o755, 0)
	mk("r/c", 0o755, caller)
	mk("r/c/m", 0o755, caller)
	mk("r/o", 0o755, other)
	mk("r/o/m", 0o755, 0)
	mk("r/g", 0o775, 0)
	mk("r/g/m", 0o755, 0)
	mk("r/t", 0o1777, 0)
	mk("r/t/root", 0o755, 0)
	mk("r/t/caller", 0o755, caller)
	mk("r/t/other", 0o755, other)
	if err := os.Symlink("m", filepath.Join(top, "r/l")); err != nil {
		t.Fatal(err)
	}
	root, err := unix.Open(top, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(root)
	for p, ok := range map[string]bool{
		"/r/m": true, "/r/c/m": true, "/r/t/root": true, "/r/t/caller": true,
		"/r/o/m": false, "/r/g/m": false, "/r/t/other": false, "/r/l": false, "/r/../r/m": false, "/r/./m": false,
	} {
		fd, err := openStable(root, p, caller)
		if err == nil {
			unix.Close(fd)
		}
		if (err == nil) != ok {
			t.Errorf("openStable(%q): %v, want ok=%v", p, err, ok)
		}
	}
}
