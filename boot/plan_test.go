package boot

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/selfdock/selfdock/image"
)

// TestPlan: CMD, else the image's entrypoint and cmd (with its env and
// working directory, and PATH searched in the image), else /sbin/init;
// a program missing from the image is refused before anything happens.
func TestPlan(t *testing.T) {
	root := t.TempDir()
	for _, f := range []string{"sbin/init", "usr/bin/app", "bin/sh"} {
		p := filepath.Join(root, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("/usr/bin/app", filepath.Join(root, "bin/app-link")); err != nil {
		t.Fatal(err)
	}
	m, err := plan(Options{}, root)
	if err != nil || m.Path != "/sbin/init" || !reflect.DeepEqual(m.Argv, []string{"/sbin/init"}) || m.WorkDir != "/" {
		t.Fatalf("no CMD, no config: %+v %v", m, err)
	}
	writeConfig(t, root, `{"Entrypoint":["app"],"Cmd":["--serve"],"Env":["PATH=/usr/bin","X=1"],"WorkingDir":"/srv"}`)
	m, err = plan(Options{}, root)
	if err != nil || m.Path != "/usr/bin/app" || !reflect.DeepEqual(m.Argv, []string{"app", "--serve"}) ||
		m.WorkDir != "/srv" || !reflect.DeepEqual(m.Env, []string{"PATH=/usr/bin", "X=1"}) {
		t.Fatalf("image config: %+v %v", m, err)
	}
	m, err = plan(Options{Argv: []string{"/bin/app-link", "x"}}, root)
	if err != nil || m.Path != "/bin/app-link" || m.Argv[1] != "x" {
		t.Fatalf("CMD through a symlink in the image: %+v %v", m, err)
	}
	for _, argv := range [][]string{{"/no/such"}, {"sh"}, {"/usr/bin"}} {
		if _, err := plan(Options{Argv: argv}, root); err == nil || !strings.Contains(err.Error(), "command") {
			t.Errorf("plan(%q) = %v, want a refusal", argv, err) // sh: not in the image's PATH=/usr/bin
		}
	}
}

func writeConfig(t *testing.T, root, js string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(root, image.ConfigDir), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, image.ConfigPath), []byte(js), 0o644); err != nil {
		t.Fatal(err)
	}
}
