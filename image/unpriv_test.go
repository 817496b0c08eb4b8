package image

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// nobody is the unprivileged user the tests run again as.
const nobody = 65534

// TestAsUnprivilegedUser runs this package's tests again as an
// unprivileged user when the tests run as root: root passes permission
// checks that a plain user's import must get right by itself (writing
// into a lower layer's 0555 directory, removing a tree that holds 0000
// directories, no chown, no mknod), which is how selfdock runs it.
func TestAsUnprivilegedUser(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("already unprivileged: the other tests are this one")
	}
	dir, err := os.MkdirTemp("", "image-unprivileged-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = removeTree(dir) })
	tmp := filepath.Join(dir, "tmp")
	for _, err := range []error{os.Chmod(dir, 0o755), os.Mkdir(tmp, 0o700), os.Chown(tmp, nobody, nobody)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(dir, "image.test")
	copyExe(t, os.Args[0], bin)
	// Preserve needs root; everything else must pass as nobody.
	args := []string{"-test.count=1", "-test.skip=^TestImportPreserve$"}
	if testing.Verbose() {
		args = append(args, "-test.v")
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = tmp
	cmd.Env = []string{"TMPDIR=" + tmp, "HOME=" + tmp, "PATH=" + os.Getenv("PATH"),
		"SELFDOCK_MUST_WORK=" + os.Getenv("SELFDOCK_MUST_WORK")}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{}}}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "PASS") {
		t.Fatalf("the tests as uid %d: %v\n%s", nobody, err, out)
	}
	if testing.Verbose() {
		t.Logf("as uid %d:\n%s", nobody, out)
	}
}

func copyExe(t testing.TB, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
