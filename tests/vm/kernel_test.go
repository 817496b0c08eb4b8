package vm

import (
	"archive/tar"
	"bufio"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/selfdock/selfdock/tests/internal/testimage"
)

// cacheDir keeps the extracted kernels (and a foreign architecture's
// busybox and apt state) between runs, next to the other tests' cached
// downloads. Every cached name ends with its architecture.
const cacheDir = "/var/tmp/selfdock-test-cache/vm"

// builtIn are the kernel options the VM needs compiled in, not as modules:
// the initramfs has no modules; each arch adds its console's and power-off's.
// Debian's 6.1 kernels have them all; squashfs and loop, which a squashfs
// IMAGE would need, are modules there.
var builtIn = []string{"BLK_DEV_INITRD", "BINFMT_SCRIPT", "TMPFS", "DEVTMPFS", "PROC_FS", "SYSFS"}

// debianKernel returns the vmlinuz of the package linux-image-ARCH depends
// on now, downloading and extracting it unless cached. When apt cannot name
// or download it (offline), the cached kernel does.
func debianKernel(a *arch) (string, error) {
	vmlinuz, err := currentKernel(a)
	if err != nil {
		if vmlinuz = newestCached("vmlinuz-*-" + a.name); vmlinuz == "" {
			return "", err
		}
	}
	version := strings.TrimPrefix(filepath.Base(vmlinuz), "vmlinuz-")
	return vmlinuz, checkConfig(filepath.Join(cacheDir, "config-"+version), slices.Concat(builtIn, a.builtIn))
}

func currentKernel(a *arch) (string, error) {
	c := aptFor(a)
	pkg, err := c.retryOut(func() (string, error) { return kernelPackage(c, a) })
	if err != nil {
		return "", err
	}
	version := strings.TrimPrefix(pkg, "linux-image-")
	vmlinuz := filepath.Join(cacheDir, "vmlinuz-"+version)
	config := filepath.Join(cacheDir, "config-"+version)
	if exists(vmlinuz) && exists(config) && exists(brdModule(vmlinuz)) {
		return vmlinuz, nil
	}
	// Older kernels of a go; the other architecture's stay.
	return vmlinuz, fetchDeb(c, pkg, map[string]string{
		"./boot/vmlinuz-" + version:                                 vmlinuz,
		"./boot/config-" + version:                                  config,
		"./lib/modules/" + version + "/kernel/drivers/block/brd.ko": brdModule(vmlinuz),
	}, "vmlinuz-*-"+a.name, "config-*-"+a.name, "brd-*-"+a.name+".ko")
}

// kernelPackage names the versioned image linux-image-ARCH depends on,
// such as linux-image-6.1.0-57-amd64: the metapackage has no kernel in it.
func kernelPackage(c aptConf, a *arch) (string, error) {
	meta := "linux-image-" + a.name
	out, err := c.cache("depends", meta)
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == "Depends:" && strings.HasPrefix(f[1], "linux-image-") {
			return f[1], nil
		}
	}
	return "", fmt.Errorf("apt-cache depends %s: no linux-image dependency in %q", meta, out)
}

// debianBusybox is the guest's static busybox: the host's own for the
// host's architecture, else Debian's busybox-static for a, downloaded and
// cached like the kernel (the cached one when offline).
func debianBusybox(a *arch) (string, error) {
	if !a.foreign() {
		return testimage.BusyboxPath, nil
	}
	bb, err := currentBusybox(a)
	if err != nil {
		if bb = newestCached("busybox-*-" + a.name); bb == "" {
			return "", err
		}
	}
	return bb, nil
}

func currentBusybox(a *arch) (string, error) {
	c := aptFor(a)
	version, err := c.retryOut(func() (string, error) { return candidate(c, "busybox-static") })
	if err != nil {
		return "", err
	}
	bb := filepath.Join(cacheDir, "busybox-"+version+"-"+a.name)
	if exists(bb) {
		return bb, nil
	}
	return bb, fetchDeb(c, "busybox-static", map[string]string{"./bin/busybox": bb}, "busybox-*-"+a.name)
}

// candidate is the version of pkg that apt would download, without its
// epoch (a colon in a file name is only a nuisance).
func candidate(c aptConf, pkg string) (string, error) {
	out, err := c.cache("show", "--no-all-versions", pkg)
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "Version: "); ok {
			_, noEpoch, found := strings.Cut(v, ":")
			if !found {
				noEpoch = v
			}
			return strings.TrimSpace(noEpoch), nil
		}
	}
	return "", fmt.Errorf("apt-cache show %s: no Version", pkg)
}

