package policy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	p, err := Parse([]byte(`
users = ["root", "1234"]
groups = ["0"]
deny_map = ["/srv/secret/"]
rootfs_dirs = ["/srv/images"]
allow_build = false
allow_net = false
allow_nesting = false
allow_seccomp_off = true
[rlimits]
nofile = "1024"
as = "4g"
[cgroup]
memory = "2g"
pids = "512"
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Users) != 2 || p.Users[0] != 0 || p.Users[1] != 1234 || len(p.Groups) != 1 {
		t.Errorf("users %v groups %v", p.Users, p.Groups)
	}
	if p.AllowBuild || p.AllowNet || p.AllowNesting || !p.AllowSeccompOff {
		t.Errorf("switches not applied: %+v", p)
	}
	if got := strings.Join(p.DenyMap, " "); got != "/proc /sys /dev /srv/secret" {
		t.Errorf("deny_map = %q", got)
	}
	// deny_map applies to --rootfs too, cleaned the same way (a trailing
	// slash once kept it from matching anything).
	if got := strings.Join(p.DenyRootfs, " "); got != "/proc /sys /dev /srv/secret" {
		t.Errorf("deny_rootfs = %q", got)
	}
	if len(p.Rlimits) != 2 || p.Rlimits[0].Name != "as" || p.Rlimits[0].Cur != 4<<30 || p.Rlimits[1].Cur != 1024 {
		t.Errorf("rlimits = %+v", p.Rlimits)
	}
	if p.CgroupMemory != 2<<30 || p.CgroupPids != 512 {
		t.Errorf("cgroup = %d, %d", p.CgroupMemory, p.CgroupPids)
	}
	if !strings.Contains(p.String(), "allow_build = false") {
		t.Errorf("String() = %q", p.String())
	}
}

func TestParseRefuses(t *testing.T) {
	for _, in := range []string{
		`alow_build = true`,
		`users = ["no-such-user-here"]`,
		`deny_map = ["relative"]`,
		`[rlimits]` + "\n" + `cpu = "1"`,
		`[rlimits]` + "\n" + `nofile = "many"`,
		`allow_build = "yes"`,
		`users = `,
	} {
		if _, err := Parse([]byte(in)); err == nil {
			t.Errorf("Parse(%q) succeeded", in)
		}
	}
}

func mustRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("SELFDOCK_MUST_WORK") == "1" {
			t.Fatal("needs root (SELFDOCK_MUST_WORK=1)")
		}
		t.Skip("needs root to make root-owned files")
	}
}

func TestLoadOwnership(t *testing.T) {
	mustRoot(t)
	dir, err := os.MkdirTemp("/var/tmp", "policytest")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0755)
	file := filepath.Join(dir, "policy.toml")
	old := Path
	defer func() { Path = old }()
	Path = file

	if p, err := Load(); err != nil || p.Source != "" {
		t.Fatalf("missing file: %v, %+v", err, p)
	}
	os.WriteFile(file, []byte("allow_build = false\n"), 0644)
	if p, err := Load(); err != nil || p.AllowBuild {
		t.Fatalf("good file: %v %+v", err, p)
	}
	os.Chmod(file, 0666)
	if _, err := Load(); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("world-writable file: %v", err)
	}
	os.Chmod(file, 0644)
	os.Chown(file, 65534, 0)
	if _, err := Load(); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("file owned by nobody: %v", err)
	}
	os.Chown(file, 0, 0)
	os.Chmod(dir, 0777)
	if _, err := Load(); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("world-writable directory: %v", err)
	}
	os.Chmod(dir, 0755)
	link := filepath.Join(dir, "link.toml")
	os.Symlink(file, link)
	Path = link
	if _, err := Load(); err == nil {
		t.Errorf("symlinked policy accepted")
	}
}
