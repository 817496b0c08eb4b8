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
)

// cacheDir keeps the extracted kernel between runs, next to the other
// tests' cached downloads.
const cacheDir = "/var/tmp/selfdock-test-cache/vm"

// builtIn are the kernel options the VM needs compiled in, not as modules:
// the initramfs has no modules. Debian's 6.1 kernel has them all; squashfs
// and loop, which a squashfs IMAGE would need, are modules there.
var builtIn = []string{
	"BLK_DEV_INITRD", "BINFMT_SCRIPT", "TMPFS", "DEVTMPFS", "PROC_FS", "SYSFS",
	"SERIAL_8250", "SERIAL_8250_CONSOLE", "ACPI", // ACPI: poweroff ends qemu
}

// debianKernel returns the vmlinuz of the package linux-image-amd64
// depends on now, downloading and extracting it unless cached. When apt
// cannot name or download it (offline), the cached kernel does.
func debianKernel(cache string) (string, error) {
	vmlinuz, err := currentKernel(cache)
	if err != nil {
		if vmlinuz = newestCached(cache); vmlinuz == "" {
			return "", err
		}
	}
	version := strings.TrimPrefix(filepath.Base(vmlinuz), "vmlinuz-")
	return vmlinuz, checkConfig(filepath.Join(cache, "config-"+version))
}

func currentKernel(cache string) (string, error) {
	pkg, err := aptRetryOut(kernelPackage)
	if err != nil {
		return "", err
	}
	version := strings.TrimPrefix(pkg, "linux-image-")
	vmlinuz := filepath.Join(cache, "vmlinuz-"+version)
	if !exists(vmlinuz) || !exists(filepath.Join(cache, "config-"+version)) || !exists(brdModule(vmlinuz)) {
		if err := fetchKernel(cache, pkg, version); err != nil {
			return "", err
		}
	}
	return vmlinuz, nil
}

// aptRetryOut runs f, and once more after `apt-get update` if it fails.
func aptRetryOut(f func() (string, error)) (string, error) {
	s, err := f()
	if err == nil {
		return s, nil
	}
	if uerr := apt("", "update", "-qq"); uerr != nil {
		return "", fmt.Errorf("%v; then %v", err, uerr)
	}
	return f()
}

// kernelPackage names the versioned image linux-image-amd64 depends on,
// such as linux-image-6.1.0-57-amd64: the metapackage has no kernel in it.
func kernelPackage() (string, error) {
	out, err := exec.Command("apt-cache", "depends", "linux-image-amd64").Output()
	if err != nil {
		return "", fmt.Errorf("apt-cache depends linux-image-amd64: %w", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == "Depends:" && strings.HasPrefix(f[1], "linux-image-") {
			return f[1], nil
		}
	}
	return "", fmt.Errorf("apt-cache depends linux-image-amd64: no linux-image dependency in %q", out)
}

// fetchKernel downloads pkg and extracts its vmlinuz and config into
// cache, removing older cached kernels.
func fetchKernel(cache, pkg, version string) error {
	tmp, err := os.MkdirTemp("", "selfdock-kernel-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	// The sandbox user _apt cannot write to a root-owned temporary directory;
	// apt would fall back to root with a warning anyway.
	if err := aptRetry(tmp, "download", "-o", "APT::Sandbox::User=root", pkg); err != nil {
		return err
	}
	debs, _ := filepath.Glob(filepath.Join(tmp, "*.deb"))
	if len(debs) != 1 {
		return fmt.Errorf("apt-get download %s: found %d .deb files", pkg, len(debs))
	}
	old, _ := filepath.Glob(filepath.Join(cache, "vmlinuz-*"))
	oldConfigs, _ := filepath.Glob(filepath.Join(cache, "config-*"))
	oldModules, _ := filepath.Glob(filepath.Join(cache, "brd-*.ko"))
	old = append(append(old, oldConfigs...), oldModules...)
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return err
	}
	want := map[string]string{
		"./boot/vmlinuz-" + version:                                 filepath.Join(cache, "vmlinuz-"+version),
		"./boot/config-" + version:                                  filepath.Join(cache, "config-"+version),
		"./lib/modules/" + version + "/kernel/drivers/block/brd.ko": filepath.Join(cache, "brd-"+version+".ko"),
	}
	if err := extractDeb(debs[0], want); err != nil {
		return err
	}
	for _, o := range old {
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
func checkConfig(config string) error {
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

// newestCached is the cached vmlinuz with the greatest name, "" if none
// (fetchKernel leaves one).
func newestCached(cache string) string {
	k, _ := filepath.Glob(filepath.Join(cache, "vmlinuz-*"))
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
