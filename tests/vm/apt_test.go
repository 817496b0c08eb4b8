package vm

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// aptEnsure installs those of pkgs that are not installed. dpkg-query keeps
// the common case (all there) fast; `apt-get update` runs only when an
// install fails, as the Makefile's apt_ensure does.
func aptEnsure(pkgs ...string) error {
	var missing []string
	for _, p := range pkgs {
		out, _ := exec.Command("dpkg-query", "-W", "-f=${db:Status-Abbrev}", p).Output()
		if !strings.HasPrefix(string(out), "ii") {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	// Recommends are left out: qemu-system-x86 recommends a GUI and tools
	// the tests do not use.
	args := append([]string{"install", "-y", "-qq", "--no-install-recommends"}, missing...)
	return aptRetry("", args...)
}

// aptRetry runs apt-get ARGS in dir, and once more after `apt-get update`
// if it fails: stale package lists are the usual cause.
func aptRetry(dir string, args ...string) error {
	err := apt(dir, args...)
	if err == nil {
		return nil
	}
	if uerr := apt("", "update", "-qq"); uerr != nil {
		return fmt.Errorf("%v; then %v", err, uerr)
	}
	return apt(dir, args...)
}

func apt(dir string, args ...string) error {
	cmd := exec.Command("apt-get", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("apt-get %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}
