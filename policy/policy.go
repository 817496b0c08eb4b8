package policy

// Policy holds the administrator's knobs. The zero value is not useful: start
// from Default.
type Policy struct {
	// Users and Groups, when either is not empty, are the only ones allowed
	// to use selfdock (by uid or gid, numeric).
	Users  []uint32
	Groups []uint32
	// DenyMap are host directories that may never be bound in; DenyRootfs
	// may never serve as --rootfs.
	DenyMap    []string
	DenyRootfs []string
	// RootfsDirs, when not empty, are the only directories allowed as
	// --rootfs (the default: any directory the caller can read).
	RootfsDirs []string
	// ImageDirs are directories whose root-owned images the kernel may
	// mount for --image (empty: none).
	ImageDirs []string
	Rlimits   []Rlimit
	// CgroupMemory (bytes) and CgroupPids, when not 0, limit each
	// instance where the caller has a delegated cgroup v2 subtree.
	CgroupMemory, CgroupPids uint64
	Source                   string // the file it came from, "" for the defaults
	AllowBuild               bool
	AllowNet                 bool
	AllowNesting             bool
	AllowSeccompOff          bool
}

// Default is the policy without a policy file.
func Default() *Policy {
	return &Policy{
		DenyMap:      []string{"/proc", "/sys", "/dev"},
		DenyRootfs:   []string{"/proc", "/sys", "/dev"},
		AllowBuild:   true,
		AllowNet:     true,
		AllowNesting: true,
	}
}

func (p *Policy) userAllowed(id Identity) bool {
	if len(p.Users) == 0 && len(p.Groups) == 0 {
		return true
	}
	for _, u := range p.Users {
		if u == id.Uid {
			return true
		}
	}
	for _, g := range p.Groups {
		if g == id.Gid {
			return true
		}
		for _, h := range id.Groups {
			if g == h {
				return true
			}
		}
	}
	return false
}
