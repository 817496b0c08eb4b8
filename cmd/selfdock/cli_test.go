package main

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/alecthomas/kong"
	"github.com/selfdock/selfdock/image"
	"github.com/selfdock/selfdock/policy"
	"github.com/selfdock/selfdock/sandbox"
)

func parseArgs(t testing.TB, args ...string) (*cli, *kong.Context, error) {
	var c cli
	exit := -1
	p, err := kong.New(&c, kong.Name("selfdock"), kong.Exit(func(code int) { exit = code; panic(exitPanic{}) }))
	if err != nil {
		t.Fatal(err)
	}
	ctx, err := parse(p, args, &exit)
	return &c, ctx, err
}

func TestCLIGrammar(t *testing.T) {
	tests := []struct {
		name string
		args []string
		cmd  []string
		maps [][2]string
		env  [][2]string
	}{
		{"options before run", []string{"-m", "/a", "/b", "run", "ls", "-l"}, []string{"ls", "-l"}, [][2]string{{"/a", "/b"}}, nil},
		{"options after run", []string{"run", "--map", "/a", "/b", "-e", "K", "V", "ls"}, []string{"ls"}, [][2]string{{"/a", "/b"}}, [][2]string{{"K", "V"}}},
		{"double dash", []string{"run", "--", "-weird", "--map"}, []string{"--", "-weird", "--map"}, nil, nil},
		{"command options untouched", []string{"run", "sh", "-c", "echo", "-m", "x"}, []string{"sh", "-c", "echo", "-m", "x"}, nil, nil},
		{"repeated", []string{"-m", "/a", "/b", "-m", "/c", "/d", "run", "x"}, []string{"x"}, [][2]string{{"/a", "/b"}, {"/c", "/d"}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _, err := parseArgs(t, tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c.Run.Cmd, tt.cmd) {
				t.Errorf("cmd = %q, want %q", c.Run.Cmd, tt.cmd)
			}
			if !reflect.DeepEqual([][2]string(c.Map), tt.maps) {
				t.Errorf("maps = %q, want %q", c.Map, tt.maps)
			}
			if !reflect.DeepEqual([][2]string(c.Env), tt.env) {
				t.Errorf("env = %q, want %q", c.Env, tt.env)
			}
		})
	}
}

func TestCLIErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--map", "/a"},
		{"--map", "/a", "run", "x"}, // "run" is taken as DST, then "x" is no command
		{"--bogus", "run", "x"},
		{"--seccomp=maybe", "run", "x"},
		{"nosuchcommand"},
	} {
		if _, _, err := parseArgs(t, args...); err == nil {
			t.Errorf("%q parsed without error", args)
		}
	}
}

func TestExitStatusOfParseError(t *testing.T) {
	if got := run([]string{"--bogus"}); got != 124 {
		t.Errorf("status = %d, want 124", got)
	}
	if got := run([]string{"run", "--map", "/a", "rel", "true"}); got != 124 {
		t.Errorf("status = %d, want 124", got)
	}
	if got := run([]string{"run"}); got != 124 {
		t.Errorf("status = %d, want 124", got)
	}
	if got := run([]string{"--help"}); got != 0 {
		t.Errorf("--help status = %d, want 0", got)
	}
}

// FuzzCLI parses arbitrary command lines: never a panic.
func FuzzCLI(f *testing.F) {
	f.Add("-m /a /b run ls -l")
	f.Add("run -- --map x")
	f.Add("-t size=1m /x -e A B -E C build sh")
	f.Fuzz(func(t *testing.T, line string) {
		var args []string
		start := 0
		for i := 0; i <= len(line); i++ {
			if i == len(line) || line[i] == ' ' {
				if i > start {
					args = append(args, line[start:i])
				}
				start = i + 1
			}
		}
		parseArgs(t, args...)
	})
}

