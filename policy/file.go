package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/BurntSushi/toml"
)

// Path is the policy file. It is fixed when the binary is built (tests set it
// with -ldflags -X) and never taken from the user or the environment.
var Path = "/etc/selfdock/policy.toml"

// maxFile bounds what is read of the policy file.
const maxFile = 1 << 20

// file is the policy file's format; every key is optional.
type file struct {
	Users           []string          `toml:"users"`
	Groups          []string          `toml:"groups"`
	DenyMap         []string          `toml:"deny_map"`
	RootfsDirs      []string          `toml:"rootfs_dirs"`
	ImageDirs       []string          `toml:"image_dirs"`
	AllowBuild      *bool             `toml:"allow_build"`
	AllowNet        *bool             `toml:"allow_net"`
	AllowNesting    *bool             `toml:"allow_nesting"`
	AllowSeccompOff *bool             `toml:"allow_seccomp_off"`
	Rlimits         map[string]string `toml:"rlimits"`
	Cgroup          struct {
		Memory string `toml:"memory"`
		Pids   string `toml:"pids"`
	} `toml:"cgroup"`
}

// Load reads the policy file at Path; without one, Default applies.
func Load() (*Policy, error) { return load(func(uid uint32) bool { return uid == 0 }) }

// LoadUnprivileged is Load for a selfdock without privilege, in a user
// namespace where root is not mapped and root's files show the overflow uid.
// The policy is advice there: the caller could use any other unprivileged
// sandbox instead.
func LoadUnprivileged() (*Policy, error) {
	overflow := uint32(65534)
	if b, err := os.ReadFile("/proc/sys/kernel/overflowuid"); err == nil {
		if v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32); err == nil {
			overflow = uint32(v)
		}
	}
	return load(func(uid uint32) bool { return uid == 0 || uid == overflow })
}

func load(rootOwned func(uint32) bool) (*Policy, error) {
	b, err := readRootFile(Path, rootOwned)
	if errors.Is(err, os.ErrNotExist) {
		return Default(), nil
	}
	if err != nil {
		return nil, err
	}
	p, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("policy %s: %w", Path, err)
	}
	p.Source = Path
	return p, nil
}

// readRootFile reads a file that only root may have written: the file and
// every directory above it must be owned by root and writable by nobody
// else (a sticky directory such as /var/tmp is allowed above a root-owned
// one, since others cannot replace what root owns there). No symlinks.
func readRootFile(p string, rootOwned func(uint32) bool) ([]byte, error) {
	if !path.IsAbs(p) {
		return nil, fmt.Errorf("policy %q: not an absolute path", p)
	}
	for d := path.Dir(p); ; d = path.Dir(d) {
		var st syscall.Stat_t
		if err := syscall.Lstat(d, &st); err != nil {
			return nil, fmt.Errorf("policy %s: %w", p, err)
		}
		sticky := st.Mode&syscall.S_ISVTX != 0 && d != path.Dir(p)
		if st.Mode&syscall.S_IFMT != syscall.S_IFDIR || !rootOwned(st.Uid) || (st.Mode&0o022 != 0 && !sticky) {
			return nil, fmt.Errorf("policy %s: refused: directory %s must be a root-owned directory writable only by root", p, d)
		}
		if d == "/" {
			break
		}
	}
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("policy %s: %w", p, err)
	}
	defer f.Close()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return nil, fmt.Errorf("policy %s: %w", p, err)
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG || !rootOwned(st.Uid) || st.Mode&0o022 != 0 {
		return nil, fmt.Errorf("policy %s: refused: it must be a regular file owned by root and writable only by root", p)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxFile+1))
	if err != nil {
		return nil, fmt.Errorf("policy %s: %w", p, err)
	}
	if len(b) > maxFile {
		return nil, fmt.Errorf("policy %s: larger than %d bytes", p, maxFile)
	}
	return b, nil
}

