package main

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"

	"github.com/alecthomas/kong"
)

func TestManAndCompletionCoverEveryFlag(t *testing.T) {
	var c cli
	k, err := kong.New(&c, kong.Name("selfdock"))
	if err != nil {
		t.Fatal(err)
	}
	var man bytes.Buffer
	writeMan(&man, k.Model.Node)
	words, flags := modelWords(k.Model.Node)
	for _, f := range k.Model.Node.Flags {
		if !strings.Contains(man.String(), `\fB\-\-`+strings.ReplaceAll(f.Name, "-", `\-`)+`\fR`) {
			t.Errorf("man page lacks --%s", f.Name)
		}
		if !strings.Contains(strings.Join(flags, " "), "--"+f.Name) {
			t.Errorf("completion lacks --%s", f.Name)
		}
	}
	for _, w := range []string{"run", "build", "enter", "ps", "policy"} {
		if !strings.Contains(" "+strings.Join(words, " ")+" ", " "+w+" ") {
			t.Errorf("completion lacks %s", w)
		}
		if !strings.Contains(man.String(), `\fB`+w+`\fR`) {
			t.Errorf("man page lacks %s", w)
		}
	}
}

func TestCompletionScriptsParse(t *testing.T) {
	for _, sh := range []string{"bash"} {
		out, err := exec.Command("go", "run", ".", "completion", sh).Output()
		if err != nil {
			t.Fatalf("completion %s: %v", sh, err)
		}
		cmd := exec.Command(sh, "-n")
		cmd.Stdin = bytes.NewReader(out)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s -n: %v\n%s", sh, err, b)
		}
	}
}
