package oci

import (
	"encoding/json"
	"fmt"
	"path"
	"sort"
	"strings"
)

// Bundle is what a run takes from a bundle.
type Bundle struct {
	Args     []string
	Env      []string
	Cwd      string
	Terminal bool
	Root     string // absolute
	Readonly bool
	Hostname string
	Binds    []Bind
	Tmpfs    []Tmpfs
	// Warnings name the fields that were ignored.
	Warnings []string
}

// Bind is a mounts entry of type bind (or with a bind/rbind option).
type Bind struct {
	Source, Dest string
	ReadOnly     bool
}

// Tmpfs is a mounts entry of type tmpfs; Options keeps size= and mode=.
type Tmpfs struct {
	Dest, Options string
}

type spec struct {
	OCIVersion string `json:"ociVersion"`
	Process    *struct {
		Terminal        bool     `json:"terminal"`
		Args            []string `json:"args"`
		Env             []string `json:"env"`
		Cwd             string   `json:"cwd"`
		NoNewPrivileges *bool    `json:"noNewPrivileges"`
		User            *struct {
			UID            *uint32  `json:"uid"`
			GID            *uint32  `json:"gid"`
			AdditionalGids []uint32 `json:"additionalGids"`
			Umask          *uint32  `json:"umask"`
		} `json:"user"`
		Capabilities map[string][]string `json:"capabilities"`
	} `json:"process"`
	Root *struct {
		Path     string `json:"path"`
		Readonly bool   `json:"readonly"`
	} `json:"root"`
	Hostname string `json:"hostname"`
	Mounts   []struct {
		Destination string   `json:"destination"`
		Type        string   `json:"type"`
		Source      string   `json:"source"`
		Options     []string `json:"options"`
	} `json:"mounts"`
	Linux *struct {
		UIDMappings []json.RawMessage `json:"uidMappings"`
		GIDMappings []json.RawMessage `json:"gidMappings"`
		Devices     []json.RawMessage `json:"devices"`
	} `json:"linux"`
}

// known are the fields read (or knowingly left to the sandbox's defaults);
// any other gets one warning.
var known = map[string]bool{"ociVersion": true, "process": true, "root": true, "hostname": true, "mounts": true,
	"linux": true, "annotations": true, "domainname": true}

// Parse reads config.json of the bundle in dir (absolute) for the caller.
func Parse(b []byte, dir string, uid, gid uint32) (*Bundle, error) {
	var s spec
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("bundle %q: config.json: %w", dir, err)
	}
	if s.Process == nil || s.Root == nil || s.Root.Path == "" {
		return nil, fmt.Errorf("bundle %q: config.json needs process and root.path", dir)
	}
	bu := &Bundle{Args: s.Process.Args, Env: s.Process.Env, Cwd: s.Process.Cwd, Terminal: s.Process.Terminal,
		Readonly: s.Root.Readonly, Hostname: s.Hostname}
	if err := refusePrivilege(&s, uid, gid); err != nil {
		return nil, fmt.Errorf("bundle %q: %w", dir, err)
	}
	bu.Root = abs(dir, s.Root.Path)
	if bu.Cwd == "" {
		bu.Cwd = "/"
	}
	if err := bu.mounts(&s, dir); err != nil {
		return nil, fmt.Errorf("bundle %q: %w", dir, err)
	}
	bu.Warnings = unknownFields(b)
	return bu, nil
}

// refusePrivilege names the first field that asks for what the caller may
// not have: another user, capabilities, devices, id mappings.
func refusePrivilege(s *spec, uid, gid uint32) error {
	if u := s.Process.User; u != nil {
		if u.UID != nil && *u.UID != uid {
			return fmt.Errorf("process.user.uid %d: the command runs as you (uid %d)", *u.UID, uid)
		}
		if u.GID != nil && *u.GID != gid {
			return fmt.Errorf("process.user.gid %d: the command runs with your gid (%d)", *u.GID, gid)
		}
	}
	for set, caps := range s.Process.Capabilities {
		if len(caps) > 0 {
			return fmt.Errorf("process.capabilities.%s: the command has no capabilities", set)
		}
	}
	if l := s.Linux; l != nil {
		switch {
		case len(l.Devices) > 0:
			return fmt.Errorf("linux.devices: the sandbox's /dev is fixed")
		case len(l.UIDMappings) > 0, len(l.GIDMappings) > 0:
			return fmt.Errorf("linux.uidMappings/gidMappings: use --fakeroot")
		}
	}
	return nil
}

// ours are the sandbox's own mounts: a bundle's entries for them are met
// by the sandbox itself.
var ours = map[string]bool{"/proc": true, "/dev": true, "/dev/pts": true, "/dev/shm": true, "/dev/mqueue": true,
	"/sys": true, "/sys/fs/cgroup": true}

func (bu *Bundle) mounts(s *spec, dir string) error {
	for _, m := range s.Mounts {
		opts := map[string]bool{}
		for _, o := range m.Options {
			opts[o] = true
		}
		if !path.IsAbs(m.Destination) {
			return fmt.Errorf("mounts: destination %q is not absolute", m.Destination)
		}
		switch {
		case m.Type == "bind" || opts["bind"] || opts["rbind"]:
			bu.Binds = append(bu.Binds, Bind{Source: abs(dir, m.Source), Dest: m.Destination, ReadOnly: opts["ro"]})
		case m.Type == "tmpfs":
			var keep []string
			for _, o := range m.Options {
				if strings.HasPrefix(o, "size=") || strings.HasPrefix(o, "mode=") {
					keep = append(keep, o)
				}
			}
			bu.Tmpfs = append(bu.Tmpfs, Tmpfs{Dest: m.Destination, Options: strings.Join(keep, ",")})
		case ours[path.Clean(m.Destination)]:
		default:
			return fmt.Errorf("mounts: %q of type %q: only binds and tmpfs are supported", m.Destination, m.Type)
		}
	}
	return nil
}

func abs(dir, p string) string {
	if path.IsAbs(p) {
		return path.Clean(p)
	}
	return path.Join(dir, p)
}

// unknownFields lists the top-level fields selfdock does not read.
func unknownFields(b []byte) []string {
	var top map[string]json.RawMessage
	if json.Unmarshal(b, &top) != nil {
		return nil
	}
	var out []string
	for k := range top {
		if !known[k] {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}
