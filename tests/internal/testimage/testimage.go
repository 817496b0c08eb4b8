package testimage

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"sort"
	"strings"
	"time"
)

// BusyboxPath is where Debian's busybox-static package installs the static
// busybox. A dynamically linked busybox would not run in an image without
// its libc, so it is not looked up in PATH.
const BusyboxPath = "/bin/busybox"

// Dirs are the directories every image has: the mount points a booting
// system or a sandbox uses, and the homes of busybox and its links.
var Dirs = []string{"bin", "dev", "etc", "proc", "run", "sbin", "sys", "tmp"}

// mtime is every entry's modification time: fixed, so that the same
// arguments give the same tarball.
var mtime = time.Unix(1700000000, 0)

// Busybox writes at out an uncompressed root file system tarball: Dirs,
// /bin/busybox copied from BusyboxPath, a symlink /bin/APPLET -> busybox for
// each applet it lists, /sbin/init -> ../bin/busybox, and each of files
// (path -> content; mode 0755 when the content starts with "#!", else 0644,
// missing parent directories made 0755). A file replaces a link of the same
// name. out is replaced if it exists.
func Busybox(out string, files map[string]string) error {
	if _, err := os.Stat(BusyboxPath); err != nil {
		return fmt.Errorf("busybox: %w (install busybox-static)", err)
	}
	applets, err := Applets()
	if err != nil {
		return err
	}
	return BusyboxFrom(out, BusyboxPath, applets, files)
}

// BusyboxFrom is Busybox with the busybox binary at busybox and the given
// applets: a busybox built for another architecture, for a VM's image,
// cannot run here to list its own.
func BusyboxFrom(out, busybox string, applets []string, files map[string]string) error {
	bb, err := os.ReadFile(busybox)
	if err != nil {
		return fmt.Errorf("read busybox: %w", err)
	}
	if err := checkApplets(applets); err != nil {
		return fmt.Errorf("busybox %s: %w", busybox, err)
	}
	extra, err := cleanFiles(files)
	if err != nil {
		return err
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	werr := write(f, bb, applets, extra)
	if err := f.Close(); werr == nil {
		werr = err
	}
	if werr != nil {
		os.Remove(out)
		return fmt.Errorf("write image %s: %w", out, werr)
	}
	return nil
}

// Applets lists the applets of the busybox at BusyboxPath, as
// `busybox --list` prints them, without any name that has a slash.
func Applets() ([]string, error) {
	b, err := exec.Command(BusyboxPath, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --list: %w", BusyboxPath, err)
	}
	var names []string
	for _, n := range strings.Fields(string(b)) {
		// A name with a slash would make a link outside /bin.
		if !strings.Contains(n, "/") && n != "busybox" {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%s --list: no applets", BusyboxPath)
	}
	return names, nil
}

// checkApplets refuses an empty list and names Applets leaves out: a link
// named busybox would replace the binary, one with a slash would be made
// outside /bin.
func checkApplets(applets []string) error {
	if len(applets) == 0 {
		return fmt.Errorf("no applets")
	}
	for _, a := range applets {
		if a == "" || a == "." || a == ".." || a == "busybox" || strings.Contains(a, "/") {
			return fmt.Errorf("applet %q: not a name for a link in /bin", a)
		}
	}
	return nil
}

// cleanFiles returns files keyed by clean relative names ("etc/x" for
// "/etc/x"), refusing a name that would leave the root or name the root.
func cleanFiles(files map[string]string) (map[string]string, error) {
	out := make(map[string]string, len(files))
	for name, content := range files {
		c := strings.TrimPrefix(path.Clean("/"+name), "/")
		if c == "" || hasDotDot(name) {
			return nil, fmt.Errorf("image file %q: not a path beneath the root", name)
		}
		if _, dup := out[c]; dup {
			return nil, fmt.Errorf("image file %q: given twice", name)
		}
		out[c] = content
	}
	return out, nil
}

func hasDotDot(name string) bool {
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return true
		}
	}
	return false
}

// write writes the whole archive: directories first, so that an unpacker
// never has to make a parent itself, then busybox, its links, the files.
func write(w io.Writer, bb []byte, applets []string, files map[string]string) error {
	tw := tar.NewWriter(w)
	made := map[string]bool{}
	for _, d := range Dirs {
		if err := dir(tw, made, d); err != nil {
			return err
		}
	}
	if err := file(tw, "bin/busybox", bb, 0o755); err != nil {
		return err
	}
	if err := links(tw, applets, files); err != nil {
		return err
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := dir(tw, made, path.Dir(n)); err != nil {
			return err
		}
		mode := int64(0o644)
		if strings.HasPrefix(files[n], "#!") {
			mode = 0o755
		}
		if err := file(tw, n, []byte(files[n]), mode); err != nil {
			return err
		}
	}
	return tw.Close()
}

// links writes /bin/APPLET -> busybox and /sbin/init, except where files
// has an entry of that name.
func links(tw *tar.Writer, applets []string, files map[string]string) error {
	for _, a := range applets {
		if _, ok := files["bin/"+a]; !ok {
			if err := symlink(tw, "bin/"+a, "busybox"); err != nil {
				return err
			}
		}
	}
	if _, ok := files["sbin/init"]; ok {
		return nil
	}
	return symlink(tw, "sbin/init", "../bin/busybox")
}

// dir writes name and every missing parent, each once. /tmp is
// world-writable and sticky, as on any system.
func dir(tw *tar.Writer, made map[string]bool, name string) error {
	if name == "." || name == "" || made[name] {
		return nil
	}
	if err := dir(tw, made, path.Dir(name)); err != nil {
		return err
	}
	made[name] = true
	mode := int64(0o755)
	if name == "tmp" {
		mode = 0o1777
	}
	return tw.WriteHeader(header(tar.TypeDir, name+"/", mode))
}

func file(tw *tar.Writer, name string, content []byte, mode int64) error {
	h := header(tar.TypeReg, name, mode)
	h.Size = int64(len(content))
	if err := tw.WriteHeader(h); err != nil {
		return err
	}
	_, err := io.Copy(tw, bytes.NewReader(content))
	return err
}

func symlink(tw *tar.Writer, name, target string) error {
	h := header(tar.TypeSymlink, name, 0o777)
	h.Linkname = target
	return tw.WriteHeader(h)
}

// header is root-owned whoever writes the image: the image is a system's
// root, where root owns the files.
func header(typ byte, name string, mode int64) *tar.Header {
	return &tar.Header{
		Typeflag: typ, Name: name, Mode: mode, ModTime: mtime,
		Uid: 0, Gid: 0, Uname: "root", Gname: "root",
	}
}
