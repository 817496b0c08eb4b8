package vm

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// aptConf says which package lists apt-get and apt-cache read: the
// system's (the zero aptConf), or a private state for a foreign
// architecture, which leaves the system's apt and dpkg configuration as it
// was (no `dpkg --add-architecture`) while its sources.list stays the
// source.
type aptConf struct {
	arch string // Debian architecture of the private state; "" for the system's
	dir  string // the private state's directory
}

var systemApt aptConf

// aptFor is the apt configuration that downloads a's packages.
func aptFor(a *arch) aptConf {
	if !a.foreign() {
		return systemApt
	}
	return aptConf{arch: a.name, dir: filepath.Join(cacheDir, "apt-"+a.name)}
}

// opts point apt at the private state: a's packages only, lists and
// downloads under dir, an empty dpkg status (nothing is installed for a,
// and the system's status names packages of the host's architecture).
// DEP-11 metadata, which the system's appstream configuration adds, and
// translations are not needed to download a package.
func (c aptConf) opts() []string {
	if c.dir == "" {
		return nil
	}
	var o []string
	for _, kv := range []string{
		"APT::Architecture=" + c.arch,
		"APT::Architectures::=" + c.arch,
		"Dir::State=" + filepath.Join(c.dir, "state"),
		"Dir::State::status=" + filepath.Join(c.dir, "status"),
		"Dir::Cache=" + filepath.Join(c.dir, "cache"),
		"Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false",
		"Acquire::Languages=none",
	} {
		o = append(o, "-o", kv)
	}
	return o
}

// prepare makes the directories and the empty status file apt expects of
// a state; it does not make them itself.
func (c aptConf) prepare() error {
	if c.dir == "" {
		return nil
	}
	for _, d := range []string{"state/lists/partial", "cache/archives/partial"} {
		if err := os.MkdirAll(filepath.Join(c.dir, d), 0o755); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(filepath.Join(c.dir, "status"), os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	return f.Close()
}

// listsMaxAge: nothing else updates a private state's lists, so the tests
// do when they are older than this; the system's are the system's job.
const listsMaxAge = 7 * 24 * time.Hour

// refresh updates a private state's lists when they are missing or stale.
// A failure (offline) is not one of the test: the old lists and the cached
// files may still do, and what fails next says what is missing.
func (c aptConf) refresh() {
	if c.dir == "" {
		return
	}
	if st, err := os.Stat(c.stamp()); err == nil && time.Since(st.ModTime()) < listsMaxAge {
		return
	}
	_ = c.update()
}

// stamp is touched after each update of a private state: apt leaves the
// lists' times alone when the mirror has nothing new.
func (c aptConf) stamp() string { return filepath.Join(c.dir, "updated") }

// update runs `apt-get update`. For a private state a list that failed to
// download is an error (apt-get's exit status is 0 for it by default, as
// when offline): the stamp must not say the lists are fresh.
func (c aptConf) update() error {
	if c.dir == "" {
		return c.run("", "update", "-qq")
	}
	if err := c.prepare(); err != nil {
		return err
	}
	if err := c.run("", "update", "-qq", "-o", "APT::Update::Error-Mode=any"); err != nil {
		return err
	}
	return os.WriteFile(c.stamp(), nil, 0o644)
}

// aptEnsureMu: each architecture's fixture is made in its own test, in
// parallel, and two apt-get installs at once fail on dpkg's lock.
var aptEnsureMu sync.Mutex

// aptEnsure installs those of pkgs that are not installed. dpkg-query keeps
// the common case (all there) fast; `apt-get update` runs only when an
// install fails, as the Makefile's apt_ensure does.
func aptEnsure(pkgs ...string) error {
	aptEnsureMu.Lock()
	defer aptEnsureMu.Unlock()
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
	return systemApt.retry("", args...)
}

// retry runs apt-get ARGS in dir, and once more after `apt-get update`
// if it fails: stale package lists are the usual cause.
func (c aptConf) retry(dir string, args ...string) error {
	err := c.run(dir, args...)
	if err == nil {
		return nil
	}
	if uerr := c.update(); uerr != nil {
		return fmt.Errorf("%v; then %v", err, uerr)
	}
	return c.run(dir, args...)
}

// retryOut runs f, and once more after `apt-get update` if it fails.
func (c aptConf) retryOut(f func() (string, error)) (string, error) {
	s, err := f()
	if err == nil {
		return s, nil
	}
	if uerr := c.update(); uerr != nil {
		return "", fmt.Errorf("%v; then %v", err, uerr)
	}
	return f()
}

// run runs apt-get.
func (c aptConf) run(dir string, args ...string) error {
	args = append(c.opts(), args...)
	cmd := exec.Command("apt-get", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("apt-get %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// cache runs apt-cache and returns its standard output.
func (c aptConf) cache(args ...string) ([]byte, error) {
	args = append(c.opts(), args...)
	out, err := exec.Command("apt-cache", args...).Output()
	if err != nil {
		return nil, fmt.Errorf("apt-cache %s: %w", strings.Join(args, " "), err)
	}
	return out, nil
}
