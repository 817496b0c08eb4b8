package policy

import (
	"path"
	"strings"
	"testing"
)

func req(mod func(r *Request)) *Request {
	r := &Request{Argv: []string{"true"}, Seccomp: true, Cwd: "/home/u", Caller: Identity{Uid: 1000, Gid: 1000}}
	if mod != nil {
		mod(r)
	}
	return r
}

func TestPlanMounts(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Request)
		want []string // Kind:Dest in order
	}{
		{"defaults", nil, []string{"dev:/dev", "tmpfs:/tmp", "proc:/proc"}},
		{"map replaces /tmp", func(r *Request) { r.Maps = [][2]string{{"/x", "/tmp"}} }, []string{"dev:/dev", "ro:/tmp", "proc:/proc"}},
		{"parents first", func(r *Request) {
			r.Maps = [][2]string{{"/a", "/x/y/z"}}
			r.Vols = [][2]string{{"/b", "/x"}}
			r.Tmpfs = [][2]string{{"size=1m", "/x/y"}}
		}, []string{"dev:/dev", "tmpfs:/tmp", "rw:/x", "tmpfs:/x/y", "ro:/x/y/z", "proc:/proc"}},
		{"dest cleaned", func(r *Request) { r.Maps = [][2]string{{"/a", "/x//y/"}} }, []string{"dev:/dev", "tmpfs:/tmp", "ro:/x/y", "proc:/proc"}},
	}
	kinds := map[Kind]string{BindRO: "ro", BindRW: "rw", Tmpfs: "tmpfs", Proc: "proc", Dev: "dev"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Default().Plan(req(tt.mod))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range p.Mounts {
				got = append(got, kinds[m.Kind]+":"+m.Dest)
			}
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("mounts = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestPlanRefuses(t *testing.T) {
	tests := []struct {
		name string
		pol  func(*Policy)
		mod  func(*Request)
		want string
	}{
		{"relative map dest", nil, func(r *Request) { r.Maps = [][2]string{{"/a", "rel"}} }, "absolute"},
		{"relative vol dest", nil, func(r *Request) { r.Vols = [][2]string{{"/a", "rel/x"}} }, "absolute"},
		{"dotdot dest", nil, func(r *Request) { r.Maps = [][2]string{{"/a", "/x/../etc"}} }, `".."`},
		{"root dest", nil, func(r *Request) { r.Maps = [][2]string{{"/a", "/"}} }, "--rootfs"},
		{"relative -C", nil, func(r *Request) { r.Dir = "here" }, "absolute"},
		{"twice", nil, func(r *Request) { r.Maps = [][2]string{{"/a", "/x"}, {"/b", "/x/"}} }, "twice"},
		{"empty source", nil, func(r *Request) { r.Maps = [][2]string{{"", "/x"}} }, "empty"},
		{"bad tmpfs", nil, func(r *Request) { r.Tmpfs = [][2]string{{"uid=0", "/x"}} }, "only size= and mode="},
		{"bad env", nil, func(r *Request) { r.SetEnv = [][2]string{{"A=B", "c"}} }, "environment"},
		{"build forbidden", func(p *Policy) { p.AllowBuild = false }, func(r *Request) { r.Mode = Build }, "build"},
		{"net forbidden", func(p *Policy) { p.AllowNet = false }, func(r *Request) { r.Net = true }, "--net"},
		{"seccomp off forbidden", nil, func(r *Request) { r.Seccomp = false }, "seccomp"},
		{"seccomp off where nesting is forbidden", func(p *Policy) { p.AllowSeccompOff, p.AllowNesting = true, false },
			func(r *Request) { r.Seccomp = false }, "forbids nesting"},
		{"user not listed", func(p *Policy) { p.Users = []uint32{1} }, nil, "may not use"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pol := Default()
			if tt.pol != nil {
				tt.pol(pol)
			}
			_, err := pol.Plan(req(tt.mod))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestPlanUserByGroup(t *testing.T) {
	pol := Default()
	pol.Groups = []uint32{27}
	if _, err := pol.Plan(req(func(r *Request) { r.Caller.Groups = []uint32{27} })); err != nil {
		t.Fatal(err)
	}
}

func TestPlanDir(t *testing.T) {
	p, _ := Default().Plan(req(nil))
	if p.Dir != "/home/u" || !p.DirFallback {
		t.Errorf("default dir = %q fallback %v", p.Dir, p.DirFallback)
	}
	p, _ = Default().Plan(req(func(r *Request) { r.Dir = "/etc/" }))
	if p.Dir != "/etc" || p.DirFallback {
		t.Errorf("-C dir = %q fallback %v", p.Dir, p.DirFallback)
	}
}

func TestEnviron(t *testing.T) {
	env, err := Environ(
		[]string{"HOME=/h", "LD_PRELOAD=/evil.so", "GODEBUG=x", "MALLOC_CHECK_=1", "KEEP=1", "DROP=2", "GLIBC_TUNABLES=x"},
		[][2]string{{"NEW", "v"}, {"HOME", "/other"}}, []string{"DROP"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(env, " "), "HOME=/other KEEP=1 NEW=v"; got != want {
		t.Errorf("env = %q, want %q", got, want)
	}
}

func TestTmpfsOptions(t *testing.T) {
	tests := []struct {
		in   string
		size uint64
		mode uint32
		bad  bool
	}{
		{"", 0, 0755, false},
		{"defaults", 0, 0755, false},
		{"size=1m", 1 << 20, 0755, false},
		{"size=64k,mode=1777", 64 << 10, 01777, false},
		{"size=2G", 2 << 30, 0755, false},
		{"size=0", 0, 0, true},
		{"size=-1", 0, 0, true},
		{"size=99999999999999999999g", 0, 0, true},
		{"mode=9", 0, 0, true},
		{"mode=17777", 0, 0, true},
		{"nr_inodes=1", 0, 0, true},
	}
	for _, tt := range tests {
		size, mode, err := TmpfsOptions(tt.in)
		if (err != nil) != tt.bad || (!tt.bad && (size != tt.size || mode != tt.mode)) {
			t.Errorf("TmpfsOptions(%q) = %d, %o, %v", tt.in, size, mode, err)
		}
	}
}

func TestPlanString(t *testing.T) {
	p, err := Default().Plan(req(func(r *Request) {
		r.Maps = [][2]string{{"/src dir", "/mnt"}}
		r.Argv = []string{"sh", "-c", "echo 'hi'"}
	}))
	if err != nil {
		t.Fatal(err)
	}
	s := p.String()
	for _, want := range []string{"mount --rbind -o ro,nosuid,nodev / /", "'/src dir' /mnt", "unshare --net", `'echo '\''hi'\'''`} {
		if !strings.Contains(s, want) {
			t.Errorf("plan %q lacks %q", s, want)
		}
	}
	// Everything the plan does shows: image, overlay, limits, cgroup,
	// the filter.
	if !strings.Contains(s, "seccomp default  # nesting allowed") {
		t.Errorf("plan %q lacks the filter", s)
	}
	pol := Default()
	pol.AllowNesting, pol.AllowSeccompOff = false, true
	pol.Rlimits = []Rlimit{{Name: "nproc", Cur: 10, Max: 20}}
	pol.CgroupMemory = 1 << 20
	p, err = pol.Plan(req(func(r *Request) { r.Image = "/i.sqfs"; r.Overlay = true }))
	if err != nil {
		t.Fatal(err)
	}
	s = p.String()
	for _, want := range []string{"mount -t squashfs -o ro,nosuid,nodev /i.sqfs /", "mount -t overlay", "prlimit --nproc=10:20", "memory.max=1048576", "seccomp default,no-nesting"} {
		if !strings.Contains(s, want) {
			t.Errorf("plan %q lacks %q", s, want)
		}
	}
}

// FuzzPlan feeds arbitrary options to the planner: it must never panic, and
// every destination it accepts is absolute, clean and free of "..".
func FuzzPlan(f *testing.F) {
	f.Add("/a", "/b", "size=1m", "/c", "NAME")
	f.Add("", "rel", "mode=0", "/../x", "A=B")
	f.Fuzz(func(t *testing.T, src, dst, opts, tdst, env string) {
		p, err := Default().Plan(req(func(r *Request) {
			r.Maps = [][2]string{{src, dst}}
			r.Tmpfs = [][2]string{{opts, tdst}}
			r.SetEnv = [][2]string{{env, "v"}}
		}))
		if err != nil {
			return
		}
		for _, m := range p.Mounts {
			if !strings.HasPrefix(m.Dest, "/") || strings.Contains(m.Dest+"/", "/../") || m.Dest == "/" || path.Clean(m.Dest) != m.Dest {
				t.Fatalf("accepted destination %q", m.Dest)
			}
		}
	})
}

// TestEnvironCallerTZ: the TZ the setuid constructor hid comes back as TZ.
func TestEnvironCallerTZ(t *testing.T) {
	env, err := Environ([]string{"A=1", CallerTZ + "=Europe/Paris"}, nil, nil)
	if err != nil || strings.Join(env, " ") != "A=1 TZ=Europe/Paris" {
		t.Errorf("Environ = %q, %v", env, err)
	}
}