// Parse reads a policy file's contents over the defaults. Unknown keys are
// an error: a misspelt restriction must not pass silently.
func Parse(b []byte) (*Policy, error) {
	var f file
	md, err := toml.NewDecoder(bytes.NewReader(b)).Decode(&f)
	if err != nil {
		return nil, err
	}
	if u := md.Undecoded(); len(u) > 0 {
		return nil, fmt.Errorf("unknown key %q", u[0].String())
	}
	p := Default()
	for _, set := range []struct {
		v   *bool
		dst *bool
	}{{f.AllowBuild, &p.AllowBuild}, {f.AllowNet, &p.AllowNet}, {f.AllowNesting, &p.AllowNesting}, {f.AllowSeccompOff, &p.AllowSeccompOff}} {
		if set.v != nil {
			*set.dst = *set.v
		}
	}
	if p.Users, err = ids(f.Users, lookupUser); err != nil {
		return nil, err
	}
	if p.Groups, err = ids(f.Groups, lookupGroup); err != nil {
		return nil, err
	}
	for _, list := range []struct {
		in  []string
		dst *[]string
	}{{f.DenyMap, &p.DenyMap}, {f.RootfsDirs, &p.RootfsDirs}, {f.ImageDirs, &p.ImageDirs}} {
		for _, d := range list.in {
			if !path.IsAbs(d) {
				return nil, fmt.Errorf("path %q: must be absolute", d)
			}
			*list.dst = append(*list.dst, path.Clean(d))
		}
	}
	for _, d := range f.DenyMap {
		p.DenyRootfs = append(p.DenyRootfs, path.Clean(d)) // absolute, checked above
	}
	if p.Rlimits, err = rlimits(f.Rlimits); err != nil {
		return nil, err
	}
	for _, c := range []struct {
		v   string
		dst *uint64
	}{{f.Cgroup.Memory, &p.CgroupMemory}, {f.Cgroup.Pids, &p.CgroupPids}} {
		if c.v == "" {
			continue
		}
		if *c.dst, err = parseSize(c.v); err != nil {
			return nil, fmt.Errorf("cgroup limit %q: %w", c.v, err)
		}
	}
	return p, nil
}

func lookupUser(name string) (string, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return "", err
	}
	return u.Uid, nil
}

func lookupGroup(name string) (string, error) {
	g, err := user.LookupGroup(name)
	if err != nil {
		return "", err
	}
	return g.Gid, nil
}

// ids turns names or numbers into numeric ids.
func ids(names []string, lookup func(string) (string, error)) ([]uint32, error) {
	var out []uint32
	for _, n := range names {
		s := n
		if _, err := strconv.ParseUint(n, 10, 32); err != nil {
			if s, err = lookup(n); err != nil {
				return nil, fmt.Errorf("unknown user or group %q", n)
			}
		}
		v, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("id %q: %w", n, err)
		}
		out = append(out, uint32(v))
	}
	return out, nil
}

// rlimitNames are the resource limits the policy may set.
var rlimitNames = map[string]int{"nproc": 6, "nofile": syscall.RLIMIT_NOFILE, "as": syscall.RLIMIT_AS, "fsize": syscall.RLIMIT_FSIZE}

func rlimits(m map[string]string) ([]Rlimit, error) {
	var out []Rlimit
	for name, v := range m {
		res, ok := rlimitNames[name]
		if !ok {
			return nil, fmt.Errorf("rlimits: unknown limit %q (known: as, fsize, nofile, nproc)", name)
		}
		n, err := parseSize(v)
		if err != nil {
			return nil, fmt.Errorf("rlimits.%s = %q: %w", name, v, err)
		}
		out = append(out, Rlimit{Resource: res, Name: name, Cur: n, Max: n})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// String prints the effective policy in the policy file's format.
func (p *Policy) String() string {
	var b strings.Builder
	src := p.Source
	if src == "" {
		src = "none (" + Path + " does not exist): defaults"
	}
	fmt.Fprintf(&b, "# policy file: %s\n", src)
	list := func(k string, v []string) { fmt.Fprintf(&b, "%s = %s\n", k, tomlList(v)) }
	list("users", uints(p.Users))
	list("groups", uints(p.Groups))
	list("deny_map", p.DenyMap)
	list("rootfs_dirs", p.RootfsDirs)
	list("image_dirs", p.ImageDirs)
	fmt.Fprintf(&b, "allow_build = %v\nallow_net = %v\nallow_nesting = %v\nallow_seccomp_off = %v\n",
		p.AllowBuild, p.AllowNet, p.AllowNesting, p.AllowSeccompOff)
	b.WriteString("[rlimits]\n")
	for _, r := range p.Rlimits {
		fmt.Fprintf(&b, "%s = \"%d\"\n", r.Name, r.Cur)
	}
	if p.CgroupMemory > 0 || p.CgroupPids > 0 {
		fmt.Fprintf(&b, "[cgroup]  # applied where the caller has a delegated cgroup v2 subtree\nmemory = \"%d\"\npids = \"%d\"\n",
			p.CgroupMemory, p.CgroupPids)
	}
	return b.String()
}

func uints(v []uint32) []string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.FormatUint(uint64(x), 10)
	}
	return s
}

func tomlList(v []string) string {
	q := make([]string, len(v))
	for i, s := range v {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}