// fetchDeb downloads pkg and extracts the members of want (tar name ->
// destination in cacheDir), then removes the other files that match old
// (globs in cacheDir): the older versions it replaces.
func fetchDeb(c aptConf, pkg string, want map[string]string, old ...string) error {
	tmp, err := os.MkdirTemp("", "selfdock-deb-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	// The sandbox user _apt cannot write to a root-owned temporary directory;
	// apt would fall back to root with a warning anyway.
	if err := c.retry(tmp, "download", "-o", "APT::Sandbox::User=root", pkg); err != nil {
		return err
	}
	debs, _ := filepath.Glob(filepath.Join(tmp, "*.deb"))
	if len(debs) != 1 {
		return fmt.Errorf("apt-get download %s: found %d .deb files", pkg, len(debs))
	}
	var stale []string
	for _, o := range old {
		m, _ := filepath.Glob(filepath.Join(cacheDir, o))
		stale = append(stale, m...)
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return err
	}
	if err := extractDeb(debs[0], want); err != nil {
		return err
	}
	for _, o := range stale {
		if !slices.Contains(slices.Collect(maps.Values(want)), o) {
			os.Remove(o)
		}
	}
	return nil
}

// extractDeb writes the members of deb's data archive named in want (tar
// name -> destination); each destination appears whole or not at all.
func extractDeb(deb string, want map[string]string) error {
	cmd := exec.Command("dpkg-deb", "--fsys-tarfile", deb)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("dpkg-deb --fsys-tarfile %s: %w", deb, err)
	}
	found, rerr := extractTar(out, want)
	// Read to the end so that dpkg-deb does not die of a broken pipe.
	io.Copy(io.Discard, out)
	if err := cmd.Wait(); rerr == nil && err != nil {
		rerr = fmt.Errorf("dpkg-deb --fsys-tarfile %s: %w", deb, err)
	}
	if rerr == nil && found != len(want) {
		rerr = fmt.Errorf("extract %s: %d of %d files found (%v)", deb, found, len(want), want)
	}
	return rerr
}

func extractTar(r io.Reader, want map[string]string) (found int, err error) {
	tr := tar.NewReader(r)
	for found < len(want) {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return found, err
		}
		if dst, ok := want[h.Name]; ok && h.Typeflag == tar.TypeReg {
			if err := writeAtomic(dst, tr); err != nil {
				return found, err
			}
			found++
		}
	}
	return found, nil
}

// writeAtomic writes r to a temporary sibling of dst and renames it: an
// interrupted run leaves no truncated kernel in the cache.
func writeAtomic(dst string, r io.Reader) error {
	f, err := os.CreateTemp(filepath.Dir(dst), ".partial-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	_, err = io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", dst, err)
	}
	return os.Rename(f.Name(), dst)
}

// checkConfig fails when an option of builtIn is not =y: the kernel would
// boot, then fail in a way that looks like a bug of selfdock.
func checkConfig(config string, builtIn []string) error {
	f, err := os.Open(config)
	if err != nil {
		return err
	}
	defer f.Close()
	set := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			set[strings.TrimPrefix(k, "CONFIG_")] = v
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read %s: %w", config, err)
	}
	for _, o := range builtIn {
		if set[o] != "y" {
			return fmt.Errorf("kernel config %s: CONFIG_%s=%q, not built in: /init must load its module", config, o, set[o])
		}
	}
	return nil
}

// brdModule is the RAM disk module (brd.ko, a module in Debian's kernel)
// cached beside vmlinuz: the boot test swaps on a RAM disk.
func brdModule(vmlinuz string) string {
	return filepath.Join(filepath.Dir(vmlinuz), "brd-"+strings.TrimPrefix(filepath.Base(vmlinuz), "vmlinuz-")+".ko")
}

// newestCached is the file in cacheDir that matches pattern with the
// greatest name, "" if none (fetchDeb leaves one).
func newestCached(pattern string) string {
	k, _ := filepath.Glob(filepath.Join(cacheDir, pattern))
	if len(k) == 0 {
		return ""
	}
	sort.Strings(k)
	return k[len(k)-1]
}

func exists(name string) bool {
	_, err := os.Stat(name)
	return err == nil
}