// FuzzFast checks that every command line the fast parser accepts is parsed
// the same way by kong, which defines the grammar.
func FuzzFast(f *testing.F) {
	for _, s := range []string{"run true", "-m /a /b run ls -l", "run -- --map x", "-t size=1m /x -e A B -E C build sh",
		"--net --seccomp off run -C /x -r /y true", "run --seccomp=off -v a b c", "-m a run b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		if !utf8.ValidString(line) {
			return // kong replaces invalid UTF-8; run() restores CMD's bytes
		}
		args := strings.Split(line, " ")
		fc, mode, ok := fastParse(args)
		if !ok {
			return
		}
		kc, ctx, err := parseArgs(t, args...)
		if err != nil {
			t.Fatalf("fast parser accepted %q, kong refused: %v", args, err)
		}
		if got := strings.Fields(ctx.Command())[0]; got != mode {
			t.Fatalf("%q: fast mode %q, kong %q", args, mode, got)
		}
		kc.Version = false
		same := func(a, b any) bool { return fmt.Sprintf("%q", a) == fmt.Sprintf("%q", b) }
		if !same(fc.sandboxFlags, kc.sandboxFlags) || !same(fc.Run.Cmd, kc.Run.Cmd) || !same(fc.Build.Cmd, kc.Build.Cmd) {
			t.Fatalf("%q: fast %+v, kong %+v", args, fc, kc)
		}
	})
}

func TestFastParseDefersToKong(t *testing.T) {
	for _, l := range []string{"--help", "--version", "policy check", "--map=/a /b run x", "-m /a -x run y", "run --bogus x", "-r", "--seccomp maybe run x"} {
		if _, _, ok := fastParse(strings.Fields(l)); ok {
			t.Errorf("fast parser took %q", l)
		}
	}
}

func TestBundleHeaderMatchesSandbox(t *testing.T) {
	h, err := image.BundleHeader("/usr/local/bin/selfdock")
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != image.BundleOffset || !strings.Contains(string(h), "\n"+sandbox.BundleMarker+"4096\n") {
		t.Errorf("bundle header %q does not carry sandbox.BundleMarker", h[:80])
	}
	if _, err := image.BundleHeader("relative/selfdock"); err == nil {
		t.Error("relative interpreter accepted")
	}
}

func TestBundleArgs(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"./app ls -l", "--image ./app run ls -l"},
		{"/usr/local/bin/app", "--image /usr/local/bin/app run"},
		{"run ls", "run ls"},
		{"--map /a /b run x", "--map /a /b run x"},
		{"import a/b c", "import a/b c"},
	} {
		if got := strings.Join(bundleArgs(strings.Fields(tt.in)), " "); got != tt.want {
			t.Errorf("bundleArgs(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestSidecarFormatsAgree: image writes the sidecar, policy reads it; the
// two packages may not import each other, so their types must agree here.
func TestSidecarFormatsAgree(t *testing.T) {
	if "/"+image.ConfigPath != policy.ImageSidecar || image.MaxConfig != policy.MaxSidecar {
		t.Fatalf("sidecar path or size: image %q %d, policy %q %d", image.ConfigPath, image.MaxConfig, policy.ImageSidecar, policy.MaxSidecar)
	}
	in := image.Config{Entrypoint: []string{"/e"}, Cmd: []string{"c", "d"}, Env: []string{"A=1"}, WorkingDir: "/w", User: "u"}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := policy.ParseImageConfig(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out.Entrypoint, in.Entrypoint) || !reflect.DeepEqual(out.Cmd, in.Cmd) ||
		!reflect.DeepEqual(out.Env, in.Env) || out.WorkingDir != in.WorkingDir || out.User != in.User {
		t.Errorf("policy read %+v from image's %+v", out, in)
	}
}

// TestListFlagsKeepCommas: a repeatable flag takes one word per use, commas
// and all (kong would split "a,b" in two by default).
func TestListFlagsKeepCommas(t *testing.T) {
	c, _, err := parseArgs(t, "-E", "A,B", "run", "true")
	if err != nil || !reflect.DeepEqual(c.Unset, []string{"A,B"}) {
		t.Errorf("-E A,B: %q %v", c.Unset, err)
	}
	c, _, err = parseArgs(t, "pack", "--self-contained", "--cmd", "echo", "--cmd", "a,b", "--set-env", "X=1,2", "dir", "out")
	if err != nil || !reflect.DeepEqual(c.Pack.Cmd, []string{"echo", "a,b"}) || !reflect.DeepEqual(c.Pack.SetEnv, []string{"X=1,2"}) {
		t.Errorf("pack: cmd %q set-env %q %v", c.Pack.Cmd, c.Pack.SetEnv, err)
	}
}
