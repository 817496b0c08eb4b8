package main

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/alecthomas/kong"
)

// The shell completions and the man page are generated from kong's model,
// so they never drift from the CLI.

type completionCmd struct {
	Shell string `arg:"" enum:"bash,zsh,fish" help:"bash, zsh or fish."`
}

type manCmd struct{}

// Run prints the completion script for the shell.
func (c *completionCmd) Run(k *kong.Kong) error {
	words, flags := modelWords(k.Model.Node)
	switch c.Shell {
	case "bash", "zsh":
		if c.Shell == "zsh" {
			fmt.Println("autoload -U +X bashcompinit && bashcompinit")
		}
		fmt.Printf(`_selfdock() {
	local cur=${COMP_WORDS[COMP_CWORD]} i
	for ((i = 1; i < COMP_CWORD; i++)); do
		case ${COMP_WORDS[i]} in run|build|enter) COMPREPLY=($(compgen -c -- "$cur")); return;; esac
	done
	case $cur in
	-*) COMPREPLY=($(compgen -W %q -- "$cur"));;
	*) COMPREPLY=($(compgen -W %q -- "$cur") $(compgen -f -- "$cur"));;
	esac
}
complete -F _selfdock selfdock
`, strings.Join(flags, " "), strings.Join(words, " "))
	case "fish":
		fmt.Printf("complete -c selfdock -n __fish_use_subcommand -f -a %q\n", strings.Join(words, " "))
		for _, f := range k.Model.Node.Flags {
			line := "complete -c selfdock -l " + f.Name
			if f.Short != 0 {
				line += " -s " + string(f.Short)
			}
			if !f.IsBool() {
				line += " -r"
			}
			fmt.Printf("%s -d %q\n", line, f.Help)
		}
	}
	return nil
}

// modelWords lists the subcommands and the long and short flags.
func modelWords(n *kong.Node) (words, flags []string) {
	for _, c := range n.Children {
		if !c.Hidden {
			words = append(words, c.Name)
		}
	}
	for _, f := range n.Flags {
		flags = append(flags, "--"+f.Name)
		if f.Short != 0 {
			flags = append(flags, "-"+string(f.Short))
		}
	}
	sort.Strings(flags)
	return words, flags
}

// Run prints the man page, selfdock(1), in roff.
func (manCmd) Run(k *kong.Kong) error {
	writeMan(os.Stdout, k.Model.Node)
	return nil
}

func roff(s string) string {
	return strings.NewReplacer(`\`, `\e`, "-", `\-`, "'", `\(aq`).Replace(s)
}

func writeMan(w io.Writer, n *kong.Node) {
	fmt.Fprintf(w, ".TH SELFDOCK 1 \"\" \"selfdock %s\" \"User Commands\"\n", roff(version))
	fmt.Fprintf(w, ".SH NAME\nselfdock \\- %s\n", roff(n.Help))
	fmt.Fprint(w, ".SH SYNOPSIS\n.B selfdock\n[\\fIOPTIONS\\fR] \\fBrun\\fR|\\fBbuild\\fR [\\fIOPTIONS\\fR] [\\fB\\-\\-\\fR] \\fICMD\\fR [\\fIARG\\fR...]\n"+
		".br\n.B selfdock boot\n[\\fIflags\\fR] \\fIIMAGE\\fR [\\fICMD\\fR [\\fIARG\\fR...]] (real root only: replaces the running system)\n")
	fmt.Fprint(w, ".SH DESCRIPTION\nCMD runs as the invoking user in new mount, PID, IPC, UTS and network namespaces, "+
		"on a read\\-only, nosuid, nodev view of a root file system, with a private /tmp, its own /proc and a minimal /dev. "+
		"Nothing is written to disk. Options go before the subcommand or between it and CMD; options with two values take two separate arguments.\n")
	fmt.Fprint(w, ".SH OPTIONS\n")
	for _, f := range n.Flags {
		fmt.Fprint(w, ".TP\n")
		if f.Short != 0 {
			fmt.Fprintf(w, "\\fB\\-%s\\fR, ", roff(string(f.Short)))
		}
		fmt.Fprintf(w, "\\fB\\-\\-%s\\fR", roff(f.Name))
		if !f.IsBool() {
			fmt.Fprintf(w, " \\fI%s\\fR", roff(f.FormatPlaceHolder()))
		}
		fmt.Fprintf(w, "\n%s\n", roff(f.Help))
	}
	fmt.Fprint(w, ".SH COMMANDS\n")
	for _, c := range n.Children {
		if !c.Hidden {
			fmt.Fprintf(w, ".TP\n\\fB%s\\fR\n%s\n", roff(c.Name), roff(c.Help))
		}
	}
	fmt.Fprint(w, ".SH EXIT STATUS\nThe command's own status passes through (128+N when signal N ended it); "+
		"124: selfdock failed (bad usage, refused by the policy, setup failed); 126: the command is not executable; 127: not found.\n")
	fmt.Fprint(w, ".SH FILES\n/etc/selfdock/policy.toml \\- the administrator's policy (see \\fBselfdock policy check\\fR).\n")
	fmt.Fprint(w, ".SH SEE ALSO\n\\fBbwrap\\fR(1), \\fBunshare\\fR(1)\n")
}
