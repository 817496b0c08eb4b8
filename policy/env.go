package policy

import (
	"fmt"
	"strings"
)

// CallerTZ is the name under which a setuid selfdock finds the caller's TZ:
// its C constructor renames it before the Go runtime reads it (the time
// package would open the file TZ names, as root). The command gets it back
// as TZ.
const CallerTZ = "SELFDOCK_CALLER_TZ"

// RuntimeEnv are variables that steer the Go runtime; they are removed before
// any privileged work and never passed to the command.
// SELFDOCK_HIDDEN is what a setuid start's C constructor leaves in place
// of each of the others.
var RuntimeEnv = []string{"GODEBUG", "GOTRACEBACK", "GOMAXPROCS", "GOGC", "GOMEMLIMIT", "GOENV", "SELFDOCK_FAKEROOT_SYNC", "SELFDOCK_FAKEROOT_LIMITS", "SELFDOCK_HIDDEN"}

// libcUnsafe are the names and prefixes glibc drops for setuid programs
// (sysdeps/generic/unsecvars.h); the command never gets them from selfdock.
var libcUnsafe = []string{"LD_", "GCONV_PATH", "GETCONF_DIR", "HOSTALIASES", "LOCALDOMAIN", "LOCPATH",
	"MALLOC_", "NIS_PATH", "NLSPATH", "RESOLV_HOST_CONF", "RES_OPTIONS", "TZDIR", "GLIBC_TUNABLES"}

// Dangerous reports whether an inherited environment variable is dropped.
func Dangerous(name string) bool {
	for _, k := range RuntimeEnv {
		if name == k {
			return true
		}
	}
	for _, p := range libcUnsafe {
		if name == p || (strings.HasSuffix(p, "_") && strings.HasPrefix(name, p)) {
			return true
		}
	}
	return false
}

// Environ builds the command's environment: the caller's without the
// dangerous variables, then the -e settings, then the -E removals.
func Environ(caller []string, set [][2]string, unset []string) ([]string, error) {
	env := make([]string, 0, len(caller)+len(set))
	index := map[string]int{}
	put := func(k, v string) {
		if i, ok := index[k]; ok {
			env[i] = k + "=" + v
			return
		}
		index[k] = len(env)
		env = append(env, k+"="+v)
	}
	for _, kv := range caller {
		k, v, ok := strings.Cut(kv, "=")
		if k == CallerTZ {
			k = "TZ"
		}
		if ok && k != "" && !Dangerous(k) {
			put(k, v)
		}
	}
	for _, kv := range set {
		if err := envName(kv[0]); err != nil {
			return nil, err
		}
		put(kv[0], kv[1])
	}
	drop := map[string]bool{}
	for _, k := range unset {
		if err := envName(k); err != nil {
			return nil, err
		}
		drop[k] = true
	}
	out := env[:0]
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if !drop[k] {
			out = append(out, kv)
		}
	}
	return out, nil
}

func envName(k string) error {
	if k == "" || strings.ContainsAny(k, "=\x00") {
		return fmt.Errorf("environment variable name %q: must be non-empty and without '='", k)
	}
	return nil
}
