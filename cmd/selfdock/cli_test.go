package main

import (
	"reflect"
	"testing"

	"github.com/alecthomas/kong"
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
